//! The SQLite backend: WAL mode, one writer thread with group commit ([`writer`]), a
//! pool of read connections, foreign keys on, a busy timeout. Schema from the manifest
//! ([`schema`]).

mod rows;
pub mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::StoreError;
use crate::entity::{
    ChangeEvent, ChangesPage, CursorPage, EntityError, IndexedError, Page, Row, WriteOp,
    WriteResult, limits,
};
use crate::manifest::{EntityDef, Manifest};
use crate::query::{self, FilterValue};
use rows::{read_row, select_list, table};

/// SQLite store settings. Every field has a default.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read connections (default 4).
    pub read_connections: usize,
    /// Writes that may wait for the writer thread (default 4,096); more wait to enqueue.
    pub write_queue: usize,
    /// Most requests committed together (default 256).
    pub max_group: usize,
    /// Change-log entries kept (default 1,000,000); older pulls must resync.
    pub change_retention: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { read_connections: 4, write_queue: 4096, max_group: 256, change_retention: 1_000_000 }
    }
}

/// An entity store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    manifest: Arc<Manifest>,
    path: PathBuf,
    writes: mpsc::Sender<writer::Job>,
    readers: Mutex<Vec<Connection>>,
    permits: Semaphore,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    /// Closing the queue ends the writer thread after it commits what is queued; waiting
    /// for it means the file is closed (and checkpointed) when the last handle is gone,
    /// so the same file can be reopened at once.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.writes, closed));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn open_conn(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL mode: a commit is durable once the WAL is synced at checkpoint or
        // by the next FULL sync; we want every acknowledged write to survive a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrates it to `manifest`
    /// (refusing changes that would lose data), and starts the writer thread.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or the migration is refused.
    pub fn open(
        path: &Path,
        manifest: Arc<Manifest>,
        options: &SqliteOptions,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        }
        let mut conn = open_conn(path, false)?;
        schema::migrate(&mut conn, &manifest, false)
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let readers = (0..options.read_connections.max(1))
            .map(|_| open_conn(path, true))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let config = writer::WriterConfig {
            max_group: options.max_group.max(1),
            change_retention: options.change_retention,
        };
        let writer_manifest = Arc::clone(&manifest);
        let writer = std::thread::Builder::new()
            .name("pylon-sqlite-writer".into())
            .spawn(move || writer::run(conn, writer_manifest, rx, config))
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        let permits = Semaphore::new(readers.len());
        let inner = Inner {
            manifest,
            path: path.to_owned(),
            writes: tx,
            readers: Mutex::new(readers),
            permits,
            writer: Some(writer),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The manifest the store was opened with.
    #[must_use]
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.inner.manifest
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commits `ops` all-or-nothing; answers once the group it joined is durable.
    ///
    /// # Errors
    /// The failing operation's index and error; nothing of the batch was applied.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<WriteResult, IndexedError> {
        if ops.is_empty() {
            return Ok(WriteResult::default());
        }
        if ops.len() > limits::MAX_BATCH {
            return Err(EntityError::BadRequest(format!(
                "at most {} operations per transaction",
                limits::MAX_BATCH
            ))
            .in_operation(limits::MAX_BATCH));
        }
        let (reply, answer) = oneshot::channel();
        let closed =
            || EntityError::Store(StoreError::Write("the store is closed".into())).in_operation(0);
        self.inner.writes.send(writer::Job::Write { ops, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn exec(
        &self,
        sql: &'static str,
        params: Vec<rusqlite::types::Value>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Write("the store is closed".into());
        self.inner
            .writes
            .send(writer::Job::Exec { sql, params, reply })
            .await
            .map_err(|_| closed())?;
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
        use rusqlite::types::Value as V;
        let params = vec![
            V::Text(match_id.into()),
            V::Text(game.into()),
            V::Integer(i64::try_from(tick).unwrap_or(i64::MAX)),
            V::Text(state),
            V::Text(crate::time::now_rfc3339()),
        ];
        self.exec(
            "INSERT OR REPLACE INTO pylon_matches (match_id, game, tick, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params,
        )
        .await
    }

    /// Forgets the saved state of `match_id` (finished or stopped).
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_match(&self, match_id: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM pylon_matches WHERE match_id = ?1",
            vec![rusqlite::types::Value::Text(match_id.into())],
        )
        .await
    }

    /// Every saved running match: (match id, state JSON).
    ///
    /// # Errors
    /// Store errors.
    pub async fn saved_matches(&self) -> Result<Vec<(String, String)>, EntityError> {
        self.read(|conn, _| {
            let mut stmt = conn
                .prepare("SELECT match_id, state FROM pylon_matches ORDER BY match_id")
                .map_err(StoreError::from)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(StoreError::from)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)?;
            Ok(rows)
        })
        .await
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
        use rusqlite::types::Value as V;
        let params = vec![
            V::Text(match_id.into()),
            V::Text(game.into()),
            V::Text(log),
            V::Text(crate::time::now_rfc3339()),
        ];
        self.exec(
            "INSERT OR REPLACE INTO pylon_replays (match_id, game, log, finished_at) VALUES (?1, ?2, ?3, ?4)",
            params,
        )
        .await
    }

    /// The replay log (JSON) of `match_id`, if one was stored.
    ///
    /// # Errors
    /// Store errors.
    pub async fn replay(&self, match_id: &str) -> Result<Option<String>, EntityError> {
        let id = match_id.to_owned();
        self.read(move |conn, _| {
            use rusqlite::OptionalExtension as _;
            let log = conn
                .query_row("SELECT log FROM pylon_replays WHERE match_id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(StoreError::from)?;
            Ok(log)
        })
        .await
    }

    /// Runs `f` on a read connection from the pool.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Manifest) -> Result<R, EntityError> + Send + 'static,
    ) -> Result<R, EntityError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Write("the store is closed".into()))?;
        let conn = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .ok_or_else(|| StoreError::Write("no read connection free".into()))?;
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            let result = f(&conn, &inner.manifest);
            inner.readers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conn);
            result
        })
        .await;
        joined.map_err(|e| StoreError::Write(format!("read task failed: {e}")))?
    }

    /// One row by id.
    ///
    /// # Errors
    /// [`EntityError::UnknownEntity`], [`EntityError::NotFound`], store errors.
    pub async fn get(&self, entity: &str, id: &str) -> Result<Row, EntityError> {
        let (entity, id) = (entity.to_owned(), id.to_owned());
        self.read(move |conn, manifest| {
            let def = entity_def(manifest, &entity)?;
            let sql =
                format!("SELECT {} FROM {} WHERE \"id\" = ?1", select_list(def), table(&def.name));
            let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::from)?;
            let mut rows =
                stmt.query_map(params![id], |r| read_row(def, r)).map_err(StoreError::from)?;
            match rows.next() {
                Some(row) => Ok(row.map_err(StoreError::from)?),
                None => Err(EntityError::NotFound { entity, id }),
            }
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
            let def = entity_def(manifest, &entity)?;
            let (clause, values) = where_clause(def, &filters, None)?;
            let count: i64 = conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM {}{clause}", table(&def.name)),
                    rusqlite::params_from_iter(values.iter()),
                    |r| r.get(0),
                )
                .map_err(StoreError::from)?;
            let sql = format!(
                "SELECT {} FROM {}{clause} ORDER BY \"id\" LIMIT {} OFFSET {}",
                select_list(def),
                table(&def.name),
                limit.clamp(1, limits::MAX_PAGE),
                offset.min(i64::MAX as u64)
            );
            let rows = query_rows(conn, def, &sql, &values)?;
            Ok(Page { rows, count: u64::try_from(count).unwrap_or(0) })
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
            let def = entity_def(manifest, &entity)?;
            let limit = limit.clamp(1, limits::MAX_PAGE) as usize;
            let (clause, values) = where_clause(def, &filters, after.as_deref())?;
            let sql = format!(
                "SELECT {} FROM {}{clause} ORDER BY \"id\" LIMIT {}",
                select_list(def),
                table(&def.name),
                limit + 1
            );
            let mut rows = query_rows(conn, def, &sql, &values)?;
            let has_more = rows.len() > limit;
            rows.truncate(limit);
            let next_cursor = if has_more {
                rows.last().and_then(|r| r.get("id")).and_then(Value::as_str).map(str::to_owned)
            } else {
                None
            };
            Ok(CursorPage { rows, next_cursor, has_more })
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
            let (oldest, latest): (Option<i64>, Option<i64>) = conn
                .query_row("SELECT MIN(seq), MAX(seq) FROM pylon_changes", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(StoreError::from)?;
            query::check_window(since, oldest, latest)?;
            let limit = limit.clamp(1, limits::MAX_PAGE) as usize;
            let mut stmt = conn
                .prepare_cached("SELECT seq, entity, row_id, kind, data, ts, prior FROM pylon_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(StoreError::from)?;
            let mut changes = stmt
                .query_map(params![since as i64, (limit + 1) as i64], change_from_row)
                .map_err(StoreError::from)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)?;
            let has_more = changes.len() > limit;
            changes.truncate(limit);
            let last_seq = changes.last().map_or(since, |c| c.seq);
            Ok(ChangesPage { changes, last_seq, has_more })
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
                .map_err(StoreError::from)?;
            Ok(seq.map_or(0, |s| s as u64))
        })
        .await
    }

    /// Checks the database answers (readiness).
    ///
    /// # Errors
    /// Store errors.
    pub async fn ping(&self) -> Result<(), EntityError> {
        self.read(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(())).map_err(StoreError::from)?;
            Ok(())
        })
        .await
    }

    /// A consistent online copy of the database to `dest` (SQLite backup API).
    ///
    /// # Errors
    /// Store errors.
    pub async fn backup_to(&self, dest: PathBuf) -> Result<(), EntityError> {
        self.read(move |conn, _| {
            let mut out = Connection::open(&dest)
                .map_err(|e| StoreError::Open(format!("{}: {e}", dest.display())))?;
            let backup = rusqlite::backup::Backup::new(conn, &mut out).map_err(StoreError::from)?;
            backup.run_to_completion(256, Duration::ZERO, None).map_err(StoreError::from)?;
            Ok(())
        })
        .await
    }
}

/// A consistent copy of the SQLite database at `src` into a new file `dest`, taken with
/// the backup API while other processes may be writing.
///
/// # Errors
/// Store errors (naming the file).
pub fn backup_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let from = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open(format!("{}: {e}", src.display())))?;
    from.busy_timeout(Duration::from_secs(5))?;
    let mut to =
        Connection::open(dest).map_err(|e| StoreError::Open(format!("{}: {e}", dest.display())))?;
    let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
    backup.run_to_completion(256, Duration::ZERO, None)?;
    Ok(())
}

/// Migrates the database at `path` to `manifest` (`pylon migrate`); what it did (or would
/// do, with `dry_run`).
///
/// # Errors
/// [`StoreError::Migrate`] naming entity and field for a refused change.
pub fn migrate_file(
    path: &Path,
    manifest: &Manifest,
    dry_run: bool,
) -> Result<Vec<String>, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
    }
    let mut conn = open_conn(path, false)?;
    schema::migrate(&mut conn, manifest, dry_run).map_err(|e| StoreError::Migrate(e.to_string()))
}

fn entity_def<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m EntityDef, EntityError> {
    manifest.entity(name).ok_or_else(|| EntityError::UnknownEntity(name.to_owned()))
}

fn where_clause(
    def: &EntityDef,
    filters: &[(String, String)],
    after: Option<&str>,
) -> Result<(String, Vec<rusqlite::types::Value>), EntityError> {
    use rusqlite::types::Value as V;
    let parsed = query::parse_filters(def, filters)?;
    let clause = query::where_sql(&parsed, after.is_some(), |n| format!("?{n}"));
    let mut values: Vec<V> = parsed
        .into_iter()
        .map(|(_, v)| match v {
            FilterValue::Text(t) => V::Text(t),
            FilterValue::Int(i) => V::Integer(i),
            FilterValue::Float(f) => V::Real(f),
            FilterValue::Bool(b) => V::Integer(i64::from(b)),
        })
        .collect();
    values.extend(after.map(|a| V::Text(a.to_owned())));
    Ok((clause, values))
}

fn query_rows(
    conn: &Connection,
    def: &EntityDef,
    sql: &str,
    values: &[rusqlite::types::Value],
) -> Result<Vec<Row>, EntityError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::from)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values.iter()), |r| read_row(def, r))
        .map_err(StoreError::from)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::from)?;
    Ok(rows)
}

fn change_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeEvent> {
    Ok(ChangeEvent::from_log(
        u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        r.get(1)?,
        r.get(2)?,
        &r.get::<_, String>(3)?,
        r.get::<_, Option<String>>(4)?.as_deref(),
        r.get::<_, Option<String>>(6)?.as_deref(),
        r.get(5)?,
    ))
}
