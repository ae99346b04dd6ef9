//! Logical backup of a Postgres store: every table the manifest declares plus pylon's
//! internal tables (schema record, indexes, change log and its counter, saved matches,
//! replays, sessions), one JSON object per row, read in one repeatable-read snapshot so
//! the copy is consistent while the server keeps writing. Restore fills an empty
//! database in one transaction.

use std::io::{BufRead, Write};
use std::path::Path;

use sqlx::Row as _;

use super::{PgStore, pg};
use crate::StoreError;
use crate::sql::table;

/// pylon's internal tables, in restore order.
const INTERNAL: [&str; 7] = [
    "pylon_schema",
    "pylon_indexes",
    "pylon_seq",
    "pylon_changes",
    "pylon_matches",
    "pylon_replays",
    "pylon_sessions",
];

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Open(format!("{}: {e}", path.display()))
}

impl PgStore {
    fn tables(&self) -> Vec<String> {
        let mut out: Vec<String> = INTERNAL.iter().map(|t| format!("\"{t}\"")).collect();
        out.extend(self.manifest().entities.iter().map(|e| table(&e.name)));
        out
    }

    /// Writes `<table>.jsonl` files into `dir` (which must exist); returns the tables.
    ///
    /// # Errors
    /// Database or file errors.
    pub async fn export(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(pg)?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        let mut written = Vec::new();
        for t in self.tables() {
            let name = t.trim_matches('"').to_owned();
            let exists: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(pg)?;
            if exists.is_none() {
                continue;
            }
            let rows = sqlx::query(&format!("SELECT row_to_json(x)::text FROM {t} x"))
                .fetch_all(&mut *tx)
                .await
                .map_err(pg)?;
            let path = dir.join(format!("{name}.jsonl"));
            let mut file =
                std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| io(&path, e))?);
            for r in rows {
                let line: String = r.try_get(0).map_err(pg)?;
                writeln!(file, "{line}").map_err(|e| io(&path, e))?;
            }
            file.flush().map_err(|e| io(&path, e))?;
            written.push(name);
        }
        tx.commit().await.map_err(pg)?;
        Ok(written)
    }

    /// Loads an [`PgStore::export`] into this store, which must hold no rows and no
    /// changes yet. All or nothing.
    ///
    /// # Errors
    /// A non-empty target, database or file errors.
    pub async fn import(&self, dir: &Path) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(pg)?;
        let changes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pylon_changes")
            .fetch_one(&mut *tx)
            .await
            .map_err(pg)?;
        if changes > 0 {
            return Err(StoreError::Open(
                "restore needs an empty database (the change log has rows)".into(),
            ));
        }
        for t in self.tables() {
            let name = t.trim_matches('"').to_owned();
            let path = dir.join(format!("{name}.jsonl"));
            if !path.is_file() {
                continue;
            }
            // Tables the migration just filled (schema record, indexes, counter) are
            // replaced by the backup's rows.
            sqlx::raw_sql(&format!("DELETE FROM {t}")).execute(&mut *tx).await.map_err(pg)?;
            let file =
                std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| io(&path, e))?);
            let insert =
                format!("INSERT INTO {t} SELECT * FROM json_populate_record(NULL::{t}, $1::json)");
            for line in file.lines() {
                let line = line.map_err(|e| io(&path, e))?;
                sqlx::query(&insert).bind(line).execute(&mut *tx).await.map_err(pg)?;
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(())
    }
}
