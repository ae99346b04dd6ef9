//! The one writer thread of a SQLite store. Requests queue on a bounded channel; the
//! thread takes every request waiting (up to a group limit), runs each in its own
//! savepoint inside one transaction, commits once (one fsync for the group), then
//! answers them all. A request that fails rolls back only its savepoint: batches are
//! all-or-nothing, groups are not.

use std::sync::Arc;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::rows::{read_row, select_list, table, to_sql};
use crate::entity::{
    ChangeEvent, ChangeKind, EntityError, IndexedError, Row, WriteOp, WriteResult,
};
use crate::manifest::{EntityDef, Manifest};
use crate::{StoreError, time, write};

/// One queued write.
pub(super) enum Job {
    /// Entity operations, all or nothing.
    Write { ops: Vec<WriteOp>, reply: oneshot::Sender<Result<WriteResult, IndexedError>> },
    /// One statement on pylon's internal tables (saved matches, replays).
    Exec {
        sql: &'static str,
        params: Vec<rusqlite::types::Value>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
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
        Job::Exec { sql, params, .. } => Done::Exec(
            tx.execute(sql, rusqlite::params_from_iter(params.iter()))
                .map(|_| ())
                .map_err(StoreError::from),
        ),
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
        let mut change = ChangeEvent {
            seq: 0,
            entity: op.entity.clone(),
            row_id: id.clone(),
            kind: op.kind,
            data: after,
            timestamp: ts.to_owned(),
            before,
        };
        // The log keeps the rows on both sides of the write, for read-policy checks.
        let (data, prior) = change.log_columns();
        tx.execute(
            "INSERT INTO pylon_changes (entity, row_id, kind, data, prior, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![op.entity, id, op.kind.as_str(), data, prior, ts],
        )
        .map_err(|e| EntityError::from(StoreError::from(e)).in_operation(i))?;
        change.seq = u64::try_from(tx.last_insert_rowid()).unwrap_or(0);
        out.changes.push(change);
        out.ids.push(id);
    }
    Ok(out)
}

/// Applies one operation; returns the row id and the row before and after it.
fn apply_op(
    tx: &Connection,
    manifest: &Manifest,
    op: &WriteOp,
) -> Result<(String, Option<Row>, Option<Row>), EntityError> {
    let entity =
        manifest.entity(&op.entity).ok_or_else(|| EntityError::UnknownEntity(op.entity.clone()))?;
    match op.kind {
        ChangeKind::Insert => insert(tx, entity, op),
        ChangeKind::Update => update(tx, entity, op),
        ChangeKind::Delete => delete(tx, entity, op),
    }
}

type Applied = Result<(String, Option<Row>, Option<Row>), EntityError>;

fn insert(tx: &Connection, entity: &EntityDef, op: &WriteOp) -> Applied {
    let (id, row) = write::insert_row(entity, op)?;
    let cols = select_list(entity);
    let marks: Vec<String> = (1..=entity.fields.len() + 1).map(|i| format!("?{i}")).collect();
    let mut values = vec![rusqlite::types::Value::Text(id.clone())];
    values.extend(entity.fields.iter().map(|f| to_sql(row.get(&f.name).unwrap_or(&Value::Null))));
    tx.execute(
        &format!("INSERT INTO {} ({cols}) VALUES ({})", table(&entity.name), marks.join(", ")),
        rusqlite::params_from_iter(values),
    )
    .map_err(|e| conflict(entity, e))?;
    Ok((id, None, Some(row)))
}

fn current(
    tx: &Connection,
    entity: &EntityDef,
    op: &WriteOp,
) -> Result<(String, Row), EntityError> {
    let id = write::target_id(op)?;
    let sql =
        format!("SELECT {} FROM {} WHERE \"id\" = ?1", select_list(entity), table(&entity.name));
    let row = tx
        .query_row(&sql, params![id], |r| read_row(entity, r))
        .optional()
        .map_err(StoreError::from)?
        .ok_or_else(|| EntityError::NotFound { entity: entity.name.clone(), id: id.clone() })?;
    Ok((id, row))
}

fn update(tx: &Connection, entity: &EntityDef, op: &WriteOp) -> Applied {
    let (id, current) = current(tx, entity, op)?;
    let (row, changes) = write::update_row(entity, op, &current)?;
    let sets: Vec<String> =
        changes.keys().enumerate().map(|(i, k)| format!("\"{k}\" = ?{}", i + 2)).collect();
    let mut values = vec![rusqlite::types::Value::Text(id.clone())];
    values.extend(changes.values().map(to_sql));
    tx.execute(
        &format!("UPDATE {} SET {} WHERE \"id\" = ?1", table(&entity.name), sets.join(", ")),
        rusqlite::params_from_iter(values),
    )
    .map_err(|e| conflict(entity, e))?;
    Ok((id, Some(current), Some(row)))
}

fn delete(tx: &Connection, entity: &EntityDef, op: &WriteOp) -> Applied {
    let (id, row) = current(tx, entity, op)?;
    write::delete_row(entity, op, &row)?;
    tx.execute(&format!("DELETE FROM {} WHERE \"id\" = ?1", table(&entity.name)), params![id])
        .map_err(StoreError::from)?;
    Ok((id, Some(row), None))
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
