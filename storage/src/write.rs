//! The backend-neutral part of a write: validating fields against the manifest, building
//! the row an insert creates or an update leaves, and the policy guard. Backends only
//! read the current row and run the SQL.

use serde_json::Value;

use crate::entity::{EntityError, IndexedError, Row, Verdict, WriteOp, limits};
use crate::manifest::{EntityDef, check_value};

/// Refuses a batch of more than [`limits::MAX_BATCH`] operations.
///
/// # Errors
/// [`EntityError::BadRequest`], at the first operation over the limit.
pub fn check_batch(ops: &[WriteOp]) -> Result<(), IndexedError> {
    if ops.len() > limits::MAX_BATCH {
        return Err(EntityError::BadRequest(format!(
            "at most {} operations per transaction",
            limits::MAX_BATCH
        ))
        .in_operation(limits::MAX_BATCH));
    }
    Ok(())
}

/// Refuses the operation when its guard says no to going from `before` to `after`.
///
/// # Errors
/// [`EntityError::PolicyDenied`]; [`EntityError::NotFound`] when the caller may not see
/// the row (it answers like a row that does not exist).
pub fn check_guard(
    entity: &EntityDef,
    op: &WriteOp,
    before: Option<&Row>,
    after: Option<&Row>,
) -> Result<(), EntityError> {
    let Some(guard) = op.guard.as_ref() else { return Ok(()) };
    match guard(before, after) {
        Verdict::Allow => Ok(()),
        Verdict::Deny(hint) => Err(EntityError::PolicyDenied {
            entity: entity.name.clone(),
            kind: op.kind.as_str(),
            hint,
        }),
        Verdict::Hidden => Err(EntityError::NotFound {
            entity: entity.name.clone(),
            id: op.id.clone().unwrap_or_default(),
        }),
    }
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
    check_guard(entity, op, None, Some(&row))?;
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

/// An update of `current`: (the row after it, the changed fields), guard passed on both
/// sides. The guard runs before the fields are validated, so a caller who may not see the
/// row learns nothing about it from a validation error.
///
/// # Errors
/// Invalid fields, an empty update, a policy denial, a hidden row.
pub fn update_row(
    entity: &EntityDef,
    op: &WriteOp,
    current: &Row,
) -> Result<(Row, Row), EntityError> {
    if op.guard.is_some() {
        check_guard(entity, op, Some(current), None).or_else(|e| match e {
            // Only visibility is decided here; the rule itself is checked on both rows below.
            EntityError::PolicyDenied { .. } => Ok(()),
            other => Err(other),
        })?;
    }
    let mut changes = Row::new();
    validate_into(entity, &op.data, &mut changes)?;
    if changes.is_empty() {
        return Err(EntityError::BadRequest("an update needs at least one field".into()));
    }
    let mut after = current.clone();
    for (k, v) in &changes {
        after.insert(k.clone(), v.clone());
    }
    check_guard(entity, op, Some(current), Some(&after))?;
    Ok((after, changes))
}

/// A delete of `current`, guard passed.
///
/// # Errors
/// A policy denial, a hidden row.
pub fn delete_row(entity: &EntityDef, op: &WriteOp, current: &Row) -> Result<(), EntityError> {
    check_guard(entity, op, Some(current), None)
}
