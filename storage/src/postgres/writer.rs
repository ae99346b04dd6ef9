//! The write path of the Postgres store: one transaction per batch. Each operation is
//! checked and applied as in SQLite ([`crate::write`], the statements of [`crate::sql`]),
//! then takes the next `seq` from the one-row counter, which holds other writers (of
//! every process) on that row until this transaction commits: the log is dense and in
//! commit order. Saved matches and replays are single statements.

use sqlx::PgConnection;

use super::rows::{DIALECT, query, read_row};
use super::{PgStore, pg};
use crate::entity::{
    ChangeEvent, ChangeKind, EntityError, IndexedError, Row, WriteOp, WriteResult,
};
use crate::manifest::EntityDef;
use crate::sql::Statement;
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

/// The row `op` targets, locked until the transaction ends.
async fn current(
    tx: &mut PgConnection,
    entity: &EntityDef,
    op: &WriteOp,
) -> Result<(String, Row), EntityError> {
    let id = write::target_id(op)?;
    let sql = format!("{} FOR UPDATE", DIALECT.select_by_id(entity));
    let found = sqlx::query(&sql).bind(&id).fetch_optional(&mut *tx).await.map_err(pg)?;
    let row = found.map(|r| read_row(entity, &r)).transpose().map_err(pg)?;
    let row = crate::query::found(entity, &id, row)?;
    Ok((id, row))
}

async fn execute(tx: &mut PgConnection, st: &Statement) -> Result<(), sqlx::Error> {
    query(st).execute(&mut *tx).await.map(|_| ())
}

/// Applies one operation; returns the row id and the row before and after it.
async fn apply_op(
    tx: &mut PgConnection,
    store: &PgStore,
    op: &WriteOp,
) -> Result<(String, Option<Row>, Option<Row>), EntityError> {
    let def = crate::query::entity(store.manifest(), &op.entity)?;
    match op.kind {
        ChangeKind::Insert => {
            let (id, row) = write::insert_row(def, op)?;
            execute(tx, &DIALECT.insert(def, &id, &row)).await.map_err(|e| conflict(def, e))?;
            Ok((id, None, Some(row)))
        }
        ChangeKind::Update => {
            let (id, current) = current(tx, def, op).await?;
            let (row, changes) = write::update_row(def, op, &current)?;
            let st = DIALECT.update(def, &id, &changes);
            execute(tx, &st).await.map_err(|e| conflict(def, e))?;
            Ok((id, Some(current), Some(row)))
        }
        ChangeKind::Delete => {
            let (id, row) = current(tx, def, op).await?;
            write::delete_row(def, op, &row)?;
            execute(tx, &DIALECT.delete(def, &id)).await.map_err(pg)?;
            Ok((id, Some(row), None))
        }
    }
}

impl PgStore {
    /// Commits `ops` all-or-nothing.
    ///
    /// # Errors
    /// The failing operation's index and error; nothing of the batch was applied.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<WriteResult, IndexedError> {
        write::check_batch(&ops)?;
        let store_err = |e: sqlx::Error, i: usize| EntityError::Store(pg(e)).in_operation(i);
        let mut tx = self.pool().begin().await.map_err(|e| store_err(e, 0))?;
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
            let mut change = ChangeEvent::applied(op, id.clone(), before, after, &ts);
            change.seq = u64::try_from(seq).unwrap_or(0);
            let entry = DIALECT.log_entry(&change, Some(change.seq));
            execute(&mut tx, &entry).await.map_err(|e| store_err(e, i))?;
            out.changes.push(change);
            out.ids.push(id);
        }
        tx.commit().await.map_err(|e| store_err(e, 0))?;
        Ok(out)
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
        let st = DIALECT.save_match(match_id, game, tick, state);
        query(&st).execute(self.pool()).await.map_err(pg)?;
        Ok(())
    }

    /// Forgets a match's saved state.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_match(&self, match_id: &str) -> Result<(), StoreError> {
        query(&DIALECT.delete_match(match_id)).execute(self.pool()).await.map_err(pg)?;
        Ok(())
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
        let st = DIALECT.save_replay(match_id, game, log);
        query(&st).execute(self.pool()).await.map_err(pg)?;
        Ok(())
    }
}
