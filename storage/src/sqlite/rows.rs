//! Rows between JSON and SQLite: the dialect (placeholders `?n`, column types per field
//! type), reading a row back into JSON, binding parameters.

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use serde_json::{Number, Value};

use crate::entity::Row;
use crate::manifest::{EntityDef, FieldType};
use crate::sql::{Dialect, Param};

/// SQLite's SQL.
pub(super) const DIALECT: Dialect = Dialect {
    mark: |n| format!("?{n}"),
    column_type,
    id_column: "TEXT PRIMARY KEY NOT NULL",
    alter_types: false,
};

/// The SQLite column type of a field type.
#[must_use]
pub fn column_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Int | FieldType::Bool => "INTEGER",
        FieldType::Float => "REAL",
        _ => "TEXT",
    }
}

/// Reads a row selected with [`crate::sql::select_list`].
///
/// # Errors
/// A rusqlite error when a column cannot be read.
pub fn read_row(entity: &EntityDef, row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let mut out = Row::new();
    let id: String = row.get(0)?;
    out.insert("id".into(), Value::String(id));
    for (i, field) in entity.fields.iter().enumerate() {
        let value = to_json(&field.ty, row.get_ref(i + 1)?);
        out.insert(field.name.clone(), value);
    }
    Ok(out)
}

fn to_json(ty: &FieldType, v: ValueRef<'_>) -> Value {
    match (ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (FieldType::Bool, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (FieldType::Float, ValueRef::Integer(i)) => {
            Number::from_f64(i as f64).map_or(Value::Null, Value::Number)
        }
        (_, ValueRef::Integer(i)) => Value::Number(i.into()),
        (_, ValueRef::Real(f)) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        (_, ValueRef::Text(t)) => Value::String(String::from_utf8_lossy(t).into_owned()),
        (_, ValueRef::Blob(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(match self {
            Self::Text(Some(t)) => return Ok(ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes()))),
            Self::Text(None) => SqlValue::Null,
            Self::Int(v) => v.map_or(SqlValue::Null, SqlValue::Integer),
            Self::Float(v) => v.map_or(SqlValue::Null, SqlValue::Real),
            Self::Bool(v) => v.map_or(SqlValue::Null, |b| SqlValue::Integer(i64::from(b))),
        }))
    }
}
