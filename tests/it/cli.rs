//! The `pylon` binary's command line: version, and refusing bad configuration at start-up
//! with one line that names the variable and a non-zero exit (README, Configuration).

use std::process::{Command, Output};

fn pylon() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pylon"));
    // Start from a clean slate: no PYLON_* from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("PYLON_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd
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

fn assert_refused(out: &Output, var: &str, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{what}: exit code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{what}: one line: {stderr}");
    assert!(stderr.starts_with("pylon: "), "{what}: {stderr}");
    assert!(stderr.contains(var), "{what}: names {var}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{what}: nothing started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

const TOKEN: &str = "test-admin-token-0123456789";

/// Every refused configuration: the message names the variable, exit 1, nothing starts.
#[test]
fn refused_configurations() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bus = format!("redis://127.0.0.1:{closed_port}");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("serve", vec![], "PYLON_ADMIN_TOKEN"),
        ("serve", vec![("PYLON_DEV_MODE", "true")], "PYLON_DEV_MODE"),
        (
            "serve",
            vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_CORS_ORIGIN", "*")],
            "PYLON_CORS_ORIGIN",
        ),
        (
            "serve",
            vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_CLUSTER_BUS", &bus)],
            "PYLON_CLUSTER_BUS",
        ),
        (
            "serve",
            vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_TICK_THREADS", "abc")],
            "PYLON_TICK_THREADS",
        ),
        (
            "serve",
            vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_TICK_THREADS", "0")],
            "PYLON_TICK_THREADS",
        ),
        ("serve", vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_PORT", "65534")], "PYLON_PORT"),
        (
            "serve",
            vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_LOG_FORMAT", "xml")],
            "PYLON_LOG_FORMAT",
        ),
        (
            "serve",
            vec![("PYLON_ADMIN_TOKEN", TOKEN), ("PYLON_MAX_CONNS_PER_IP", "0")],
            "PYLON_MAX_CONNS_PER_IP",
        ),
        ("dev", vec![("PYLON_REGIONS", "eu=ftp://x")], "PYLON_REGIONS"),
    ];
    for (command, env, var) in cases {
        let mut cmd = pylon();
        cmd.arg(command);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("pylon runs");
        assert_refused(&out, var, &format!("{command} {env:?}"));
    }
}

/// A port that is taken is refused with the address named.
#[test]
fn taken_port_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = pylon()
        .arg("serve")
        .env("PYLON_ADMIN_TOKEN", TOKEN)
        .env("PYLON_HOST", "127.0.0.1")
        .env("PYLON_PORT", port.to_string())
        .env("PYLON_SESSION_DB", ":memory:")
        .env(
            "PYLON_DB_PATH",
            std::env::temp_dir().join(format!("pylon-cli-{}.db", std::process::id())),
        )
        .output()
        .expect("pylon runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PYLON_PORT") && stderr.contains(&port.to_string()), "{stderr}");
}
