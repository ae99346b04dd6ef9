//! Schema from the manifest: tables and indexes created or migrated at start (and by
//! `pylon migrate`). A change that would lose data is refused with a message naming the
//! entity and field, and nothing is applied: the whole migration is one transaction.
//!
//! Allowed: new entities, new optional fields, new required fields on empty tables,
//! dropping fields or entities that hold no values, optional -> required when no row has
//! a null, int -> float, any type change on a field with no values, new and dropped
//! indexes. Refused: everything else that touches existing values.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rows::{column_type, table};
use crate::manifest::{EntityDef, FieldDef, FieldType, Manifest};

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

/// One stored field: (entity, field, type, optional, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    entity: String,
    field: String,
    ty: String,
    optional: bool,
    unique: bool,
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
             kind TEXT NOT NULL, data TEXT, ts TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS pylon_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
             WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS pylon_matches (
             match_id TEXT PRIMARY KEY, game TEXT NOT NULL, tick INTEGER NOT NULL,
             state TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS pylon_replays (
             match_id TEXT PRIMARY KEY, game TEXT NOT NULL, log TEXT NOT NULL,
             finished_at TEXT NOT NULL) WITHOUT ROWID;",
    )
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
    let mut actions = Vec::new();
    for entity in &manifest.entities {
        let mine: Vec<&Stored> = stored.iter().filter(|s| s.entity == entity.name).collect();
        if mine.is_empty() && !table_exists(&tx, &entity.name)? {
            create_entity(&tx, entity)?;
            actions.push(format!("create entity {}", entity.name));
        } else {
            migrate_entity(&tx, entity, &mine, &mut actions)?;
        }
        sync_indexes(&tx, entity, &mut actions)?;
        record(&tx, entity)?;
    }
    for gone in stored.iter().map(|s| s.entity.as_str()).collect::<std::collections::BTreeSet<_>>()
    {
        if manifest.entity(gone).is_none() {
            let rows = count(&tx, &format!("SELECT COUNT(*) FROM {}", table(gone)))?;
            if rows > 0 {
                return Err(MigrateError::Refused(format!(
                    "entity {gone} was removed from the manifest but holds {rows} rows"
                )));
            }
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", table(gone)))?;
            tx.execute("DELETE FROM pylon_schema WHERE entity = ?1", params![gone])?;
            actions.push(format!("drop empty entity {gone}"));
        }
    }
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(actions)
}

fn load_stored(tx: &Transaction<'_>) -> rusqlite::Result<Vec<Stored>> {
    let mut stmt = tx.prepare("SELECT entity, field, type, optional, uniq FROM pylon_schema")?;
    let rows = stmt.query_map([], |r| {
        Ok(Stored {
            entity: r.get(0)?,
            field: r.get(1)?,
            ty: r.get(2)?,
            optional: r.get(3)?,
            unique: r.get(4)?,
        })
    })?;
    rows.collect()
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

fn create_entity(tx: &Transaction<'_>, entity: &EntityDef) -> rusqlite::Result<()> {
    let mut cols = vec!["\"id\" TEXT PRIMARY KEY NOT NULL".to_owned()];
    cols.extend(entity.fields.iter().map(column_sql));
    tx.execute_batch(&format!("CREATE TABLE {} ({})", table(&entity.name), cols.join(", ")))
}

fn migrate_entity(
    tx: &Transaction<'_>,
    entity: &EntityDef,
    stored: &[&Stored],
    actions: &mut Vec<String>,
) -> Result<(), MigrateError> {
    let t = table(&entity.name);
    let rows = count(tx, &format!("SELECT COUNT(*) FROM {t}"))?;
    let values =
        |field: &str| count(tx, &format!("SELECT COUNT(*) FROM {t} WHERE \"{field}\" IS NOT NULL"));
    let refuse =
        |field: &str, why: String| MigrateError::Refused(format!("{}.{field}: {why}", entity.name));
    for field in &entity.fields {
        let Some(old) = stored.iter().find(|s| s.field == field.name) else {
            if !field.optional && rows > 0 {
                return Err(refuse(
                    &field.name,
                    format!("new required field on a table with {rows} rows (make it optional)"),
                ));
            }
            tx.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN {}", column_sql(field)))?;
            actions.push(format!("add field {}.{}", entity.name, field.name));
            continue;
        };
        let new_ty = field.ty.as_str();
        if old.ty != new_ty {
            let widening = old.ty == "int" && field.ty == FieldType::Float;
            let n = values(&field.name)?;
            if n > 0 && !widening {
                return Err(refuse(
                    &field.name,
                    format!("type change {} -> {new_ty} on a field with {n} values", old.ty),
                ));
            }
            actions.push(format!("retype {}.{} {} -> {new_ty}", entity.name, field.name, old.ty));
        }
        if old.optional && !field.optional {
            let nulls =
                count(tx, &format!("SELECT COUNT(*) FROM {t} WHERE \"{}\" IS NULL", field.name))?;
            if nulls > 0 {
                return Err(refuse(
                    &field.name,
                    format!("made required but {nulls} rows have no value"),
                ));
            }
        }
    }
    for old in stored {
        if entity.field(&old.field).is_none() {
            let n = values(&old.field)?;
            if n > 0 {
                return Err(refuse(
                    &old.field,
                    format!("removed from the manifest but holds {n} values"),
                ));
            }
            tx.execute_batch(&format!("ALTER TABLE {t} DROP COLUMN \"{}\"", old.field))?;
            actions.push(format!("drop empty field {}.{}", entity.name, old.field));
        }
    }
    Ok(())
}

/// Index names pylon owns: `ux_<entity>_<field>` (unique fields), `ix_<entity>_<index>`.
fn sync_indexes(
    tx: &Transaction<'_>,
    entity: &EntityDef,
    actions: &mut Vec<String>,
) -> Result<(), MigrateError> {
    let t = table(&entity.name);
    let mut wanted: Vec<(String, String)> = Vec::new();
    for f in entity.fields.iter().filter(|f| f.unique) {
        wanted.push((
            format!("ux_{}_{}", entity.name, f.name),
            format!(
                "CREATE UNIQUE INDEX \"ux_{}_{}\" ON {t} (\"{}\")",
                entity.name, f.name, f.name
            ),
        ));
    }
    for ix in &entity.indexes {
        let cols: Vec<String> = ix.fields.iter().map(|c| format!("\"{c}\"")).collect();
        let unique = if ix.unique { "UNIQUE " } else { "" };
        wanted.push((
            format!("ix_{}_{}", entity.name, ix.name),
            format!(
                "CREATE {unique}INDEX \"ix_{}_{}\" ON {t} ({})",
                entity.name,
                ix.name,
                cols.join(", ")
            ),
        ));
    }
    let mut stmt = tx.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?;
    let existing: Vec<(String, String)> = stmt
        .query_map(params![format!("e_{}", entity.name)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, sql) in &existing {
        if !wanted.iter().any(|(n, s)| n == name && s == sql) {
            tx.execute_batch(&format!("DROP INDEX \"{name}\""))?;
            actions.push(format!("drop index {name}"));
        }
    }
    for (name, sql) in &wanted {
        if !existing.iter().any(|(n, s)| n == name && s == sql) {
            tx.execute_batch(sql).map_err(|e| {
                MigrateError::Refused(format!(
                    "index {name} cannot be built on the existing rows: {e}"
                ))
            })?;
            actions.push(format!("create index {name}"));
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
