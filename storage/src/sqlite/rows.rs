//! Rows between JSON and SQLite: column types per field type, reading a row back into
//! JSON, binding JSON values as parameters.

use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::{Number, Value};

use crate::entity::Row;
use crate::manifest::{EntityDef, FieldType};

/// The table of entity `name`.
#[must_use]
pub fn table(name: &str) -> String {
    format!("\"e_{name}\"")
}

/// The SQLite column type of a field type.
#[must_use]
pub fn column_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Int | FieldType::Bool => "INTEGER",
        FieldType::Float => "REAL",
        _ => "TEXT",
    }
}

/// `"id", "f1", "f2"`: the select list of an entity.
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

/// Reads a row selected with [`select_list`].
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

/// A validated JSON value as an SQLite parameter.
#[must_use]
pub fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}
