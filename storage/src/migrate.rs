//! Backend-neutral migration planning: from the schema a database recorded last time,
//! a few facts about its rows, and the new manifest, decide what to change, or refuse
//! with a message naming the entity and field. Each backend gathers the facts and runs
//! the plan in one transaction with its own DDL.
//!
//! Allowed: new entities, new optional fields, new required fields on empty tables,
//! dropping fields or entities that hold no values, optional -> required when no row has
//! a null, int -> float, any type change on a field with no values, new and dropped
//! indexes. Refused: everything else that touches existing values.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::{EntityDef, FieldType, Manifest};
use crate::sql::{Dialect, table};

/// One field as a database recorded it (`pylon_schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredField {
    /// Entity.
    pub entity: String,
    /// Field.
    pub field: String,
    /// Type, manifest spelling.
    pub ty: String,
    /// Optional.
    pub optional: bool,
    /// Unique.
    pub unique: bool,
}

/// What the planner needs to know about existing rows.
#[derive(Debug, Default)]
pub struct Facts {
    /// Rows per stored entity.
    pub rows: BTreeMap<String, i64>,
    /// Non-null values per (entity, field).
    pub values: BTreeMap<(String, String), i64>,
}

/// One fact to count: the rows of a stored entity, or the values of a stored field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// Rows of the entity.
    Rows(String),
    /// Non-null values of (entity, field).
    Values(String, String),
}

impl From<(String, String, String, bool, bool)> for StoredField {
    /// A row of [`crate::sql::STORED_FIELDS`].
    fn from((entity, field, ty, optional, unique): (String, String, String, bool, bool)) -> Self {
        Self { entity, field, ty, optional, unique }
    }
}

/// The counts the planner needs about `stored`, each with the query that counts it.
#[must_use]
pub fn fact_queries(stored: &[StoredField]) -> Vec<(Fact, String)> {
    let mut out = Vec::new();
    for s in stored {
        if !out.iter().any(|(f, _)| *f == Fact::Rows(s.entity.clone())) {
            out.push((Fact::Rows(s.entity.clone()), crate::sql::count_rows(&s.entity)));
        }
        let values = Fact::Values(s.entity.clone(), s.field.clone());
        out.push((values, crate::sql::count_values(&s.entity, &s.field)));
    }
    out
}

impl Facts {
    /// Records the count of `fact`.
    pub fn record(&mut self, fact: Fact, n: i64) {
        match fact {
            Fact::Rows(entity) => {
                self.rows.insert(entity, n);
            }
            Fact::Values(entity, field) => {
                self.values.insert((entity, field), n);
            }
        }
    }

    fn rows(&self, entity: &str) -> i64 {
        self.rows.get(entity).copied().unwrap_or(0)
    }

    fn values(&self, entity: &str, field: &str) -> i64 {
        self.values.get(&(entity.to_owned(), field.to_owned())).copied().unwrap_or(0)
    }
}

/// One schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the entity's table.
    CreateEntity(String),
    /// Add a column.
    AddField(String, String),
    /// Drop an empty column.
    DropField(String, String),
    /// Drop an empty table.
    DropEntity(String),
    /// Record a type change (no DDL: the column keeps its storage; reads convert).
    Retype(String, String),
}

impl Action {
    /// The DDL of this step in `dialect` (`None`: nothing to run).
    #[must_use]
    pub fn ddl(&self, dialect: &Dialect, manifest: &Manifest) -> Option<String> {
        let field = |e: &str, f: &str| manifest.entity(e).and_then(|d| d.field(f));
        Some(match self {
            Self::CreateEntity(e) => {
                let entity = manifest.entity(e)?;
                let mut cols = vec![format!("\"id\" {}", dialect.id_column)];
                cols.extend(entity.fields.iter().map(|f| dialect.column(f)));
                format!("CREATE TABLE {} ({})", table(e), cols.join(", "))
            }
            Self::AddField(e, f) => {
                format!("ALTER TABLE {} ADD COLUMN {}", table(e), dialect.column(field(e, f)?))
            }
            Self::DropField(e, f) => format!("ALTER TABLE {} DROP COLUMN \"{f}\"", table(e)),
            // Entity names are identifiers (the manifest refuses others).
            Self::DropEntity(e) => format!(
                "DROP TABLE IF EXISTS {}; DELETE FROM pylon_schema WHERE entity = '{e}'",
                table(e)
            ),
            // The column holds no values (or int -> float): change its storage type.
            Self::Retype(e, f) if dialect.alter_types => {
                let ty = (dialect.column_type)(&field(e, f)?.ty);
                format!(
                    "ALTER TABLE {} ALTER COLUMN \"{f}\" TYPE {ty} USING \"{f}\"::{ty}",
                    table(e)
                )
            }
            Self::Retype(..) => return None,
        })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CreateEntity(e) => write!(f, "create entity {e}"),
            Self::AddField(e, x) => write!(f, "add field {e}.{x}"),
            Self::DropField(e, x) => write!(f, "drop empty field {e}.{x}"),
            Self::DropEntity(e) => write!(f, "drop empty entity {e}"),
            Self::Retype(e, x) => write!(f, "retype {e}.{x}"),
        }
    }
}

/// The changes that bring a database with `stored` schema and `facts` to `manifest`.
/// `exists(entity)` says whether a table is there without a recorded schema (adopted).
///
/// # Errors
/// The refusal, naming entity and field.
pub fn plan(
    manifest: &Manifest,
    stored: &[StoredField],
    facts: &Facts,
    exists: impl Fn(&str) -> bool,
) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    for entity in &manifest.entities {
        let mine: Vec<&StoredField> = stored.iter().filter(|s| s.entity == entity.name).collect();
        if mine.is_empty() && !exists(&entity.name) {
            actions.push(Action::CreateEntity(entity.name.clone()));
        } else {
            plan_entity(entity, &mine, facts, &mut actions)?;
        }
    }
    let old: BTreeSet<&str> = stored.iter().map(|s| s.entity.as_str()).collect();
    for gone in old.into_iter().filter(|e| manifest.entity(e).is_none()) {
        let rows = facts.rows(gone);
        if rows > 0 {
            return Err(format!(
                "entity {gone} was removed from the manifest but holds {rows} rows"
            ));
        }
        actions.push(Action::DropEntity(gone.to_owned()));
    }
    Ok(actions)
}

fn plan_entity(
    entity: &EntityDef,
    stored: &[&StoredField],
    facts: &Facts,
    actions: &mut Vec<Action>,
) -> Result<(), String> {
    let name = &entity.name;
    let rows = facts.rows(name);
    for field in &entity.fields {
        let Some(old) = stored.iter().find(|s| s.field == field.name) else {
            if !field.optional && rows > 0 {
                return Err(format!(
                    "{name}.{}: new required field on a table with {rows} rows (make it optional)",
                    field.name
                ));
            }
            actions.push(Action::AddField(name.clone(), field.name.clone()));
            continue;
        };
        let new_ty = field.ty.as_str();
        let values = facts.values(name, &field.name);
        if old.ty != new_ty {
            let widening = old.ty == "int" && field.ty == FieldType::Float;
            if values > 0 && !widening {
                return Err(format!(
                    "{name}.{}: type change {} -> {new_ty} on a field with {values} values",
                    field.name, old.ty
                ));
            }
            actions.push(Action::Retype(name.clone(), field.name.clone()));
        }
        if old.optional && !field.optional && values < rows {
            return Err(format!(
                "{name}.{}: made required but {} rows have no value",
                field.name,
                rows - values
            ));
        }
    }
    for old in stored.iter().filter(|s| entity.field(&s.field).is_none()) {
        let values = facts.values(name, &old.field);
        if values > 0 {
            return Err(format!(
                "{name}.{}: removed from the manifest but holds {values} values",
                old.field
            ));
        }
        actions.push(Action::DropField(name.clone(), old.field.clone()));
    }
    Ok(())
}

/// An index pylon maintains: `ux_<entity>_<field>` for unique fields, `ix_<entity>_<name>`
/// for the manifest's indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedIndex {
    /// Index name.
    pub name: String,
    /// Unique.
    pub unique: bool,
    /// Columns, in order.
    pub columns: Vec<String>,
}

/// The indexes `entity` should have.
#[must_use]
pub fn wanted_indexes(entity: &EntityDef) -> Vec<WantedIndex> {
    let mut out: Vec<WantedIndex> = entity
        .fields
        .iter()
        .filter(|f| f.unique)
        .map(|f| WantedIndex {
            name: format!("ux_{}_{}", entity.name, f.name),
            unique: true,
            columns: vec![f.name.clone()],
        })
        .collect();
    out.extend(entity.indexes.iter().map(|ix| WantedIndex {
        name: format!("ix_{}_{}", entity.name, ix.name),
        unique: ix.unique,
        columns: ix.fields.clone(),
    }));
    out
}

/// `CREATE [UNIQUE] INDEX "<name>" ON <table> ("a", "b")`.
#[must_use]
pub fn index_sql(ix: &WantedIndex, table: &str) -> String {
    let cols: Vec<String> = ix.columns.iter().map(|c| format!("\"{c}\"")).collect();
    let unique = if ix.unique { "UNIQUE " } else { "" };
    format!("CREATE {unique}INDEX \"{}\" ON {table} ({})", ix.name, cols.join(", "))
}

/// The index changes that bring `entity` from the `existing` indexes (name, SQL as
/// created) to the wanted ones: the names to drop, then the (name, SQL) to create.
#[must_use]
pub fn index_changes(
    entity: &EntityDef,
    existing: &[(String, String)],
) -> (Vec<String>, Vec<(String, String)>) {
    let t = crate::sql::table(&entity.name);
    let wanted: Vec<(String, String)> =
        wanted_indexes(entity).iter().map(|ix| (ix.name.clone(), index_sql(ix, &t))).collect();
    let drop =
        existing.iter().filter(|old| !wanted.contains(old)).map(|(name, _)| name.clone()).collect();
    let create = wanted.into_iter().filter(|new| !existing.contains(new)).collect();
    (drop, create)
}

/// Why index `name` could not be built (a unique index over duplicate values).
#[must_use]
pub fn index_refused(name: &str, error: &dyn std::fmt::Display) -> String {
    format!("index {name} cannot be built on the existing rows: {error}")
}

/// Whether `field` of `def` may be filtered on: `id`, unique fields, or the first column
/// of an index (so every filter can use an index).
#[must_use]
pub fn filterable(def: &EntityDef, field: &str) -> bool {
    field == "id"
        || def.field(field).is_some_and(|f| f.unique)
        || def.indexes.iter().any(|ix| ix.fields.first().is_some_and(|f| f == field))
}
