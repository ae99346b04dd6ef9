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
        // A bare word is not a level: the filter library would silence every log.
        ("dev", vec![("PYLON_LOG", "verbose")], "PYLON_LOG"),
        ("dev", vec![("PYLON_LOG", "info,pylon_api=loud")], "PYLON_LOG"),
        ("dev", vec![("PYLON_MATCH_IDLE_SECS", "0")], "PYLON_MATCH_IDLE_SECS"),
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

/// `pylon --help` and `pylon serve --help` list the environment with defaults.
#[test]
fn help_lists_the_environment() {
    for args in [&["--help"][..], &["serve", "--help"], &["dev", "--help"]] {
        let out = pylon().args(args).output().expect("pylon runs");
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in
            ["Environment", "PYLON_PORT [4321]", "DATABASE_URL", "PYLON_MATCH_IDLE_SECS [60]"]
        {
            assert!(text.contains(needle), "{args:?} lacks {needle}: {text}");
        }
    }
}

/// A mistyped subcommand is refused with the closest one suggested.
#[test]
fn a_mistyped_subcommand_suggests_the_right_one() {
    let out = pylon().arg("serv").output().expect("pylon runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'serve'"), "{stderr}");
}

/// `pylon dev` explains itself: after the generated token, every port with localhost
/// URLs, the manifest it loaded, where the data lives, the games, and a next step that
/// works when pasted into a shell (it creates a match with the printed token).
#[test]
fn dev_start_up_lines_explain_themselves() {
    use std::io::BufRead;
    let data = std::env::temp_dir().join(format!("pylon-cli-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    // The server binds the port and the three above it.
    let port = crate::support::free_port_pair();
    let mut child = pylon()
        .arg("dev")
        .env("PYLON_PORT", port.to_string())
        .env("PYLON_DB_PATH", data.join("pylon.db"))
        .env("PYLON_SESSION_DB", data.join("sessions.db"))
        .env("PYLON_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pylon dev starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut lines: Vec<String> = Vec::new();
    while !lines.last().is_some_and(|l| l.contains("curl ")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("start-up lines incomplete: {lines:#?}");
            }
        }
    }
    let text = lines.join("\n");
    let token = lines[0].rsplit(' ').next().unwrap().to_owned();
    assert!(lines[0].contains("admin token") && token.len() == 64, "{text}");
    for needle in [
        format!("http://localhost:{port}/api"),
        format!("ws://localhost:{}/", port + 1),
        format!("http://localhost:{}/", port + 2),
        format!("ws://localhost:{}/?shard=", port + 3),
        "manifest       the bundled example".to_owned(),
        format!("data           SQLite {}", data.join("pylon.db").display()),
        "games          arena, tictactoe".to_owned(),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
    }
    let curl = lines.last().unwrap().trim().to_owned();
    assert!(curl.contains(&token), "{curl}");
    let created = Command::new("sh").arg("-c").arg(&curl).output().expect("sh runs");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    let body: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap_or_default();
    assert!(body["id"].as_str().is_some_and(|id| id.starts_with("local-")), "{curl} -> {body}");
}
