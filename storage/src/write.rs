//! The backend-neutral part of a write: validating fields against the manifest, building
//! the row an insert creates or an update leaves, and the policy guard. Backends only
//! read the current row and run the SQL.

use serde_json::Value;

use crate::entity::{ChangeKind, EntityError, Row, WriteOp};
use crate::manifest::{EntityDef, check_value};

fn deny(entity: &EntityDef, kind: ChangeKind) -> EntityError {
    EntityError::PolicyDenied { entity: entity.name.clone(), kind: kind.as_str() }
}

/// Refuses the operation when its guard says no to `row`.
///
/// # Errors
/// [`EntityError::PolicyDenied`].
pub fn check_guard(entity: &EntityDef, op: &WriteOp, row: &Row) -> Result<(), EntityError> {
    if op.guard.as_ref().is_some_and(|g| !g(row)) { Err(deny(entity, op.kind)) } else { Ok(()) }
}

/// Validates `data`'s fields against the entity into `row` (unknown fields refused).
fn validate_into(entity: &EntityDef, data: &Row, row: &mut Row) -> Result<(), EntityError> {
    for (key, value) in data {
        if key == "id" {
            continue;
        }
        let field = entity.field(key).ok_or_else(|| EntityError::UnknownField {
            entity: entity.name.clone(),
            field: key.clone(),
        })?;
        let value = check_value(field, value).map_err(|reason| EntityError::InvalidField {
            entity: entity.name.clone(),
            field: key.clone(),
            reason,
        })?;
        row.insert(key.clone(), value);
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && !id.chars().any(char::is_control)
}

/// The row an insert creates (id given or generated, every field present, validated,
/// guard passed).
///
/// # Errors
/// Invalid or missing fields, a bad id, a policy denial.
pub fn insert_row(entity: &EntityDef, op: &WriteOp) -> Result<(String, Row), EntityError> {
    let given =
        op.id.clone().or_else(|| op.data.get("id").and_then(Value::as_str).map(str::to_owned));
    let id = match given {
        Some(id) if valid_id(&id) => id,
        Some(id) => {
            return Err(EntityError::BadRequest(format!(
                "invalid id {id:?}: 1 to 128 characters, no control characters"
            )));
        }
        None => crate::new_id()?,
    };
    let mut row = Row::new();
    row.insert("id".into(), Value::String(id.clone()));
    validate_into(entity, &op.data, &mut row)?;
    for field in &entity.fields {
        match row.get(&field.name) {
            None | Some(Value::Null) if !field.optional => {
                return Err(EntityError::InvalidField {
                    entity: entity.name.clone(),
                    field: field.name.clone(),
                    reason: "required".into(),
                });
            }
            None => {
                row.insert(field.name.clone(), Value::Null);
            }
            Some(_) => {}
        }
    }
    check_guard(entity, op, &row)?;
    Ok((id, row))
}

/// The id an update or delete targets.
///
/// # Errors
/// [`EntityError::BadRequest`] without one.
pub fn target_id(op: &WriteOp) -> Result<String, EntityError> {
    op.id
        .clone()
        .ok_or_else(|| EntityError::BadRequest(format!("{} needs an id", op.kind.as_str())))
}

/// An update of `current`: (the row after it, the changed fields), guard passed.
///
/// # Errors
/// Invalid fields, an empty update, a policy denial.
pub fn update_row(
    entity: &EntityDef,
    op: &WriteOp,
    mut current: Row,
) -> Result<(Row, Row), EntityError> {
    let mut changes = Row::new();
    validate_into(entity, &op.data, &mut changes)?;
    if changes.is_empty() {
        return Err(EntityError::BadRequest("an update needs at least one field".into()));
    }
    for (k, v) in &changes {
        current.insert(k.clone(), v.clone());
    }
    check_guard(entity, op, &current)?;
    Ok((current, changes))
}
