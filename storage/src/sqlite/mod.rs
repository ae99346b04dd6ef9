//! The SQLite backend: WAL mode, one writer thread with group commit ([`writer`]), a
//! pool of read connections ([`read`]), foreign keys on, a busy timeout. Schema and
//! migrations from the manifest ([`schema`]), rows between JSON and columns ([`rows`]),
//! sessions in their own file ([`sessions`]), online copies ([`backup`]). This file: the
//! store itself (opening, options, accessors, the read pool).

mod backup;
mod read;
mod rows;
pub mod schema;
mod sessions;
mod writer;

pub use backup::backup_file;
pub use schema::migrate_file;
pub use sessions::SqliteSessionStore;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc};

use crate::StoreError;
use crate::entity::EntityError;
use crate::manifest::Manifest;

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

/// Creates the directory `path` is in, if missing.
fn create_parent(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
    }
    Ok(())
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
        create_parent(path)?;
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
}
