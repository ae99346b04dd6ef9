//! Tidy checks: architecture invariants that are easy to break without noticing.

use std::path::{Path, PathBuf};
use std::process::Command;

const IO_CRATES: [&str; 7] = ["tokio", "axum", "hyper", "tungstenite", "sqlx", "rusqlite", "redis"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn normal_deps(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// `pylon-shard` and `pylon-tick` depend on no I/O crate (ARCHITECTURE.md, dependency
/// rule).
#[test]
fn shard_and_tick_do_no_io() {
    for package in ["pylon-shard", "pylon-tick"] {
        let tree = normal_deps(package);
        assert!(tree.contains(package), "cargo tree printed nothing useful for {package}");
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            for banned in IO_CRATES {
                assert!(
                    !(name == banned
                        || name.starts_with(&format!("{banned}-"))
                        || name.ends_with(&format!("-{banned}"))),
                    "{package} depends on {name} (I/O crate {banned})"
                );
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "node_modules" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file opens with a `//!` doc comment saying what it is.
#[test]
fn every_file_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    for dir in
        ["src", "shard", "tick", "api", "sync", "storage", "loadtest", "benches", "tests", "fuzz"]
    {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! doc: {missing:?}");
}

/// Only `src/config.rs` reads the environment (tests and the loadtest CLI aside).
#[test]
fn only_config_reads_the_environment() {
    let mut files = Vec::new();
    for dir in ["src", "shard/src", "tick/src", "api/src", "sync/src", "storage/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| !f.ends_with("src/config.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            text.contains("env::var(") || text.contains("env::vars(")
        })
        .collect();
    assert!(offenders.is_empty(), "environment read outside src/config.rs: {offenders:?}");
}

/// `shard/clippy.toml` repeats the root settings (the nearest clippy.toml wins) and bans
/// the wall clock and std hash maps.
#[test]
fn shard_clippy_config_is_complete() {
    let shard =
        std::fs::read_to_string(root().join("shard/clippy.toml")).expect("shard/clippy.toml");
    let workspace = std::fs::read_to_string(root().join("clippy.toml")).expect("clippy.toml");
    for line in workspace.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        assert!(shard.contains(line.trim()), "shard/clippy.toml lacks root setting `{line}`");
    }
    for banned in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::collections::HashMap",
        "std::collections::HashSet",
        "std::thread::sleep",
    ] {
        assert!(shard.contains(banned), "shard/clippy.toml does not ban {banned}");
    }
}

/// ARCHITECTURE.md's code map names every source file of every crate (by file name, or by
/// directory for a `mod.rs`).
#[test]
fn architecture_names_every_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for krate in
        ["src", "shard/src", "tick/src", "api/src", "sync/src", "storage/src", "loadtest/src"]
    {
        let mut files = Vec::new();
        rust_files(&root().join(krate), &mut files);
        for file in files {
            let name =
                file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let named = match name.as_str() {
                "lib.rs" => true, // the crate itself
                "mod.rs" => {
                    let dir = file
                        .parent()
                        .and_then(|d| d.file_name())
                        .map(|d| d.to_string_lossy().into_owned());
                    dir.is_some_and(|d| map.contains(&format!("`{d}/`")))
                }
                _ => {
                    let dir = file
                        .parent()
                        .and_then(|d| d.file_name())
                        .map(|d| d.to_string_lossy().into_owned());
                    map.contains(&format!("`{name}`"))
                        || dir.is_some_and(|d| map.contains(&format!("`{d}/{name}`")))
                }
            };
            if !named {
                missing.push(file.strip_prefix(root()).unwrap_or(&file).display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md's code map does not name: {missing:?}");
}

/// The project's docs and comments stand alone: none points to files outside the
/// repository (design notes the project does not ship).
#[test]
fn docs_point_inside_the_repository() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "target" || name == "node_modules" || name.starts_with('.') || name == "dist"
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if ["rs", "md", "toml", "sh", "ts", "tsx", "mjs", "yml", "yaml", "json"]
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root(), &mut files);
    let outside = ["DESIGN.md", "CONVENTIONS.md", "../shared"];
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("tests/it/tidy.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            outside.iter().any(|o| text.contains(o))
        })
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(offenders.is_empty(), "files pointing outside the repository: {offenders:?}");
}
