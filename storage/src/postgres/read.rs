//! Reads of the Postgres store, on the pool: rows by id, pages, the change log, saved
//! matches and replays. The statements and the paging come from [`crate::query`] and
//! [`crate::sql`]; this file runs them.

use sqlx::{FromRow, Row as _};

use super::rows::{DIALECT, query, read_row};
use super::{PgStore, pg};
use crate::entity::{ChangesPage, CursorPage, EntityError, LogRow, Page, Row};
use crate::query::{self as q, RowsQuery};
use crate::sql::{self, Statement};

impl PgStore {
    /// One row by id.
    ///
    /// # Errors
    /// Unknown entity, not found, store errors.
    pub async fn get(&self, entity: &str, id: &str) -> Result<Row, EntityError> {
        let def = q::entity(self.manifest(), entity)?;
        let sql = DIALECT.select_by_id(def);
        let found = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await.map_err(pg)?;
        let row = found.map(|r| read_row(def, &r)).transpose().map_err(pg)?;
        q::found(def, id, row)
    }

    /// A page of rows by id with `filters`.
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
        let rq = RowsQuery::new(&DIALECT, self.manifest(), entity, &filters, None)?;
        let count = query(&rq.count()).fetch_one(self.pool()).await.map_err(pg)?;
        let count: i64 = count.try_get(0).map_err(pg)?;
        Ok(q::page(self.rows(&rq, &rq.list(limit, offset)).await?, count))
    }

    /// Keyset pagination by id.
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
        let rq = RowsQuery::new(&DIALECT, self.manifest(), entity, &filters, after.as_deref())?;
        Ok(q::cursor_page(self.rows(&rq, &rq.cursor(limit)).await?, limit))
    }

    /// The rows `st` selects (with the entity's select list).
    async fn rows(&self, rq: &RowsQuery<'_>, st: &Statement) -> Result<Vec<Row>, EntityError> {
        let rows = query(st).fetch_all(self.pool()).await.map_err(pg)?;
        Ok(rows.iter().map(|r| read_row(rq.def, r)).collect::<Result<_, _>>().map_err(pg)?)
    }

    /// Changes after `since`.
    ///
    /// # Errors
    /// [`EntityError::ResyncRequired`], store errors.
    pub async fn changes_since(&self, since: u64, limit: u32) -> Result<ChangesPage, EntityError> {
        let (oldest, latest): (Option<i64>, Option<i64>) =
            sqlx::query_as(sql::LOG_WINDOW).fetch_one(self.pool()).await.map_err(pg)?;
        q::check_window(since, oldest, latest)?;
        let rows =
            query(&q::changes(&DIALECT, since, limit)).fetch_all(self.pool()).await.map_err(pg)?;
        let log = rows.iter().map(LogRow::from_row).collect::<Result<Vec<_>, _>>().map_err(pg)?;
        Ok(q::changes_page(log, since, limit))
    }

    /// The newest change seq.
    ///
    /// # Errors
    /// Store errors.
    pub async fn latest_seq(&self) -> Result<u64, EntityError> {
        let last: i64 = sqlx::query_scalar("SELECT last FROM pylon_seq WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .map_err(pg)?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// Store errors.
    pub async fn ping(&self) -> Result<(), EntityError> {
        sqlx::query("SELECT 1").execute(self.pool()).await.map_err(pg)?;
        Ok(())
    }

    /// Every saved running match: (id, state JSON).
    ///
    /// # Errors
    /// Store errors.
    pub async fn saved_matches(&self) -> Result<Vec<(String, String)>, EntityError> {
        Ok(sqlx::query_as(sql::SAVED_MATCHES).fetch_all(self.pool()).await.map_err(pg)?)
    }

    /// A stored replay log.
    ///
    /// # Errors
    /// Store errors.
    pub async fn replay(&self, match_id: &str) -> Result<Option<String>, EntityError> {
        Ok(sqlx::query_scalar(&DIALECT.replay())
            .bind(match_id)
            .fetch_optional(self.pool())
            .await
            .map_err(pg)?)
    }
}
