//! The backend-neutral part of reads: filters checked against the manifest and parsed by
//! field type, the `WHERE` clause (each backend supplies its placeholder syntax), and the
//! change-log window check behind `RESYNC_REQUIRED`.

use crate::entity::EntityError;
use crate::manifest::{EntityDef, FieldType};

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

/// Checks `filters` (known, indexed fields only) and parses their values.
///
/// # Errors
/// Unknown or unindexed fields, values that do not parse.
pub fn parse_filters(
    def: &EntityDef,
    filters: &[(String, String)],
) -> Result<Vec<(String, FilterValue)>, EntityError> {
    filters
        .iter()
        .map(|(field, raw)| {
            if field != "id" && def.field(field).is_none() {
                return Err(EntityError::UnknownField { entity: def.name.clone(), field: field.clone() });
            }
            if !crate::migrate::filterable(def, field) {
                return Err(EntityError::BadRequest(format!(
                    "{}.{field} is not indexed: filters work on id, unique fields and the first field of an index",
                    def.name
                )));
            }
            Ok((field.clone(), parse_value(def, field, raw)?))
        })
        .collect()
}

fn parse_value(def: &EntityDef, field: &str, raw: &str) -> Result<FilterValue, EntityError> {
    let bad = |why: &str| EntityError::InvalidField {
        entity: def.name.clone(),
        field: field.to_owned(),
        reason: why.to_owned(),
    };
    Ok(match def.field(field).map_or(&FieldType::String, |f| &f.ty) {
        FieldType::Int => {
            FilterValue::Int(raw.parse().map_err(|_| bad("filter value is not an integer"))?)
        }
        FieldType::Float => {
            FilterValue::Float(raw.parse().map_err(|_| bad("filter value is not a number"))?)
        }
        FieldType::Bool => FilterValue::Bool(match raw {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad("filter value is not true or false")),
        }),
        _ => FilterValue::Text(raw.to_owned()),
    })
}

/// ` WHERE "f1" = <p1> AND … AND "id" > <pN>` (empty without conditions); `mark(n)` is the
/// backend's placeholder for parameter `n` (1-based). With `after`, the last parameter
/// is the cursor id.
#[must_use]
pub fn where_sql(
    filters: &[(String, FilterValue)],
    after: bool,
    mark: impl Fn(usize) -> String,
) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .enumerate()
        .map(|(i, (f, _))| format!("\"{f}\" = {}", mark(i + 1)))
        .collect();
    if after {
        parts.push(format!("\"id\" > {}", mark(filters.len() + 1)));
    }
    if parts.is_empty() { String::new() } else { format!(" WHERE {}", parts.join(" AND ")) }
}

/// Whether a pull from `since` can be answered from a log holding `oldest..=latest`
/// (`None`s: the log is empty).
///
/// # Errors
/// [`EntityError::ResyncRequired`] when `since` is ahead of the log or older than it keeps.
pub fn check_window(
    since: u64,
    oldest: Option<i64>,
    latest: Option<i64>,
) -> Result<(), EntityError> {
    let latest = latest.map_or(0, |v| u64::try_from(v).unwrap_or(0));
    let oldest = oldest.map_or(latest + 1, |v| u64::try_from(v).unwrap_or(0));
    if since > latest || (since + 1 < oldest && latest >= oldest) {
        return Err(EntityError::ResyncRequired { oldest_seq: oldest, latest_seq: latest });
    }
    Ok(())
}
