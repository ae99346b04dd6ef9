//! pylon-storage: the `Store` trait and its SQLite (rusqlite) and Postgres (sqlx) backends:
//! manifest, migrations, sessions, shard snapshots, match results and backups.
//!
//! Must never: be called from a tick thread; persistence is handed over on a bounded
//! channel and skipped (counted) when full.
//!
//! Status: reserved for the storage and entity API issue.
