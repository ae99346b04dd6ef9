//! Reads and writes of the Postgres store: the same contract as the SQLite store's.

use serde_json::Value;
use sqlx::{PgConnection, Row as _};

use super::{Arg, PgStore, arg, bind_all, pg, read_row, select_list, table};
use crate::entity::{
    ChangeEvent, ChangeKind, ChangesPage, CursorPage, EntityError, IndexedError, Page, Row,
    WriteOp, WriteResult, limits,
};
use crate::manifest::{EntityDef, FieldType};
use crate::query::{self, FilterValue};
use crate::{StoreError, time, write};

fn conflict(entity: &EntityDef, e: sqlx::Error) -> EntityError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23505")
    {
        let what = db
            .constraint()
            .unwrap_or("a unique value")
            .replace(&format!("ux_{}_", entity.name), "");
        return EntityError::Conflict { entity: entity.name.clone(), what };
    }
    EntityError::Store(pg(e))
}

async fn current(
    tx: &mut PgConnection,
    entity: &EntityDef,
    op: &WriteOp,
) -> Result<(String, Row), EntityError> {
    let id = write::target_id(op)?;
    let sql = format!(
        "SELECT {} FROM {} WHERE \"id\" = $1 FOR UPDATE",
        select_list(entity),
        table(&entity.name)
    );
    let found = sqlx::query(&sql).bind(&id).fetch_optional(&mut *tx).await.map_err(pg)?;
    let row = found
        .ok_or_else(|| EntityError::NotFound { entity: entity.name.clone(), id: id.clone() })?;
    Ok((id, read_row(entity, &row).map_err(pg)?))
}

/// Applies one operation; returns the row id and the row before and after it.
async fn apply_op(
    tx: &mut PgConnection,
    store: &PgStore,
    op: &WriteOp,
) -> Result<(String, Option<Row>, Option<Row>), EntityError> {
    let entity = store
        .manifest
        .entity(&op.entity)
        .ok_or_else(|| EntityError::UnknownEntity(op.entity.clone()))?;
    let t = table(&entity.name);
    match op.kind {
        ChangeKind::Insert => {
            let (id, row) = write::insert_row(entity, op)?;
            let marks: Vec<String> =
                (1..=entity.fields.len() + 1).map(|i| format!("${i}")).collect();
            let mut args = vec![Arg::Text(Some(id.clone()))];
            args.extend(
                entity.fields.iter().map(|f| arg(&f.ty, row.get(&f.name).unwrap_or(&Value::Null))),
            );
            let sql =
                format!("INSERT INTO {t} ({}) VALUES ({})", select_list(entity), marks.join(", "));
            bind_all(sqlx::query(&sql), &args)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(entity, e))?;
            Ok((id, None, Some(row)))
        }
        ChangeKind::Update => {
            let (id, current) = current(tx, entity, op).await?;
            let (row, changes) = write::update_row(entity, op, &current)?;
            let sets: Vec<String> =
                changes.keys().enumerate().map(|(i, k)| format!("\"{k}\" = ${}", i + 2)).collect();
            let mut args = vec![Arg::Text(Some(id.clone()))];
            for (k, v) in &changes {
                let ty = entity.field(k).map_or(FieldType::String, |f| f.ty.clone());
                args.push(arg(&ty, v));
            }
            let sql = format!("UPDATE {t} SET {} WHERE \"id\" = $1", sets.join(", "));
            bind_all(sqlx::query(&sql), &args)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(entity, e))?;
            Ok((id, Some(current), Some(row)))
        }
        ChangeKind::Delete => {
            let (id, row) = current(tx, entity, op).await?;
            write::delete_row(entity, op, &row)?;
            sqlx::query(&format!("DELETE FROM {t} WHERE \"id\" = $1"))
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            Ok((id, Some(row), None))
        }
    }
}

fn change_from_row(r: &sqlx::postgres::PgRow) -> Result<ChangeEvent, sqlx::Error> {
    Ok(ChangeEvent::from_log(
        u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
        r.try_get(1)?,
        r.try_get(2)?,
        &r.try_get::<String, _>(3)?,
        r.try_get::<Option<String>, _>(4)?.as_deref(),
        r.try_get::<Option<String>, _>(6)?.as_deref(),
        r.try_get(5)?,
    ))
}

fn where_clause(
    def: &EntityDef,
    filters: &[(String, String)],
    after: Option<&str>,
) -> Result<(String, Vec<Arg>), EntityError> {
    let parsed = query::parse_filters(def, filters)?;
    let clause = query::where_sql(&parsed, after.is_some(), |n| format!("${n}"));
    let mut args: Vec<Arg> = parsed
        .into_iter()
        .map(|(_, v)| match v {
            FilterValue::Text(t) => Arg::Text(Some(t)),
            FilterValue::Int(i) => Arg::Int(Some(i)),
            FilterValue::Float(f) => Arg::Float(Some(f)),
            FilterValue::Bool(b) => Arg::Bool(Some(b)),
        })
        .collect();
    args.extend(after.map(|a| Arg::Text(Some(a.to_owned()))));
    Ok((clause, args))
}

impl PgStore {
    fn entity(&self, name: &str) -> Result<&EntityDef, EntityError> {
        self.manifest.entity(name).ok_or_else(|| EntityError::UnknownEntity(name.to_owned()))
    }

    /// Commits `ops` all-or-nothing.
    ///
    /// # Errors
    /// The failing operation's index and error; nothing of the batch was applied.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<WriteResult, IndexedError> {
        if ops.len() > limits::MAX_BATCH {
            return Err(EntityError::BadRequest(format!(
                "at most {} operations per transaction",
                limits::MAX_BATCH
            ))
            .in_operation(limits::MAX_BATCH));
        }
        let store_err = |e: sqlx::Error, i: usize| EntityError::Store(pg(e)).in_operation(i);
        let mut tx = self.pool.begin().await.map_err(|e| store_err(e, 0))?;
        let ts = time::now_rfc3339();
        let mut out = WriteResult::default();
        for (i, op) in ops.iter().enumerate() {
            let (id, before, after) =
                apply_op(&mut tx, self, op).await.map_err(|e| e.in_operation(i))?;
            let seq: i64 = sqlx::query_scalar(
                "UPDATE pylon_seq SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| store_err(e, i))?;
            let change = ChangeEvent {
                seq: u64::try_from(seq).unwrap_or(0),
                entity: op.entity.clone(),
                row_id: id.clone(),
                kind: op.kind,
                data: after,
                timestamp: ts.clone(),
                before,
            };
            let (data, prior) = change.log_columns();
            sqlx::query("INSERT INTO pylon_changes (seq, entity, row_id, kind, data, prior, ts) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(seq)
                .bind(&op.entity)
                .bind(&id)
                .bind(op.kind.as_str())
                .bind(data)
                .bind(prior)
                .bind(&ts)
                .execute(&mut *tx)
                .await
                .map_err(|e| store_err(e, i))?;
            out.changes.push(change);
            out.ids.push(id);
        }
        tx.commit().await.map_err(|e| store_err(e, 0))?;
        Ok(out)
    }

    /// One row by id.
    ///
    /// # Errors
    /// Unknown entity, not found, store errors.
    pub async fn get(&self, entity: &str, id: &str) -> Result<Row, EntityError> {
        let def = self.entity(entity)?;
        let sql =
            format!("SELECT {} FROM {} WHERE \"id\" = $1", select_list(def), table(&def.name));
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(pg)?;
        let row = row.ok_or_else(|| EntityError::NotFound {
            entity: entity.to_owned(),
            id: id.to_owned(),
        })?;
        Ok(read_row(def, &row).map_err(pg)?)
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
        let def = self.entity(entity)?;
        let (clause, args) = where_clause(def, &filters, None)?;
        let count_sql = format!("SELECT COUNT(*) FROM {}{clause}", table(&def.name));
        let row =
            bind_all(sqlx::query(&count_sql), &args).fetch_one(&self.pool).await.map_err(pg)?;
        let count: i64 = row.try_get(0).map_err(pg)?;
        let sql = format!(
            "SELECT {} FROM {}{clause} ORDER BY \"id\" LIMIT {} OFFSET {}",
            select_list(def),
            table(&def.name),
            limit.clamp(1, limits::MAX_PAGE),
            offset.min(i64::MAX as u64)
        );
        let rows = bind_all(sqlx::query(&sql), &args).fetch_all(&self.pool).await.map_err(pg)?;
        let rows =
            rows.iter().map(|r| read_row(def, r)).collect::<Result<Vec<_>, _>>().map_err(pg)?;
        Ok(Page { rows, count: u64::try_from(count).unwrap_or(0) })
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
        let def = self.entity(entity)?;
        let limit = limit.clamp(1, limits::MAX_PAGE) as usize;
        let (clause, args) = where_clause(def, &filters, after.as_deref())?;
        let sql = format!(
            "SELECT {} FROM {}{clause} ORDER BY \"id\" LIMIT {}",
            select_list(def),
            table(&def.name),
            limit + 1
        );
        let rows = bind_all(sqlx::query(&sql), &args).fetch_all(&self.pool).await.map_err(pg)?;
        let mut rows =
            rows.iter().map(|r| read_row(def, r)).collect::<Result<Vec<_>, _>>().map_err(pg)?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().and_then(|r| r.get("id")).and_then(Value::as_str).map(str::to_owned)
        } else {
            None
        };
        Ok(CursorPage { rows, next_cursor, has_more })
    }

    /// Changes after `since`.
    ///
    /// # Errors
    /// [`EntityError::ResyncRequired`], store errors.
    pub async fn changes_since(&self, since: u64, limit: u32) -> Result<ChangesPage, EntityError> {
        let (oldest, latest): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(seq), MAX(seq) FROM pylon_changes")
                .fetch_one(&self.pool)
                .await
                .map_err(pg)?;
        query::check_window(since, oldest, latest)?;
        let limit = limit.clamp(1, limits::MAX_PAGE) as usize;
        let rows = sqlx::query("SELECT seq, entity, row_id, kind, data, ts, prior FROM pylon_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(i64::try_from(since).unwrap_or(i64::MAX))
            .bind((limit + 1) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(pg)?;
        let mut changes =
            rows.iter().map(change_from_row).collect::<Result<Vec<_>, _>>().map_err(pg)?;
        let has_more = changes.len() > limit;
        changes.truncate(limit);
        let last_seq = changes.last().map_or(since, |c| c.seq);
        Ok(ChangesPage { changes, last_seq, has_more })
    }

    /// The newest change seq.
    ///
    /// # Errors
    /// Store errors.
    pub async fn latest_seq(&self) -> Result<u64, EntityError> {
        let last: i64 = sqlx::query_scalar("SELECT last FROM pylon_seq WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(pg)?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// Store errors.
    pub async fn ping(&self) -> Result<(), EntityError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(pg)?;
        Ok(())
    }

    /// Saves (replacing) a running match's state.
    ///
    /// # Errors
    /// Store errors.
    pub async fn save_match(
        &self,
        match_id: &str,
        game: &str,
        tick: u64,
        state: String,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pylon_matches (match_id, game, tick, state, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (match_id) DO UPDATE SET game = $2, tick = $3, state = $4, updated_at = $5",
        )
        .bind(match_id)
        .bind(game)
        .bind(i64::try_from(tick).unwrap_or(i64::MAX))
        .bind(state)
        .bind(time::now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(pg)?;
        Ok(())
    }

    /// Forgets a match's saved state.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_match(&self, match_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pylon_matches WHERE match_id = $1")
            .bind(match_id)
            .execute(&self.pool)
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Every saved running match: (id, state JSON).
    ///
    /// # Errors
    /// Store errors.
    pub async fn saved_matches(&self) -> Result<Vec<(String, String)>, EntityError> {
        Ok(sqlx::query_as("SELECT match_id, state FROM pylon_matches ORDER BY match_id")
            .fetch_all(&self.pool)
            .await
            .map_err(pg)?)
    }

    /// Stores a finished match's replay log.
    ///
    /// # Errors
    /// Store errors.
    pub async fn save_replay(
        &self,
        match_id: &str,
        game: &str,
        log: String,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pylon_replays (match_id, game, log, finished_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (match_id) DO UPDATE SET game = $2, log = $3, finished_at = $4",
        )
        .bind(match_id)
        .bind(game)
        .bind(log)
        .bind(time::now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(pg)?;
        Ok(())
    }

    /// A stored replay log.
    ///
    /// # Errors
    /// Store errors.
    pub async fn replay(&self, match_id: &str) -> Result<Option<String>, EntityError> {
        Ok(sqlx::query_scalar("SELECT log FROM pylon_replays WHERE match_id = $1")
            .bind(match_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg)?)
    }
}
