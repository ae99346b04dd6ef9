//! SQLite schema: pylon's internal tables, and the entity tables and indexes created or
//! migrated at start (and by `pylon migrate`, [`migrate_file`]), planned by
//! [`crate::migrate`] with the DDL of [`crate::sql`]. A change that would lose data is
//! refused with a message naming the entity and field, and nothing is applied: the whole
//! migration is one transaction.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::open_conn;
use super::rows::DIALECT;
use crate::StoreError;
use crate::manifest::{EntityDef, Manifest};
use crate::migrate::{self, Facts, StoredField, plan};
use crate::sql;

/// Why a migration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The change would lose or invalidate data.
    #[error("refused: {0}")]
    Refused(String),
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Creates the internal tables (schema record, change log, saved matches, replays) if
/// missing.
///
/// # Errors
/// SQLite errors.
pub fn init_internal(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS pylon_schema (
             entity TEXT NOT NULL, field TEXT NOT NULL, type TEXT NOT NULL,
             optional INTEGER NOT NULL, uniq INTEGER NOT NULL,
             PRIMARY KEY (entity, field)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS pylon_changes (
             seq INTEGER PRIMARY KEY, entity TEXT NOT NULL, row_id TEXT NOT NULL,
             kind TEXT NOT NULL, data TEXT, ts TEXT NOT NULL, prior TEXT);
         CREATE TABLE IF NOT EXISTS pylon_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
             WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS pylon_matches (
             match_id TEXT PRIMARY KEY, game TEXT NOT NULL, tick INTEGER NOT NULL,
             state TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS pylon_replays (
             match_id TEXT PRIMARY KEY, game TEXT NOT NULL, log TEXT NOT NULL,
             finished_at TEXT NOT NULL) WITHOUT ROWID;",
    )?;
    // Change logs written before updates kept the row as it was gain the column.
    let has_prior: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('pylon_changes') WHERE name = 'prior'",
        [],
        |r| r.get(0),
    )?;
    if !has_prior {
        conn.execute_batch("ALTER TABLE pylon_changes ADD COLUMN prior TEXT")?;
    }
    Ok(())
}

/// Brings the database to `manifest`; returns what it did (empty: already current).
/// `dry_run` checks and reports without applying.
///
/// # Errors
/// [`MigrateError::Refused`] naming the entity and field, or SQLite errors.
pub fn migrate(
    conn: &mut Connection,
    manifest: &Manifest,
    dry_run: bool,
) -> Result<Vec<String>, MigrateError> {
    init_internal(conn)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let stored = load_stored(&tx)?;
    let facts = facts(&tx, &stored)?;
    let mut existing = Vec::new();
    for e in &manifest.entities {
        if table_exists(&tx, &e.name)? {
            existing.push(e.name.clone());
        }
    }
    let actions = plan(manifest, &stored, &facts, |e| existing.iter().any(|x| x == e))
        .map_err(MigrateError::Refused)?;
    let mut done: Vec<String> = actions.iter().map(ToString::to_string).collect();
    for action in &actions {
        if let Some(ddl) = action.ddl(&DIALECT, manifest) {
            tx.execute_batch(&ddl)?;
        }
    }
    for entity in &manifest.entities {
        sync_indexes(&tx, entity, &mut done)?;
        for st in DIALECT.record(entity) {
            tx.execute(&st.sql, rusqlite::params_from_iter(&st.params))?;
        }
    }
    if dry_run {
        tx.rollback()?;
    } else {
        let st = DIALECT.remember_manifest(manifest);
        tx.execute(&st.sql, rusqlite::params_from_iter(&st.params))?;
        tx.commit()?;
    }
    Ok(done)
}

/// Migrates the database at `path` to `manifest` (`pylon migrate`); what it did (or would
/// do, with `dry_run`).
///
/// # Errors
/// [`StoreError::Migrate`] naming entity and field for a refused change.
pub fn migrate_file(
    path: &Path,
    manifest: &Manifest,
    dry_run: bool,
) -> Result<Vec<String>, StoreError> {
    super::create_parent(path)?;
    let mut conn = open_conn(path, false)?;
    migrate(&mut conn, manifest, dry_run).map_err(|e| StoreError::Migrate(e.to_string()))
}

fn load_stored(tx: &Transaction<'_>) -> rusqlite::Result<Vec<StoredField>> {
    let mut stmt = tx.prepare(sql::STORED_FIELDS)?;
    let rows = stmt.query_map([], |r| <(String, String, String, bool, bool)>::try_from(r))?;
    rows.map(|r| r.map(StoredField::from)).collect()
}

fn facts(tx: &Transaction<'_>, stored: &[StoredField]) -> rusqlite::Result<Facts> {
    let mut facts = Facts::default();
    for (fact, sql) in migrate::fact_queries(stored) {
        facts.record(fact, tx.query_row(&sql, [], |r| r.get(0))?);
    }
    Ok(facts)
}

fn table_exists(tx: &Transaction<'_>, entity: &str) -> rusqlite::Result<bool> {
    let name = format!("e_{entity}");
    tx.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

fn sync_indexes(
    tx: &Transaction<'_>,
    entity: &EntityDef,
    done: &mut Vec<String>,
) -> Result<(), MigrateError> {
    let mut stmt = tx.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?;
    let existing: Vec<(String, String)> = stmt
        .query_map(params![format!("e_{}", entity.name)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (drop, create) = migrate::index_changes(entity, &existing);
    for name in drop {
        tx.execute_batch(&format!("DROP INDEX \"{name}\""))?;
        done.push(format!("drop index {name}"));
    }
    for (name, sql) in create {
        tx.execute_batch(&sql)
            .map_err(|e| MigrateError::Refused(migrate::index_refused(&name, &e)))?;
        done.push(format!("create index {name}"));
    }
    Ok(())
}

/// The manifest the SQLite database at `path` was last migrated to, if any (`None` when
/// the file does not exist yet or pylon never migrated it).
///
/// # Errors
/// The file cannot be opened or read.
pub fn stored_manifest(path: &Path) -> Result<Option<String>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = open_conn(path, true)?;
    let found = conn.query_row(sql::STORED_MANIFEST, [], |r| r.get::<_, String>(0)).optional();
    match found {
        Ok(text) => Ok(text),
        Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
            Ok(None)
        }
        Err(e) => Err(StoreError::from(e)),
    }
}
