//! The socket floor's driver runs end to end: a small run prints its one line with the
//! server's CPU, the frames arrived, and `--json` holds the same figures.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::Command;

/// 20 connections for 1 s of warm-up and 2 s measured: one `floor` line whose figures
/// parse, the clients received frames, and the JSON file agrees with the line.
#[test]
fn driver_prints_one_line_and_writes_json() {
    let dir = std::env::temp_dir().join(format!("pylon-floor-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("floor.json");
    let out = Command::new(env!("CARGO_BIN_EXE_pylon-floor"))
        .args(["run", "--clients", "20", "--secs", "2", "--warmup", "1", "--json"])
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("floor clients=20 frame_bytes=870 "), "{stdout}");
    let field = |key: &str| -> f64 {
        let prefix = format!("{key}=");
        let value = lines[0].split(' ').find_map(|pair| pair.strip_prefix(prefix.as_str()));
        value.unwrap_or_else(|| panic!("no {key} in {stdout}")).parse().unwrap()
    };
    for key in ["server_cpu_pct", "server_user_pct", "server_sys_pct", "server_ctx_switches_s"] {
        assert!(field(key) >= 0.0, "{stdout}");
    }
    // 870 bytes 20 times a second; generous bounds: only that frames flowed.
    assert!(field("client_rx_bytes_s") > 1_000.0, "{stdout}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(doc["scenario"], "floor");
    assert_eq!(doc["figures"]["clients"], 20);
    assert!(doc["figures"]["server_cpu_pct"].as_f64().is_some(), "{doc}");
    std::fs::remove_dir_all(&dir).unwrap();
}
