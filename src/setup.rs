//! What `serve` and the maintenance commands open: the database a configuration names,
//! the manifest (one rule for every command), the entity and session stores, and the
//! matches a previous run saved.

use std::sync::Arc;

use anyhow::Context;
use pylon_api::Matches;
use pylon_storage::postgres::PgSessionStore;
use pylon_storage::{Backend, Manifest, Sessions, SqliteSessionStore, Store, stored_manifest};

use crate::config::Config;

/// What `pylon serve` runs with when nothing names a manifest: no entities.
const EMPTY_MANIFEST: &str = r#"{"manifest_version":1,"name":"pylon","version":"0","entities":[]}"#;

/// The manifest `dev` loads for a database that never recorded one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DevManifest {
    /// What the start-up lines call it.
    pub name: &'static str,
    /// Its JSON.
    pub json: &'static str,
}

/// A loaded manifest and where it came from (for the start-up lines).
pub(crate) struct Loaded {
    pub manifest: Manifest,
    pub source: String,
}

/// The database the configuration names: Postgres when `DATABASE_URL` does, else the
/// SQLite file at `PYLON_DB_PATH`.
pub(crate) fn backend(config: &Config) -> Backend {
    match &config.database_url {
        Some(url) => Backend::Postgres { url: url.clone(), schema: None },
        None => Backend::Sqlite(config.db_path.clone()),
    }
}

/// The variable naming the database, for error context.
pub(crate) fn database_variable(config: &Config) -> String {
    match &config.database_url {
        Some(_) => "DATABASE_URL".to_owned(),
        None => format!("PYLON_DB_PATH={}", config.db_path.display()),
    }
}

/// The manifest, the same rule for every command: `PYLON_MANIFEST` when set; else the
/// manifest the database was last migrated to (so `pylon migrate`, `backup` or `serve`
/// after `pylon dev` keep what `dev` loaded); else the mode's default (dev: the bundled
/// example, or the app's own; otherwise no entities).
pub(crate) async fn load_manifest(config: &Config, dev: DevManifest) -> anyhow::Result<Loaded> {
    let stored =
        || async { stored_manifest(&backend(config)).await.context(database_variable(config)) };
    let (parsed, source) = match &config.manifest {
        Some(path) => (
            Manifest::load(path).with_context(|| format!("PYLON_MANIFEST={}", path.display()))?,
            format!("{} (PYLON_MANIFEST)", path.display()),
        ),
        None => match stored().await? {
            Some(text) => (
                Manifest::parse(&text).context("the manifest the database recorded")?,
                "the one the database recorded (no PYLON_MANIFEST)".to_owned(),
            ),
            None if config.dev_mode => (
                Manifest::parse(dev.json).with_context(|| format!("the manifest {}", dev.name))?,
                dev.name.to_owned(),
            ),
            None => (
                Manifest::parse(EMPTY_MANIFEST).context("the empty manifest")?,
                "none: no entities (set PYLON_MANIFEST)".to_owned(),
            ),
        },
    };
    let (manifest, warnings) = parsed;
    for warning in warnings {
        tracing::warn!("manifest: {warning}");
    }
    Ok(Loaded { manifest, source })
}

/// Opens the entity store, migrating it to `manifest` (a refused migration stops
/// start-up).
pub(crate) async fn open_store(config: &Config, manifest: Manifest) -> anyhow::Result<Store> {
    Store::open(&backend(config), Arc::new(manifest)).await.context(database_variable(config))
}

/// The session store: Postgres (beside the entities) when `DATABASE_URL` names it,
/// else SQLite at `PYLON_SESSION_DB`.
pub(crate) async fn open_sessions(config: &Config, store: &Store) -> anyhow::Result<Sessions> {
    if let Store::Postgres(pg) = store {
        let sessions =
            PgSessionStore::open(pg.pool().clone()).await.context("DATABASE_URL (sessions)")?;
        return Ok(sessions.into());
    }
    if config.session_db.as_os_str() == ":memory:" {
        return Ok(SqliteSessionStore::in_memory().context("PYLON_SESSION_DB")?.into());
    }
    let path = &config.session_db;
    let sessions = SqliteSessionStore::open(path)
        .await
        .with_context(|| format!("PYLON_SESSION_DB={}", path.display()))?;
    Ok(sessions.into())
}

/// Resumes the matches a previous run of this process saved (only ids with its prefix:
/// other processes may share the database). A state that no longer restores (a game
/// removed or changed) is logged and left in place for an operator.
pub(crate) async fn restore_matches(
    store: &Store,
    matches: &Matches,
    regions: &pylon_api::Regions,
) {
    let saved = match store.saved_matches().await {
        Ok(saved) => pylon_api::persister::restorable(regions, saved),
        Err(e) => {
            tracing::error!(error = %e, "cannot read saved matches; none resumed");
            return;
        }
    };
    let mut resumed = 0usize;
    for (id, text) in saved {
        let restored = serde_json::from_str::<pylon_shard::SavedMatch>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| matches.restore(&id, &s).map_err(|e| e.to_string()));
        match restored {
            Ok(_) => resumed += 1,
            Err(e) => tracing::error!(shard = %id, error = %e, "saved match not resumed"),
        }
    }
    if resumed > 0 {
        tracing::info!(resumed, "resumed saved matches");
    }
}
