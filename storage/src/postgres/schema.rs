//! Postgres schema: pylon's internal tables, and the entity tables and indexes migrated
//! to the manifest, planned by [`crate::migrate`] with the DDL of [`crate::sql`]. One
//! transaction under an advisory lock, so one process at a time migrates; a refused
//! change names the entity and field and applies nothing.

use sqlx::{Executor, PgConnection};

use super::rows::{DIALECT, query};
use super::{PgStore, pg};
use crate::StoreError;
use crate::manifest::EntityDef;
use crate::migrate::{self, Facts, StoredField, plan};
use crate::sql;

const INTERNAL: &str = "
    CREATE TABLE IF NOT EXISTS pylon_schema (entity TEXT NOT NULL, field TEXT NOT NULL, type TEXT NOT NULL,
        optional BOOLEAN NOT NULL, uniq BOOLEAN NOT NULL, PRIMARY KEY (entity, field));
    CREATE TABLE IF NOT EXISTS pylon_indexes (name TEXT PRIMARY KEY, entity TEXT NOT NULL, sql TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS pylon_seq (id INT PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
    INSERT INTO pylon_seq (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    CREATE TABLE IF NOT EXISTS pylon_changes (seq BIGINT PRIMARY KEY, entity TEXT NOT NULL, row_id TEXT NOT NULL,
        kind TEXT NOT NULL, data TEXT, ts TEXT NOT NULL);
    ALTER TABLE pylon_changes ADD COLUMN IF NOT EXISTS prior TEXT;
    CREATE TABLE IF NOT EXISTS pylon_matches (match_id TEXT PRIMARY KEY, game TEXT NOT NULL, tick BIGINT NOT NULL,
        state TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS pylon_replays (match_id TEXT PRIMARY KEY, game TEXT NOT NULL, log TEXT NOT NULL,
        finished_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS pylon_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

fn refused(why: &str) -> StoreError {
    StoreError::Migrate(format!("refused: {why}"))
}

impl PgStore {
    /// Brings the schema to the manifest; what it did (or would do, with `dry_run`).
    ///
    /// # Errors
    /// A refusal naming entity and field, or database errors.
    pub async fn migrate(&self, dry_run: bool) -> Result<Vec<String>, StoreError> {
        let manifest = self.manifest();
        let mut tx = self.pool().begin().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(7366871)").await.map_err(pg)?;
        sqlx::raw_sql(INTERNAL).execute(&mut *tx).await.map_err(pg)?;
        let stored: Vec<(String, String, String, bool, bool)> =
            sqlx::query_as(sql::STORED_FIELDS).fetch_all(&mut *tx).await.map_err(pg)?;
        let stored: Vec<StoredField> = stored.into_iter().map(StoredField::from).collect();
        let facts = facts(&mut tx, &stored).await?;
        let mut existing = Vec::new();
        for e in &manifest.entities {
            let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1")
                .bind(format!("e_{}", e.name))
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg)?;
            if found.is_some() {
                existing.push(e.name.clone());
            }
        }
        let actions = plan(manifest, &stored, &facts, |e| existing.iter().any(|x| x == e))
            .map_err(|why| refused(&why))?;
        let mut done: Vec<String> = actions.iter().map(ToString::to_string).collect();
        for action in &actions {
            if let Some(ddl) = action.ddl(&DIALECT, manifest) {
                sqlx::raw_sql(&ddl).execute(&mut *tx).await.map_err(pg)?;
            }
        }
        for entity in &manifest.entities {
            sync_indexes(&mut tx, entity, &mut done).await?;
            for st in DIALECT.record(entity) {
                query(&st).execute(&mut *tx).await.map_err(pg)?;
            }
        }
        if dry_run {
            tx.rollback().await.map_err(pg)?;
        } else {
            query(&DIALECT.remember_manifest(manifest)).execute(&mut *tx).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
        }
        Ok(done)
    }
}

async fn facts(tx: &mut PgConnection, stored: &[StoredField]) -> Result<Facts, StoreError> {
    let mut facts = Facts::default();
    for (fact, sql) in migrate::fact_queries(stored) {
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *tx).await.map_err(pg)?;
        facts.record(fact, n);
    }
    Ok(facts)
}

/// Postgres keeps no index SQL of its own: `pylon_indexes` records what pylon created.
async fn sync_indexes(
    tx: &mut PgConnection,
    entity: &EntityDef,
    done: &mut Vec<String>,
) -> Result<(), StoreError> {
    let existing: Vec<(String, String)> =
        sqlx::query_as("SELECT name, sql FROM pylon_indexes WHERE entity = $1")
            .bind(&entity.name)
            .fetch_all(&mut *tx)
            .await
            .map_err(pg)?;
    let (drop, create) = migrate::index_changes(entity, &existing);
    for name in drop {
        sqlx::raw_sql(&format!("DROP INDEX IF EXISTS \"{name}\""))
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        sqlx::query("DELETE FROM pylon_indexes WHERE name = $1")
            .bind(&name)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        done.push(format!("drop index {name}"));
    }
    for (name, sql) in create {
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| refused(&migrate::index_refused(&name, &e)))?;
        sqlx::query("INSERT INTO pylon_indexes (name, entity, sql) VALUES ($1, $2, $3)")
            .bind(&name)
            .bind(&entity.name)
            .bind(&sql)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        done.push(format!("create index {name}"));
    }
    Ok(())
}

/// The manifest the database at `url` was last migrated to, if any (`None` for a database
/// pylon never migrated).
///
/// # Errors
/// Connection failures (named as [`super::probe`] names them) and database errors.
pub async fn stored_manifest(url: &str) -> Result<Option<String>, StoreError> {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Open(format!("invalid DATABASE_URL: {e}")))?;
    super::probe(url, super::PROBE_TIMEOUT).await?;
    let mut conn = sqlx::ConnectOptions::connect(&options).await.map_err(pg)?;
    let found: Result<Option<String>, sqlx::Error> =
        sqlx::query_scalar(sql::STORED_MANIFEST).fetch_optional(&mut conn).await;
    let _ = sqlx::Connection::close(conn).await;
    match found {
        Ok(text) => Ok(text),
        // 42P01 undefined_table: a database pylon has not migrated yet.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => Ok(None),
        Err(e) => Err(pg(e)),
    }
}
