//! The server on Postgres (`DATABASE_URL`): sessions, entity writes, the change log and a
//! match result all land in the database, in a schema of this test's own. Skips loudly
//! when Postgres is not reachable, unless `PYLON_TEST_REQUIRE_SERVICES=1`.

use serde_json::{Value, json};

use crate::support::*;

/// A Postgres URL whose connections use a fresh schema of `test`'s own (earlier runs'
/// schemas of the same test are dropped), or `None` after a `SKIPPED` line when Postgres
/// is not reachable (with `PYLON_TEST_REQUIRE_SERVICES=1`: a failure instead).
pub(crate) async fn schema_url(test: &str) -> Option<String> {
    let base = std::env::var("PYLON_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("pylon_it_{test}_{}", std::process::id());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&base)
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) if std::env::var("PYLON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{test} needs postgres: {e}")
        }
        Err(_) => {
            eprintln!("SKIPPED: {test} needs postgres");
            return None;
        }
    };
    // This test's schemas from earlier runs (other pids) go too: none pile up.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE $1",
    )
    .bind(format!("pylon_it_{test}_%"))
    .fetch_all(&pool)
    .await
    .unwrap();
    for name in stale {
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\"")).execute(&pool).await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// Guest sessions, entity CRUD and the pull feed through the real binary on Postgres;
/// the rows are in the test's schema, and they survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_postgres() {
    let Some(url) = schema_url("server").await else { return };
    let env = [("DATABASE_URL", url.as_str()), ("PYLON_MANIFEST", &notes_manifest())];
    let server = TestServer::start(&env).await;
    let (token, user) = server.guest().await;
    let created = server
        .http
        .post(server.url("/api/entities/Note"))
        .bearer_auth(&token)
        .json(&json!({"owner": user, "text": "pg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let pulled: Value = server
        .http
        .get(server.url("/api/sync/pull?since=0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pulled["changes"][0]["row_id"], id.as_str());
    let data = server.data.as_ref().unwrap().0.clone();
    drop(server);

    let server = TestServer::start_in(TempDir::new("pg-again"), &env).await;
    let _ = data;
    let row: Value = server
        .http
        .get(server.url(&format!("/api/entities/Note/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(row["text"], "pg", "the row and the session (in Postgres) survived: {row}");
}
