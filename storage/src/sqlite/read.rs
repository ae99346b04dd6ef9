//! Reads of the SQLite store, on the pool of read connections: rows by id, pages, the
//! change log, saved matches and replays. The statements and the paging come from
//! [`crate::query`] and [`crate::sql`]; this file runs them.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::rows::{DIALECT, read_row};
use crate::StoreError;
use crate::entity::{ChangesPage, CursorPage, EntityError, LogRow, Page, Row};
use crate::query::{self, RowsQuery};
use crate::sql::{self, Statement};

impl SqliteStore {
    /// One row by id.
    ///
    /// # Errors
    /// [`EntityError::UnknownEntity`], [`EntityError::NotFound`], store errors.
    pub async fn get(&self, entity: &str, id: &str) -> Result<Row, EntityError> {
        let (entity, id) = (entity.to_owned(), id.to_owned());
        self.read(move |conn, manifest| {
            let def = query::entity(manifest, &entity)?;
            let mut stmt = conn.prepare_cached(&DIALECT.select_by_id(def)).map_err(sqlite)?;
            let row = stmt.query_row(params![id], |r| read_row(def, r)).optional();
            query::found(def, &id, row.map_err(sqlite)?)
        })
        .await
    }

    /// A page of rows by id, with `filters` (field = value, indexed fields only).
    ///
    /// # Errors
    /// Unknown entity or field, unindexed filter, store errors.
    pub async fn list(
        &self,
        entity: &str,
        filters: Vec<(String, String)>,
        limit: u32,
        offset: u64,
    ) -> Result<Page, EntityError> {
        let entity = entity.to_owned();
        self.read(move |conn, manifest| {
            let q = RowsQuery::new(&DIALECT, manifest, &entity, &filters, None)?;
            let count = q.count();
            let count: i64 = conn
                .query_row(&count.sql, rusqlite::params_from_iter(&count.params), |r| r.get(0))
                .map_err(sqlite)?;
            Ok(query::page(rows(conn, &q, &q.list(limit, offset))?, count))
        })
        .await
    }

    /// Keyset pagination by id: rows with id > `after`.
    ///
    /// # Errors
    /// Unknown entity or field, unindexed filter, store errors.
    pub async fn cursor(
        &self,
        entity: &str,
        after: Option<String>,
        filters: Vec<(String, String)>,
        limit: u32,
    ) -> Result<CursorPage, EntityError> {
        let entity = entity.to_owned();
        self.read(move |conn, manifest| {
            let q = RowsQuery::new(&DIALECT, manifest, &entity, &filters, after.as_deref())?;
            Ok(query::cursor_page(rows(conn, &q, &q.cursor(limit))?, limit))
        })
        .await
    }

    /// Changes after `since`, at most `limit` (1 to 1000).
    ///
    /// # Errors
    /// [`EntityError::ResyncRequired`] when `since` is older than what is kept or ahead of
    /// the log; store errors.
    pub async fn changes_since(&self, since: u64, limit: u32) -> Result<ChangesPage, EntityError> {
        self.read(move |conn, _| {
            let (oldest, latest) = conn
                .query_row(sql::LOG_WINDOW, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sqlite)?;
            query::check_window(since, oldest, latest)?;
            let st = query::changes(&DIALECT, since, limit);
            let mut stmt = conn.prepare_cached(&st.sql).map_err(sqlite)?;
            let log = stmt
                .query_map(rusqlite::params_from_iter(&st.params), |r| LogRow::try_from(r))
                .map_err(sqlite)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite)?;
            Ok(query::changes_page(log, since, limit))
        })
        .await
    }

    /// The newest change seq (0 when the log is empty).
    ///
    /// # Errors
    /// Store errors.
    pub async fn latest_seq(&self) -> Result<u64, EntityError> {
        self.read(|conn, _| {
            let seq: Option<i64> = conn
                .query_row("SELECT MAX(seq) FROM pylon_changes", [], |r| r.get(0))
                .map_err(sqlite)?;
            Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
        })
        .await
    }

    /// Checks the database answers (readiness).
    ///
    /// # Errors
    /// Store errors.
    pub async fn ping(&self) -> Result<(), EntityError> {
        self.read(|conn, _| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(sqlite)).await
    }

    /// Every saved running match: (match id, state JSON).
    ///
    /// # Errors
    /// Store errors.
    pub async fn saved_matches(&self) -> Result<Vec<(String, String)>, EntityError> {
        self.read(|conn, _| {
            let mut stmt = conn.prepare(sql::SAVED_MATCHES).map_err(sqlite)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sqlite)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite)?;
            Ok(rows)
        })
        .await
    }

    /// The replay log (JSON) of `match_id`, if one was stored.
    ///
    /// # Errors
    /// Store errors.
    pub async fn replay(&self, match_id: &str) -> Result<Option<String>, EntityError> {
        let id = match_id.to_owned();
        self.read(move |conn, _| {
            let log = conn.query_row(&DIALECT.replay(), params![id], |r| r.get(0)).optional();
            log.map_err(sqlite)
        })
        .await
    }
}

fn sqlite(e: rusqlite::Error) -> EntityError {
    EntityError::Store(StoreError::from(e))
}

/// The rows `st` selects (with the entity's select list).
fn rows(conn: &Connection, q: &RowsQuery<'_>, st: &Statement) -> Result<Vec<Row>, EntityError> {
    let mut stmt = conn.prepare_cached(&st.sql).map_err(sqlite)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&st.params), |r| read_row(q.def, r))
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    Ok(rows)
}
