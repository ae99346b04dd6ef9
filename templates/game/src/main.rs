//! The server: pylon with this project's game. Everything else (the command line, the
//! environment, sockets, the entity API) is pylon's: `cargo run -- --help` lists it.

mod tag;

#[global_allocator]
static GLOBAL: pylon::MiMalloc = pylon::MiMalloc;

fn main() -> std::process::ExitCode {
    pylon::App::new().name("pylon-starter", env!("CARGO_PKG_VERSION")).game::<tag::Tag>().run()
}
