//! The `pylon` binary: a [`pylon::App`] with the built-in games. A studio's own binary is
//! the same few lines with its games registered (`templates/game/src/main.rs`).

#[global_allocator]
static GLOBAL: pylon::MiMalloc = pylon::MiMalloc;

fn main() -> std::process::ExitCode {
    pylon::App::new().run()
}
