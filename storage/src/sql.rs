//! The SQL both backends run, written once: table and column names, the statements of
//! writes, the change log, saved matches and replays, and the DDL of migrations. A
//! backend supplies its [`Dialect`] (placeholders, column types) and binds the
//! [`Param`]s; nothing here touches a database.

use serde_json::Value;

use crate::entity::{ChangeEvent, Row};
use crate::manifest::{EntityDef, FieldDef, FieldType, Manifest};

/// What differs between the backends' SQL.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The placeholder of parameter `n` (1-based): `?1` or `$1`.
    pub mark: fn(usize) -> String,
    /// The column type of a field type.
    pub column_type: fn(&FieldType) -> &'static str,
    /// The `id` column of a new entity table.
    pub id_column: &'static str,
    /// Whether a retyped field's column changes its type (Postgres). SQLite columns keep
    /// their storage class and reads convert.
    pub alter_types: bool,
}

/// A filter value, parsed by the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// Text, datetime, id.
    Text(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// One bind parameter, typed by its field: a `NULL` keeps its type (Postgres needs it).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text, datetime, id.
    Text(Option<String>),
    /// Integer.
    Int(Option<i64>),
    /// Float.
    Float(Option<f64>),
    /// Boolean.
    Bool(Option<bool>),
}

impl Param {
    /// A validated JSON value of a field of type `ty`.
    #[must_use]
    pub fn of(ty: &FieldType, v: &Value) -> Self {
        match ty {
            FieldType::Int => Self::Int(v.as_i64()),
            FieldType::Float => Self::Float(v.as_f64()),
            FieldType::Bool => Self::Bool(v.as_bool()),
            _ => Self::Text(v.as_str().map(str::to_owned)),
        }
    }

    /// Text.
    #[must_use]
    pub fn text(s: &str) -> Self {
        Self::Text(Some(s.to_owned()))
    }

    /// An integer (saturating at `i64::MAX`).
    #[must_use]
    pub fn int(n: u64) -> Self {
        Self::Int(Some(i64::try_from(n).unwrap_or(i64::MAX)))
    }
}

impl From<FilterValue> for Param {
    fn from(v: FilterValue) -> Self {
        match v {
            FilterValue::Text(t) => Self::Text(Some(t)),
            FilterValue::Int(i) => Self::Int(Some(i)),
            FilterValue::Float(f) => Self::Float(Some(f)),
            FilterValue::Bool(b) => Self::Bool(Some(b)),
        }
    }
}

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// The parameters.
    pub params: Vec<Param>,
}

/// The table of entity `name`.
#[must_use]
pub fn table(name: &str) -> String {
    format!("\"e_{name}\"")
}

/// `"id", "f1", "f2"`: the select list of an entity (what the backends' `read_row` reads).
#[must_use]
pub fn select_list(entity: &EntityDef) -> String {
    let mut out = String::from("\"id\"");
    for f in &entity.fields {
        out.push_str(", \"");
        out.push_str(&f.name);
        out.push('"');
    }
    out
}

/// The change-log columns, in the order of [`crate::entity::LogRow`].
const LOG_COLUMNS: &str = "seq, entity, row_id, kind, data, ts, prior";

/// The oldest and newest seq of the change log.
pub const LOG_WINDOW: &str = "SELECT MIN(seq), MAX(seq) FROM pylon_changes";

/// Every saved running match: (id, state JSON).
pub const SAVED_MATCHES: &str = "SELECT match_id, state FROM pylon_matches ORDER BY match_id";

/// Every field a database recorded ([`crate::migrate::StoredField`]).
pub const STORED_FIELDS: &str = "SELECT entity, field, type, optional, uniq FROM pylon_schema";

/// The manifest a database was last migrated to (`pylon_meta`).
pub const STORED_MANIFEST: &str = "SELECT value FROM pylon_meta WHERE key = 'manifest'";

impl Dialect {
    fn marks(&self, range: std::ops::RangeInclusive<usize>) -> String {
        range.map(self.mark).collect::<Vec<_>>().join(", ")
    }

    /// A column definition of a new table or column.
    #[must_use]
    pub fn column(&self, f: &FieldDef) -> String {
        format!("\"{}\" {}", f.name, (self.column_type)(&f.ty))
    }

    /// One row of `def` by id (the id is parameter 1).
    #[must_use]
    pub fn select_by_id(&self, def: &EntityDef) -> String {
        format!(
            "SELECT {} FROM {} WHERE \"id\" = {}",
            select_list(def),
            table(&def.name),
            (self.mark)(1)
        )
    }

    /// The insert of `row` (every field of `def`) under `id`.
    #[must_use]
    pub fn insert(&self, def: &EntityDef, id: &str, row: &Row) -> Statement {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table(&def.name),
            select_list(def),
            self.marks(1..=def.fields.len() + 1)
        );
        let mut params = vec![Param::text(id)];
        params.extend(
            def.fields.iter().map(|f| Param::of(&f.ty, row.get(&f.name).unwrap_or(&Value::Null))),
        );
        Statement { sql, params }
    }

    /// The update of row `id`: the fields in `changes` get their new values.
    #[must_use]
    pub fn update(&self, def: &EntityDef, id: &str, changes: &Row) -> Statement {
        let sets: Vec<String> = changes
            .keys()
            .enumerate()
            .map(|(i, k)| format!("\"{k}\" = {}", (self.mark)(i + 2)))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE \"id\" = {}",
            table(&def.name),
            sets.join(", "),
            (self.mark)(1)
        );
        let mut params = vec![Param::text(id)];
        for (k, v) in changes {
            let ty = def.field(k).map_or(&FieldType::String, |f| &f.ty);
            params.push(Param::of(ty, v));
        }
        Statement { sql, params }
    }

    /// The delete of row `id`.
    #[must_use]
    pub fn delete(&self, def: &EntityDef, id: &str) -> Statement {
        let sql = format!("DELETE FROM {} WHERE \"id\" = {}", table(&def.name), (self.mark)(1));
        Statement { sql, params: vec![Param::text(id)] }
    }

    /// The change-log entry of `change`; with `seq` the entry takes that number (Postgres
    /// counts itself), without it the database numbers it (SQLite's rowid).
    #[must_use]
    pub fn log_entry(&self, change: &ChangeEvent, seq: Option<u64>) -> Statement {
        let (data, prior) = change.log_columns();
        let mut params = vec![
            Param::text(&change.entity),
            Param::text(&change.row_id),
            Param::text(change.kind.as_str()),
            Param::Text(data),
            Param::Text(prior),
            Param::text(&change.timestamp),
        ];
        let mut columns = "entity, row_id, kind, data, prior, ts".to_owned();
        if let Some(seq) = seq {
            params.insert(0, Param::int(seq));
            columns.insert_str(0, "seq, ");
        }
        let sql = format!(
            "INSERT INTO pylon_changes ({columns}) VALUES ({})",
            self.marks(1..=params.len())
        );
        Statement { sql, params }
    }

    /// Change-log entries after seq parameter 1, at most parameter 2 of them.
    #[must_use]
    pub fn changes_after(&self) -> String {
        format!(
            "SELECT {LOG_COLUMNS} FROM pylon_changes WHERE seq > {} ORDER BY seq LIMIT {}",
            (self.mark)(1),
            (self.mark)(2)
        )
    }

    /// Saves (replacing) a running match's state.
    #[must_use]
    pub fn save_match(&self, match_id: &str, game: &str, tick: u64, state: String) -> Statement {
        let sql = format!(
            "INSERT INTO pylon_matches (match_id, game, tick, state, updated_at) VALUES ({})
             ON CONFLICT (match_id) DO UPDATE SET game = excluded.game, tick = excluded.tick,
             state = excluded.state, updated_at = excluded.updated_at",
            self.marks(1..=5)
        );
        let params = vec![
            Param::text(match_id),
            Param::text(game),
            Param::int(tick),
            Param::Text(Some(state)),
            Param::Text(Some(crate::time::now_rfc3339())),
        ];
        Statement { sql, params }
    }

    /// Forgets a match's saved state.
    #[must_use]
    pub fn delete_match(&self, match_id: &str) -> Statement {
        let sql = format!("DELETE FROM pylon_matches WHERE match_id = {}", (self.mark)(1));
        Statement { sql, params: vec![Param::text(match_id)] }
    }

    /// Stores (replacing) a finished match's replay log.
    #[must_use]
    pub fn save_replay(&self, match_id: &str, game: &str, log: String) -> Statement {
        let sql = format!(
            "INSERT INTO pylon_replays (match_id, game, log, finished_at) VALUES ({})
             ON CONFLICT (match_id) DO UPDATE SET game = excluded.game, log = excluded.log,
             finished_at = excluded.finished_at",
            self.marks(1..=4)
        );
        let params = vec![
            Param::text(match_id),
            Param::text(game),
            Param::Text(Some(log)),
            Param::Text(Some(crate::time::now_rfc3339())),
        ];
        Statement { sql, params }
    }

    /// A stored replay log by match id (parameter 1).
    #[must_use]
    pub fn replay(&self) -> String {
        format!("SELECT log FROM pylon_replays WHERE match_id = {}", (self.mark)(1))
    }

    /// Records `manifest` as the one the database is migrated to.
    #[must_use]
    pub fn remember_manifest(&self, manifest: &Manifest) -> Statement {
        Statement {
            sql: format!(
                "INSERT INTO pylon_meta (key, value) VALUES ('manifest', {}) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self.mark)(1)
            ),
            params: vec![Param::text(&manifest.source)],
        }
    }

    /// Replaces the recorded schema of `entity` (`pylon_schema`).
    #[must_use]
    pub fn record(&self, entity: &EntityDef) -> Vec<Statement> {
        let mut out = vec![Statement {
            sql: format!("DELETE FROM pylon_schema WHERE entity = {}", (self.mark)(1)),
            params: vec![Param::text(&entity.name)],
        }];
        let insert = format!(
            "INSERT INTO pylon_schema (entity, field, type, optional, uniq) VALUES ({})",
            self.marks(1..=5)
        );
        out.extend(entity.fields.iter().map(|f| Statement {
            sql: insert.clone(),
            params: vec![
                Param::text(&entity.name),
                Param::text(&f.name),
                Param::Text(Some(f.ty.as_str())),
                Param::Bool(Some(f.optional)),
                Param::Bool(Some(f.unique)),
            ],
        }));
        out
    }
}

/// Rows of stored entity `entity`.
#[must_use]
pub fn count_rows(entity: &str) -> String {
    format!("SELECT COUNT(*) FROM {}", table(entity))
}

/// Non-null values of `field` in stored entity `entity`.
#[must_use]
pub fn count_values(entity: &str, field: &str) -> String {
    format!("SELECT COUNT(*) FROM {} WHERE \"{field}\" IS NOT NULL", table(entity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::ChangeKind;

    const PG: Dialect = Dialect {
        mark: |n| format!("${n}"),
        column_type: |_| "TEXT",
        id_column: "TEXT PRIMARY KEY",
        alter_types: true,
    };

    /// A log entry numbered by the caller puts `seq` first; one numbered by the database
    /// has no `seq` column, and the placeholders follow the parameters either way.
    #[test]
    fn log_entries_with_and_without_seq() {
        let change = ChangeEvent {
            seq: 0,
            entity: "Player".into(),
            row_id: "p1".into(),
            kind: ChangeKind::Insert,
            data: Some(Row::new()),
            timestamp: "t".into(),
            before: None,
        };
        let own = PG.log_entry(&change, Some(7));
        assert!(own.sql.starts_with("INSERT INTO pylon_changes (seq, entity,"));
        assert!(own.sql.ends_with("($1, $2, $3, $4, $5, $6, $7)"));
        assert_eq!(own.params[0], Param::Int(Some(7)));
        let numbered = PG.log_entry(&change, None);
        assert!(numbered.sql.ends_with("($1, $2, $3, $4, $5, $6)"));
        assert_eq!(numbered.params[0], Param::text("Player"));
    }
}
