//! `pylon backup` of a running server, then `pylon restore` into an empty data
//! directory, gives identical query results (rows, change log, sessions); both commands
//! refuse to overwrite; `pylon migrate --dry-run` reports without applying.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

fn pylon(args: &[&str], data: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pylon"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PYLON_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("PYLON_DB_PATH", data.join("pylon.db"))
        .env("PYLON_SESSION_DB", data.join("sessions.db"))
        .env("PYLON_MANIFEST", notes_manifest())
        .output()
        .unwrap()
}

async fn snapshot(server: &TestServer, token: &str) -> (Value, Value, Value) {
    let get = |path: String, t: String| {
        let req = server.http.get(server.url(&path)).bearer_auth(t);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    (
        get("/api/entities/Board?limit=1000".into(), ADMIN.into()).await,
        get("/api/sync/pull?since=0&limit=1000".into(), ADMIN.into()).await,
        get("/api/auth/me".into(), token.into()).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_gives_identical_answers() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &notes_manifest())]).await;
    let (token, user) = server.guest().await;
    for i in 0..20 {
        let r = server
            .http
            .post(server.url("/api/entities/Board"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("b{i}"), "score": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = server
        .http
        .post(server.url("/api/entities/Note"))
        .bearer_auth(&token)
        .json(&json!({"owner": user, "text": "kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let before = snapshot(&server, &token).await;
    assert_eq!(before.0["count"], 20);
    assert_eq!(before.2["user_id"], user.as_str());

    let backups = TempDir::new("backups");
    let dir = backups.0.join("b1");
    let data = server.data.as_ref().unwrap().0.clone();
    let out = pylon(&["backup", dir.to_str().unwrap()], &data);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = pylon(&["backup", dir.to_str().unwrap()], &data);
    assert_eq!(again.status.code(), Some(1), "a non-empty backup directory is refused");
    drop(server);

    let fresh = TempDir::new("restored");
    let out = pylon(&["restore", dir.to_str().unwrap()], &fresh.0);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let twice = pylon(&["restore", dir.to_str().unwrap()], &fresh.0);
    assert_eq!(twice.status.code(), Some(1), "restore never overwrites");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("PYLON_DB_PATH"));

    let server = TestServer::start_in(fresh, &[("PYLON_MANIFEST", &notes_manifest())]).await;
    let after = snapshot(&server, &token).await;
    assert_eq!(before, after);
}

/// `pylon migrate --dry-run` reports the tables it would create without creating them;
/// `pylon migrate` creates them; a second run has nothing to do.
#[test]
fn migrate_reports_and_applies() {
    let data = TempDir::new("migrate");
    let dry = pylon(&["migrate", "--dry-run"], &data.0);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("would create entity Note"), "{text}");
    let real = pylon(&["migrate"], &data.0);
    assert!(String::from_utf8_lossy(&real.stdout).contains("did create entity Note"));
    let again = pylon(&["migrate"], &data.0);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));
}

/// Every command applies the same manifest defaults: after `pylon dev` (which loads the
/// bundled example), `pylon migrate` and `pylon serve` without `PYLON_MANIFEST` use the
/// manifest the database recorded, instead of refusing to drop (or dropping) its tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_after_dev_uses_the_same_manifest() {
    let mut dev = TestServer::start_dev_in(TempDir::new("dev-then-migrate"), &[]).await;
    let player =
        json!({"displayName": "ada", "createdAt": "2026-01-01T00:00:00Z", "level": 1, "xp": 0});
    let r = dev
        .http
        .post(dev.url("/api/entities/Player"))
        .bearer_auth(ADMIN)
        .json(&player)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    dev.sigterm();
    assert!(dev.wait_exit(std::time::Duration::from_secs(20)).success());
    let data = dev.data.take().unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pylon"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PYLON_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    let out = cmd.arg("migrate").env("PYLON_DB_PATH", data.0.join("pylon.db")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("up to date"), "{stdout}");

    let serve = TestServer::start_in(data, &[]).await;
    let page = serve.get_json("/api/entities/Player", ADMIN).await;
    assert_eq!(page["count"], 1, "{page}");
}
