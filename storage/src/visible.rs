//! Entity reads under the read policy: pages and counts of the rows a caller may see,
//! and nothing about the others.
//!
//! A caller's read scope is decided before any row is read
//! ([`Policies::read_scope`]): every row, none, or rows with given field values. Values on
//! indexed fields are pushed down to the store as filters; when they are the whole rule,
//! the store's page and count are the answer. Otherwise the matching rows are scanned in
//! id order and checked one by one, at most [`MAX_SCAN_ROWS`] per request (beyond that
//! a list fails with [`ReadError::TooBroad`], which the API answers 400
//! `QUERY_TOO_BROAD`; a cursor page stops early with `has_more`).

use serde_json::Value;

use crate::access::{Caller, Policies, ReadScope};
use crate::entity::{CursorPage, EntityError, Page, Row};
use crate::manifest::{EntityDef, FieldType};
use crate::store::Store;

/// Most rows one list or cursor request checks one by one.
pub const MAX_SCAN_ROWS: usize = 100_000;
/// Rows read per store call while scanning.
const SCAN_BATCH: u32 = 1000;

/// Why a policy-filtered read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store refused (unknown entity, bad filter, …).
    #[error(transparent)]
    Entity(#[from] EntityError),
    /// Counting the visible rows would check more than [`MAX_SCAN_ROWS`].
    #[error("more than {MAX_SCAN_ROWS} rows match; the read policy must check each one")]
    TooBroad,
}

/// How to answer one read: the store filters to use and whether each row must still be
/// checked.
enum Plan {
    Nothing,
    Store { filters: Vec<(String, String)>, check_rows: bool },
}

fn plan(
    store: &Store,
    policies: &Policies,
    entity: &str,
    caller: &Caller,
    filters: &[(String, String)],
) -> Result<Plan, EntityError> {
    let def = crate::query::entity(store.manifest(), entity)?;
    crate::query::parse_filters(def, filters)?;
    let (equal, exact) = match policies.read_scope(entity, caller) {
        ReadScope::All => return Ok(Plan::Store { filters: filters.to_vec(), check_rows: false }),
        ReadScope::Nothing => return Ok(Plan::Nothing),
        ReadScope::Where { equal, exact } => (equal, exact),
    };
    let mut pushed = filters.to_vec();
    let mut check_rows = !exact;
    for (field, value) in equal {
        let Some(text) = filter_text(def, &field, &value) else {
            check_rows = true;
            continue;
        };
        match pushed.iter().find(|(f, _)| *f == field) {
            // The caller asked for another value than the only one they may see.
            Some((_, asked)) if *asked != text => return Ok(Plan::Nothing),
            Some(_) => {}
            None => pushed.push((field, text)),
        }
    }
    Ok(Plan::Store { filters: pushed, check_rows })
}

/// The filter text for `field == value`, when the store can filter on it with the same
/// meaning as the rule (an indexed field of the value's JSON type).
fn filter_text(def: &EntityDef, field: &str, value: &Value) -> Option<String> {
    if !crate::migrate::filterable(def, field) {
        return None;
    }
    let ty = if field == "id" { &FieldType::String } else { &def.field(field)?.ty };
    match (ty, value) {
        (FieldType::Int | FieldType::Float, Value::Number(n)) => Some(n.to_string()),
        (FieldType::Bool, Value::Bool(b)) => Some(b.to_string()),
        (FieldType::Int | FieldType::Float | FieldType::Bool, _)
        | (_, Value::Number(_) | Value::Bool(_)) => None,
        (_, Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A page of `list` with the count of visible rows.
///
/// # Errors
/// [`ReadError::Entity`] from the store, [`ReadError::TooBroad`] past [`MAX_SCAN_ROWS`].
pub async fn list(
    store: &Store,
    policies: &Policies,
    entity: &str,
    caller: &Caller,
    filters: Vec<(String, String)>,
    limit: u32,
    offset: u64,
) -> Result<Page, ReadError> {
    let (filters, check_rows) = match plan(store, policies, entity, caller, &filters)? {
        Plan::Nothing => return Ok(Page::default()),
        Plan::Store { filters, check_rows } => (filters, check_rows),
    };
    if !check_rows {
        return Ok(store.list(entity, filters, limit, offset).await?);
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit as usize);
    let (mut rows, mut count, mut scanned, mut after) = (Vec::new(), 0usize, 0usize, None);
    loop {
        let page = store.cursor(entity, after.take(), filters.clone(), SCAN_BATCH).await?;
        scanned += page.rows.len();
        for row in page.rows {
            if policies.can_read(entity, caller, &row) {
                if (start..end).contains(&count) {
                    rows.push(row);
                }
                count += 1;
            }
        }
        if !page.has_more {
            break;
        }
        if scanned >= MAX_SCAN_ROWS {
            return Err(ReadError::TooBroad);
        }
        after = page.next_cursor;
    }
    Ok(Page { rows, count: count as u64 })
}

/// A keyset page of the visible rows: up to `limit` of them, after `after`.
///
/// # Errors
/// [`ReadError::Entity`] from the store.
pub async fn cursor(
    store: &Store,
    policies: &Policies,
    entity: &str,
    caller: &Caller,
    after: Option<String>,
    filters: Vec<(String, String)>,
    limit: u32,
) -> Result<CursorPage, ReadError> {
    let (filters, check_rows) = match plan(store, policies, entity, caller, &filters)? {
        Plan::Nothing => return Ok(CursorPage::default()),
        Plan::Store { filters, check_rows } => (filters, check_rows),
    };
    let mut page = store.cursor(entity, after, filters.clone(), limit).await?;
    if !check_rows {
        return Ok(page);
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut scanned = 0usize;
    loop {
        scanned += page.rows.len();
        rows.extend(page.rows.drain(..).filter(|r| policies.can_read(entity, caller, r)));
        let full = rows.len() >= limit as usize;
        if full || !page.has_more || scanned >= MAX_SCAN_ROWS {
            break;
        }
        page = store.cursor(entity, page.next_cursor.take(), filters.clone(), limit).await?;
    }
    if rows.len() > limit as usize {
        // Two store pages gave more than a page: the next one starts after the last row
        // returned.
        rows.truncate(limit as usize);
        return Ok(CursorPage { next_cursor: crate::query::last_id(&rows), rows, has_more: true });
    }
    // The next page starts after the last row checked, visible or not.
    Ok(CursorPage { rows, next_cursor: page.next_cursor, has_more: page.has_more })
}
