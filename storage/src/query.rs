//! The backend-neutral part of reads: filters checked against the manifest and parsed by
//! field type, the `WHERE` clause, the statements of a page ([`RowsQuery`]), and paging
//! itself: one row more than the page is fetched, and [`cursor_page`] and
//! [`changes_page`] turn what came back into `has_more` and the next cursor. The change-log
//! window check behind `RESYNC_REQUIRED` is here too. Each backend only runs the
//! statements (in its [`Dialect`]) and hands the rows over.

use serde_json::Value;

use crate::entity::{ChangeEvent, ChangesPage, CursorPage, EntityError, LogRow, Page, Row, limits};
use crate::manifest::{EntityDef, FieldType, Manifest};
use crate::sql::{Dialect, Param, Statement, select_list, table};

pub use crate::sql::FilterValue;

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

/// The entity `name` of `manifest`.
///
/// # Errors
/// [`EntityError::UnknownEntity`].
pub fn entity<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m EntityDef, EntityError> {
    manifest.entity(name).ok_or_else(|| EntityError::UnknownEntity(name.to_owned()))
}

/// Rows per page: `limit` between 1 and [`limits::MAX_PAGE`].
#[must_use]
pub fn page_size(limit: u32) -> usize {
    limit.clamp(1, limits::MAX_PAGE) as usize
}

/// One read of an entity's rows: the filters checked and parsed once, the `WHERE` clause
/// in the backend's placeholders, and the statements of a count, a page by offset and a
/// keyset page.
#[derive(Debug)]
pub struct RowsQuery<'m> {
    /// The entity read.
    pub def: &'m EntityDef,
    clause: String,
    params: Vec<Param>,
}

impl<'m> RowsQuery<'m> {
    /// Rows of `entity` matching `filters` (field = value, indexed fields only), with an
    /// id greater than `after` if given.
    ///
    /// # Errors
    /// Unknown entity or field, unindexed filter, a value that does not parse.
    pub fn new(
        dialect: &Dialect,
        manifest: &'m Manifest,
        entity_name: &str,
        filters: &[(String, String)],
        after: Option<&str>,
    ) -> Result<Self, EntityError> {
        let def = entity(manifest, entity_name)?;
        let parsed = parse_filters(def, filters)?;
        let clause = where_sql(&parsed, after.is_some(), dialect.mark);
        let mut params: Vec<Param> = parsed.into_iter().map(|(_, v)| Param::from(v)).collect();
        params.extend(after.map(Param::text));
        Ok(Self { def, clause, params })
    }

    fn statement(&self, sql: String) -> Statement {
        Statement { sql, params: self.params.clone() }
    }

    /// How many rows match.
    #[must_use]
    pub fn count(&self) -> Statement {
        self.statement(format!("SELECT COUNT(*) FROM {}{}", table(&self.def.name), self.clause))
    }

    /// A page by offset, in id order.
    #[must_use]
    pub fn list(&self, limit: u32, offset: u64) -> Statement {
        self.statement(format!(
            "SELECT {} FROM {}{} ORDER BY \"id\" LIMIT {} OFFSET {}",
            select_list(self.def),
            table(&self.def.name),
            self.clause,
            page_size(limit),
            offset.min(i64::MAX as u64)
        ))
    }

    /// A keyset page in id order: one row more than the page, for [`cursor_page`].
    #[must_use]
    pub fn cursor(&self, limit: u32) -> Statement {
        self.statement(format!(
            "SELECT {} FROM {}{} ORDER BY \"id\" LIMIT {}",
            select_list(self.def),
            table(&self.def.name),
            self.clause,
            page_size(limit) + 1
        ))
    }
}

/// The page of [`RowsQuery::list`] with the count of [`RowsQuery::count`].
#[must_use]
pub fn page(rows: Vec<Row>, count: i64) -> Page {
    Page { rows, count: u64::try_from(count).unwrap_or(0) }
}

/// The answer of a read by id.
///
/// # Errors
/// [`EntityError::NotFound`] when no row came back.
pub fn found(def: &EntityDef, id: &str, row: Option<Row>) -> Result<Row, EntityError> {
    row.ok_or_else(|| EntityError::NotFound { entity: def.name.clone(), id: id.to_owned() })
}

/// The id of the last of `rows`.
#[must_use]
pub fn last_id(rows: &[Row]) -> Option<String> {
    rows.last().and_then(|r| r.get("id")).and_then(Value::as_str).map(str::to_owned)
}

/// The keyset page of `limit` rows from what [`RowsQuery::cursor`] fetched (up to one
/// more): `has_more` when the extra row came, and then the next cursor is the last id.
#[must_use]
pub fn cursor_page(mut rows: Vec<Row>, limit: u32) -> CursorPage {
    let limit = page_size(limit);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if has_more { last_id(&rows) } else { None };
    CursorPage { rows, next_cursor, has_more }
}

/// The change-log entries after `since`: at most a page and one more (see
/// [`changes_page`]).
#[must_use]
pub fn changes(dialect: &Dialect, since: u64, limit: u32) -> Statement {
    Statement {
        sql: dialect.changes_after(),
        params: vec![Param::int(since), Param::int(page_size(limit) as u64 + 1)],
    }
}

/// The page of changes from what [`changes`] fetched: `last_seq` is the last one's (or
/// `since` when none came).
#[must_use]
pub fn changes_page(log: Vec<LogRow>, since: u64, limit: u32) -> ChangesPage {
    let limit = page_size(limit);
    let has_more = log.len() > limit;
    let changes: Vec<ChangeEvent> =
        log.into_iter().take(limit).map(ChangeEvent::from_log).collect();
    let last_seq = changes.last().map_or(since, |c| c.seq);
    ChangesPage { changes, last_seq, has_more }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[&str]) -> Vec<Row> {
        ids.iter()
            .map(|id| {
                let mut r = Row::new();
                r.insert("id".into(), Value::String((*id).to_owned()));
                r
            })
            .collect()
    }

    /// The extra row says more follow and is not returned; the cursor is the last id of
    /// the page. A short page has neither.
    #[test]
    fn cursor_pages_fetch_one_more() {
        let page = cursor_page(rows(&["a", "b", "c"]), 2);
        assert_eq!(page.rows.len(), 2);
        assert!(page.has_more);
        assert_eq!(page.next_cursor.as_deref(), Some("b"));
        let page = cursor_page(rows(&["a", "b"]), 2);
        assert!(!page.has_more);
        assert_eq!(page.next_cursor, None);
    }

    /// An empty pull keeps the cursor; a full one ends at its last seq.
    #[test]
    fn changes_pages_keep_the_cursor() {
        let entry = |seq: i64| -> LogRow {
            (seq, "E".into(), "r".into(), "insert".into(), Some("{}".into()), "t".into(), None)
        };
        let page = changes_page(vec![], 7, 10);
        assert_eq!((page.last_seq, page.has_more), (7, false));
        let page = changes_page(vec![entry(8), entry(9), entry(10)], 7, 2);
        assert_eq!((page.last_seq, page.has_more, page.changes.len()), (9, true, 2));
    }
}
