//! The `pylon` binary's command line: version, and refusing bad configuration with one
//! line that names the variable.

use std::process::Command;

fn pylon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pylon"))
}

/// `pylon version` prints the crate version and exits 0.
#[test]
fn version_prints_crate_version() {
    let out = pylon().arg("version").output().expect("pylon runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pylon {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A bad `PYLON_TICK_THREADS` is refused at start: non-zero exit, one stderr line naming it.
#[test]
fn bad_tick_threads_is_refused() {
    for bad in ["abc", "0", "9999"] {
        let out = pylon()
            .args(["serve", "--secs", "1"])
            .env("PYLON_TICK_THREADS", bad)
            .output()
            .expect("pylon runs");
        assert_eq!(out.status.code(), Some(1), "PYLON_TICK_THREADS={bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("PYLON_TICK_THREADS"), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing started");
    }
}
