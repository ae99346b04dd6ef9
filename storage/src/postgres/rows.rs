//! Rows between JSON and Postgres: the dialect (placeholders `$n`, column types per field
//! type), reading a row back into JSON, binding parameters.

use serde_json::{Number, Value};
use sqlx::Row as _;
use sqlx::postgres::{PgArguments, PgRow};

use crate::entity::Row;
use crate::manifest::{EntityDef, FieldType};
use crate::sql::{Dialect, Param, Statement};

/// Postgres's SQL. Ids sort bytewise (`COLLATE "C"`), as in SQLite, so keyset pages agree.
pub(super) const DIALECT: Dialect = Dialect {
    mark: |n| format!("${n}"),
    column_type,
    id_column: "TEXT COLLATE \"C\" PRIMARY KEY",
    alter_types: true,
};

/// The Postgres column type of a field type.
#[must_use]
pub fn column_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Int => "BIGINT",
        FieldType::Float => "DOUBLE PRECISION",
        FieldType::Bool => "BOOLEAN",
        _ => "TEXT",
    }
}

/// A query of `st`'s SQL with its parameters bound in order, each with its own type (a
/// `NULL` too).
pub(super) fn query(st: &Statement) -> sqlx::query::Query<'_, sqlx::Postgres, PgArguments> {
    let mut q = sqlx::query(&st.sql);
    for p in &st.params {
        q = match p {
            Param::Text(v) => q.bind(v.as_deref()),
            Param::Int(v) => q.bind(*v),
            Param::Float(v) => q.bind(*v),
            Param::Bool(v) => q.bind(*v),
        };
    }
    q
}

/// Reads a row selected with [`crate::sql::select_list`].
///
/// # Errors
/// A column that cannot be decoded.
pub(super) fn read_row(entity: &EntityDef, r: &PgRow) -> Result<Row, sqlx::Error> {
    let mut out = Row::new();
    out.insert("id".into(), Value::String(r.try_get::<String, _>(0)?));
    for (i, f) in entity.fields.iter().enumerate() {
        let v = match f.ty {
            FieldType::Int => r.try_get::<Option<i64>, _>(i + 1)?.map_or(Value::Null, Value::from),
            FieldType::Float => r
                .try_get::<Option<f64>, _>(i + 1)?
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            FieldType::Bool => {
                r.try_get::<Option<bool>, _>(i + 1)?.map_or(Value::Null, Value::Bool)
            }
            _ => r.try_get::<Option<String>, _>(i + 1)?.map_or(Value::Null, Value::String),
        };
        out.insert(f.name.clone(), v);
    }
    Ok(out)
}
