//! The maintenance commands: `pylon migrate`, `pylon backup DIR`, `pylon restore DIR`.
//!
//! A backup directory holds `pylon.db` (entities and the change log), `sessions.db`
//! and `backup.json` (what was copied, when, by which version). Both databases are
//! copied with SQLite's online backup API, so a running server keeps serving. Restore
//! refuses to overwrite: the target locations must not exist yet.

use std::path::Path;

use anyhow::{Context, bail};
use pylon_storage::Manifest;
use pylon_storage::postgres::{PgOptions, PgSessionStore, PgStore};

use crate::config::Config;
use crate::setup::{self, DevManifest};

/// `pylon migrate [--dry-run]`.
///
/// # Errors
/// A refused migration, naming entity and field.
pub fn migrate(config: &Config, dev: DevManifest, dry_run: bool) -> anyhow::Result<()> {
    let manifest = runtime()?.block_on(setup::load_manifest(config, dev))?.manifest;
    let (target, actions) = match &config.database_url {
        Some(url) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let actions = runtime.block_on(async {
                let options = pylon_storage::postgres::PgOptions::default();
                let store = pylon_storage::postgres::PgStore::connect(
                    url,
                    std::sync::Arc::new(manifest),
                    &options,
                )
                .await?;
                store.migrate(dry_run).await
            });
            ("the Postgres database".to_owned(), actions.context("DATABASE_URL")?)
        }
        None => {
            let actions = pylon_storage::migrate_file(&config.db_path, &manifest, dry_run)
                .with_context(|| format!("PYLON_DB_PATH={}", config.db_path.display()))?;
            (config.db_path.display().to_string(), actions)
        }
    };
    let verb = if dry_run { "would" } else { "did" };
    if actions.is_empty() {
        println!("pylon migrate: {target} is up to date");
    }
    for action in actions {
        println!("pylon migrate: {verb} {action}");
    }
    Ok(())
}

/// `pylon backup DIR`.
///
/// # Errors
/// DIR exists and is not empty, or a copy fails.
pub fn backup(config: &Config, dev: DevManifest, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("backup directory {} must be new or empty", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(url) = &config.database_url {
        return backup_postgres(config, dev, url, dir);
    }
    if !config.db_path.exists() {
        bail!("PYLON_DB_PATH={} does not exist: nothing to back up", config.db_path.display());
    }
    pylon_storage::backup_file(&config.db_path, &dir.join("pylon.db"))
        .context("backing up the entity database")?;
    let sessions = config.session_db.as_os_str() != ":memory:" && config.session_db.exists();
    if sessions {
        pylon_storage::backup_file(&config.session_db, &dir.join("sessions.db"))
            .context("backing up the session database")?;
    }
    let meta = serde_json::json!({
        "pylon_version": env!("CARGO_PKG_VERSION"),
        "created_at": pylon_storage::time::now_rfc3339(),
        "files": if sessions { vec!["pylon.db", "sessions.db"] } else { vec!["pylon.db"] },
    });
    std::fs::write(dir.join("backup.json"), format!("{meta:#}\n"))
        .context("writing backup.json")?;
    println!("pylon backup: {} -> {}", config.db_path.display(), dir.display());
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn pg_manifest(config: &Config, dev: DevManifest) -> anyhow::Result<std::sync::Arc<Manifest>> {
    Ok(std::sync::Arc::new(runtime()?.block_on(setup::load_manifest(config, dev))?.manifest))
}

/// A logical export of every manifest table and pylon's internal tables.
fn backup_postgres(config: &Config, dev: DevManifest, url: &str, dir: &Path) -> anyhow::Result<()> {
    let manifest = pg_manifest(config, dev)?;
    let tables = runtime()?.block_on(async {
        let store = PgStore::connect(url, manifest, &PgOptions::default()).await?;
        store.export(dir).await
    });
    let tables = tables.context("DATABASE_URL")?;
    let meta = serde_json::json!({
        "pylon_version": env!("CARGO_PKG_VERSION"),
        "created_at": pylon_storage::time::now_rfc3339(),
        "backend": "postgres",
        "tables": tables,
    });
    std::fs::write(dir.join("backup.json"), format!("{meta:#}\n"))
        .context("writing backup.json")?;
    println!(
        "pylon backup: postgres ({} tables) -> {}",
        meta["tables"].as_array().map_or(0, Vec::len),
        dir.display()
    );
    Ok(())
}

/// Loads a logical export into an empty Postgres database (migrated to the manifest).
fn restore_postgres(
    config: &Config,
    dev: DevManifest,
    url: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let manifest = pg_manifest(config, dev)?;
    runtime()?
        .block_on(async {
            let store = PgStore::open(url, manifest, &PgOptions::default()).await?;
            PgSessionStore::open(store.pool().clone()).await?;
            store.import(dir).await
        })
        .context("DATABASE_URL")?;
    println!("pylon restore: {} -> postgres", dir.display());
    Ok(())
}

/// `pylon restore DIR`.
///
/// # Errors
/// Not a backup directory, or a target already exists.
pub fn restore(config: &Config, dev: DevManifest, dir: &Path) -> anyhow::Result<()> {
    if let Some(url) = &config.database_url {
        if !dir.join("backup.json").is_file() || !dir.join("pylon_changes.jsonl").is_file() {
            bail!(
                "{} is not a pylon Postgres backup (no backup.json and pylon_changes.jsonl)",
                dir.display()
            );
        }
        return restore_postgres(config, dev, url, dir);
    }
    let entities = dir.join("pylon.db");
    if !dir.join("backup.json").is_file() || !entities.is_file() {
        bail!("{} is not a pylon backup (no backup.json and pylon.db)", dir.display());
    }
    if config.db_path.exists() {
        bail!(
            "PYLON_DB_PATH={} already exists; restore needs an empty data location",
            config.db_path.display()
        );
    }
    let sessions = dir.join("sessions.db");
    let restore_sessions = sessions.is_file() && config.session_db.as_os_str() != ":memory:";
    if restore_sessions && config.session_db.exists() {
        bail!(
            "PYLON_SESSION_DB={} already exists; restore needs an empty data location",
            config.session_db.display()
        );
    }
    for path in [&config.db_path, &config.session_db] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    pylon_storage::backup_file(&entities, &config.db_path)
        .context("restoring the entity database")?;
    if restore_sessions {
        pylon_storage::backup_file(&sessions, &config.session_db)
            .context("restoring the session database")?;
    }
    println!("pylon restore: {} -> {}", dir.display(), config.db_path.display());
    Ok(())
}
