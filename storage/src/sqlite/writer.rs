//! The one writer thread of a SQLite store. Requests queue on a bounded channel; the
//! thread takes every request waiting (up to a group limit), runs each in its own
//! savepoint inside one transaction, commits once (one fsync for the group), then
//! answers them all. A request that fails rolls back only its savepoint: batches are
//! all-or-nothing, groups are not. The store's write methods ([`SqliteStore::write`],
//! saved matches, replays) queue here and answer once their group is durable.

use std::sync::Arc;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::SqliteStore;
use super::rows::{DIALECT, read_row};
use crate::entity::{
    ChangeEvent, ChangeKind, EntityError, IndexedError, Row, WriteOp, WriteResult,
};
use crate::manifest::{EntityDef, Manifest};
use crate::sql::Statement;
use crate::{StoreError, query, time, write};

/// One queued write.
pub(super) enum Job {
    /// Entity operations, all or nothing.
    Write { ops: Vec<WriteOp>, reply: oneshot::Sender<Result<WriteResult, IndexedError>> },
    /// One statement on pylon's internal tables (saved matches, replays).
    Exec { statement: Statement, reply: oneshot::Sender<Result<(), StoreError>> },
}

impl SqliteStore {
    /// Commits `ops` all-or-nothing; answers once the group it joined is durable.
    ///
    /// # Errors
    /// The failing operation's index and error; nothing of the batch was applied.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<WriteResult, IndexedError> {
        if ops.is_empty() {
            return Ok(WriteResult::default());
        }
        write::check_batch(&ops)?;
        let (reply, answer) = oneshot::channel();
        let gone = || EntityError::Store(closed()).in_operation(0);
        self.inner.writes.send(Job::Write { ops, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn exec(&self, statement: Statement) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner.writes.send(Job::Exec { statement, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Saves (replacing) the state of running match `match_id` (JSON of a `SavedMatch`).
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
        self.exec(DIALECT.save_match(match_id, game, tick, state)).await
    }

    /// Forgets the saved state of `match_id` (finished or stopped).
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_match(&self, match_id: &str) -> Result<(), StoreError> {
        self.exec(DIALECT.delete_match(match_id)).await
    }

    /// Stores the replay log (JSON) of finished match `match_id`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn save_replay(
        &self,
        match_id: &str,
        game: &str,
        log: String,
    ) -> Result<(), StoreError> {
        self.exec(DIALECT.save_replay(match_id, game, log)).await
    }
}

fn closed() -> StoreError {
    StoreError::Write("the store is closed".into())
}

/// A job's outcome, answered after the group commits.
enum Done {
    Write(Result<WriteResult, IndexedError>),
    Exec(Result<(), StoreError>),
}

/// Writer settings.
pub(super) struct WriterConfig {
    pub max_group: usize,
    pub change_retention: u64,
}

/// Runs until every sender is gone.
pub(super) fn run(
    mut conn: Connection,
    manifest: Arc<Manifest>,
    mut rx: mpsc::Receiver<Job>,
    config: WriterConfig,
) {
    let mut commits: u64 = 0;
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < config.max_group {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let results = commit_group(&mut conn, &manifest, &group);
        for (job, result) in group.into_iter().zip(results) {
            match (job, result) {
                (Job::Write { reply, .. }, Done::Write(r)) => {
                    let _ = reply.send(r);
                }
                (Job::Exec { reply, .. }, Done::Exec(r)) => {
                    let _ = reply.send(r);
                }
                // `commit_group` answers each job with its own kind.
                _ => {}
            }
        }
        commits += 1;
        if commits.is_multiple_of(1024) {
            prune(&conn, config.change_retention);
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn failed(job: &Job, msg: &str) -> Done {
    match job {
        Job::Write { .. } => {
            Done::Write(Err(EntityError::Store(StoreError::Write(msg.to_owned())).in_operation(0)))
        }
        Job::Exec { .. } => Done::Exec(Err(StoreError::Write(msg.to_owned()))),
    }
}

fn run_job(tx: &Connection, manifest: &Manifest, job: &Job, ts: &str) -> Done {
    match job {
        Job::Write { ops, .. } => Done::Write(apply_batch(tx, manifest, ops, ts)),
        Job::Exec { statement, .. } => {
            Done::Exec(execute(tx, statement).map(|_| ()).map_err(StoreError::from))
        }
    }
}

fn commit_group(conn: &mut Connection, manifest: &Manifest, group: &[Job]) -> Vec<Done> {
    let fail_all = |e: rusqlite::Error| {
        let msg = e.to_string();
        group.iter().map(|job| failed(job, &msg)).collect()
    };
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let ts = time::now_rfc3339();
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = tx.execute_batch("SAVEPOINT job") {
            results.push(failed(job, &e.to_string()));
            continue;
        }
        let result = run_job(&tx, manifest, job, &ts);
        let ok = matches!(result, Done::Write(Ok(_)) | Done::Exec(Ok(())));
        let end = if ok { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = tx.execute_batch(end) {
            return fail_all(e);
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}

fn apply_batch(
    tx: &Connection,
    manifest: &Manifest,
    ops: &[WriteOp],
    ts: &str,
) -> Result<WriteResult, IndexedError> {
    let mut out = WriteResult::default();
    for (i, op) in ops.iter().enumerate() {
        let (id, before, after) = apply_op(tx, manifest, op).map_err(|e| e.in_operation(i))?;
        let mut change = ChangeEvent::applied(op, id.clone(), before, after, ts);
        // The log keeps the rows on both sides of the write, for read-policy checks; the
        // rowid is the seq.
        execute(tx, &DIALECT.log_entry(&change, None))
            .map_err(|e| EntityError::from(StoreError::from(e)).in_operation(i))?;
        change.seq = u64::try_from(tx.last_insert_rowid()).unwrap_or(0);
        out.changes.push(change);
        out.ids.push(id);
    }
    Ok(out)
}

fn execute(tx: &Connection, st: &Statement) -> rusqlite::Result<usize> {
    tx.execute(&st.sql, rusqlite::params_from_iter(&st.params))
}

/// Applies one operation; returns the row id and the row before and after it.
fn apply_op(
    tx: &Connection,
    manifest: &Manifest,
    op: &WriteOp,
) -> Result<(String, Option<Row>, Option<Row>), EntityError> {
    let def = query::entity(manifest, &op.entity)?;
    match op.kind {
        ChangeKind::Insert => {
            let (id, row) = write::insert_row(def, op)?;
            execute(tx, &DIALECT.insert(def, &id, &row)).map_err(|e| conflict(def, e))?;
            Ok((id, None, Some(row)))
        }
        ChangeKind::Update => {
            let (id, current) = current(tx, def, op)?;
            let (row, changes) = write::update_row(def, op, &current)?;
            execute(tx, &DIALECT.update(def, &id, &changes)).map_err(|e| conflict(def, e))?;
            Ok((id, Some(current), Some(row)))
        }
        ChangeKind::Delete => {
            let (id, row) = current(tx, def, op)?;
            write::delete_row(def, op, &row)?;
            execute(tx, &DIALECT.delete(def, &id)).map_err(StoreError::from)?;
            Ok((id, Some(row), None))
        }
    }
}

fn current(
    tx: &Connection,
    entity: &EntityDef,
    op: &WriteOp,
) -> Result<(String, Row), EntityError> {
    let id = write::target_id(op)?;
    let row = tx
        .query_row(&DIALECT.select_by_id(entity), params![id], |r| read_row(entity, r))
        .optional()
        .map_err(StoreError::from)?;
    Ok((id.clone(), query::found(entity, &id, row)?))
}

fn conflict(entity: &EntityDef, e: rusqlite::Error) -> EntityError {
    if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
        let what = e.to_string();
        let what =
            what.rsplit(": ").next().unwrap_or(&what).replace(&format!("e_{}.", entity.name), "");
        return EntityError::Conflict { entity: entity.name.clone(), what };
    }
    EntityError::Store(StoreError::from(e))
}

/// Keeps at most `retention` changes (oldest go first; seq stays dense at the top).
fn prune(conn: &Connection, retention: u64) {
    let keep = i64::try_from(retention).unwrap_or(i64::MAX);
    let _ = conn.execute(
        "DELETE FROM pylon_changes WHERE seq <= (SELECT MAX(seq) FROM pylon_changes) - ?1",
        params![keep],
    );
}
