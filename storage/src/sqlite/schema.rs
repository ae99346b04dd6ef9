//! SQLite schema from the manifest: tables and indexes created or migrated at start (and
//! by `pylon migrate`), planned by [`crate::migrate`]. A change that would lose data is
//! refused with a message naming the entity and field, and nothing is applied: the whole
//! migration is one transaction.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rows::{column_type, table};
use crate::manifest::{EntityDef, FieldDef, Manifest};
use crate::migrate::{Action, Facts, StoredField, index_sql, plan, wanted_indexes};

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

/// Creates the internal tables (schema record, change log) if missing.
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
        apply(&tx, manifest, action)?;
    }
    for entity in &manifest.entities {
        sync_indexes(&tx, entity, &mut done)?;
        record(&tx, entity)?;
    }
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(done)
}

fn load_stored(tx: &Transaction<'_>) -> rusqlite::Result<Vec<StoredField>> {
    let mut stmt = tx.prepare("SELECT entity, field, type, optional, uniq FROM pylon_schema")?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredField {
            entity: r.get(0)?,
            field: r.get(1)?,
            ty: r.get(2)?,
            optional: r.get(3)?,
            unique: r.get(4)?,
        })
    })?;
    rows.collect()
}

fn facts(tx: &Transaction<'_>, stored: &[StoredField]) -> rusqlite::Result<Facts> {
    let mut facts = Facts::default();
    for s in stored {
        let t = table(&s.entity);
        if !facts.rows.contains_key(&s.entity) {
            facts.rows.insert(s.entity.clone(), count(tx, &format!("SELECT COUNT(*) FROM {t}"))?);
        }
        let n = count(tx, &format!("SELECT COUNT(*) FROM {t} WHERE \"{}\" IS NOT NULL", s.field))?;
        facts.values.insert((s.entity.clone(), s.field.clone()), n);
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

fn count(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<i64> {
    tx.query_row(sql, [], |r| r.get(0))
}

fn column_sql(f: &FieldDef) -> String {
    format!("\"{}\" {}", f.name, column_type(&f.ty))
}

fn apply(tx: &Transaction<'_>, manifest: &Manifest, action: &Action) -> rusqlite::Result<()> {
    let field_of = |e: &str, f: &str| manifest.entity(e).and_then(|d| d.field(f)).map(column_sql);
    match action {
        Action::CreateEntity(e) => {
            let Some(entity) = manifest.entity(e) else { return Ok(()) };
            let mut cols = vec!["\"id\" TEXT PRIMARY KEY NOT NULL".to_owned()];
            cols.extend(entity.fields.iter().map(column_sql));
            tx.execute_batch(&format!("CREATE TABLE {} ({})", table(e), cols.join(", ")))
        }
        Action::AddField(e, f) => match field_of(e, f) {
            Some(col) => tx.execute_batch(&format!("ALTER TABLE {} ADD COLUMN {col}", table(e))),
            None => Ok(()),
        },
        Action::DropField(e, f) => {
            tx.execute_batch(&format!("ALTER TABLE {} DROP COLUMN \"{f}\"", table(e)))
        }
        Action::DropEntity(e) => {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", table(e)))?;
            tx.execute("DELETE FROM pylon_schema WHERE entity = ?1", params![e]).map(|_| ())
        }
        Action::Retype(..) => Ok(()),
    }
}

fn sync_indexes(
    tx: &Transaction<'_>,
    entity: &EntityDef,
    done: &mut Vec<String>,
) -> Result<(), MigrateError> {
    let t = table(&entity.name);
    let wanted: Vec<(String, String)> =
        wanted_indexes(entity).iter().map(|ix| (ix.name.clone(), index_sql(ix, &t))).collect();
    let mut stmt = tx.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?;
    let existing: Vec<(String, String)> = stmt
        .query_map(params![format!("e_{}", entity.name)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, sql) in &existing {
        if !wanted.iter().any(|(n, s)| n == name && s == sql) {
            tx.execute_batch(&format!("DROP INDEX \"{name}\""))?;
            done.push(format!("drop index {name}"));
        }
    }
    for (name, sql) in &wanted {
        if !existing.iter().any(|(n, s)| n == name && s == sql) {
            tx.execute_batch(sql).map_err(|e| {
                MigrateError::Refused(format!(
                    "index {name} cannot be built on the existing rows: {e}"
                ))
            })?;
            done.push(format!("create index {name}"));
        }
    }
    Ok(())
}

fn record(tx: &Transaction<'_>, entity: &EntityDef) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM pylon_schema WHERE entity = ?1", params![entity.name])?;
    for f in &entity.fields {
        tx.execute(
            "INSERT INTO pylon_schema (entity, field, type, optional, uniq) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![entity.name, f.name, f.ty.as_str(), f.optional, f.unique],
        )?;
    }
    Ok(())
}
