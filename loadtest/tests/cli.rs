//! The load tool fails loudly: against a closed port every scenario exits non-zero, so
//! the CI smoke load catches a server that is down or broken.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::Command;

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `arena`, `entities` and `fanout` against a closed port: exit code 1, an error line.
#[test]
fn closed_port_fails() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        vec!["arena", "--bots", "2", "--secs", "1", "--warmup", "0"],
        vec!["entities", "--secs", "1", "--token", "x"],
        vec!["fanout", "--secs", "1", "--subscribers", "2", "--token", "x"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pylon-loadtest"))
            .args(&args)
            .args(["--url", &url])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
