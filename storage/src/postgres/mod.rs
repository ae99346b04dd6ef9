//! The Postgres backend (sqlx), selected by a `postgres://` or `postgresql://`
//! `DATABASE_URL`. Same behaviour as SQLite: the same validation and guards
//! ([`crate::write`]), the same migration plan ([`crate::migrate`]), and a change log
//! whose `seq` is dense and in commit order across every process sharing the database:
//! each write transaction takes the next value from a one-row counter (`pylon_seq`),
//! which serializes writers on that row until they commit.

use std::sync::Arc;

use serde_json::{Number, Value};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, PgConnection, Row as _};

use crate::StoreError;
use crate::entity::Row;
use crate::manifest::{EntityDef, FieldDef, FieldType, Manifest};
use crate::migrate::{Action, Facts, StoredField, index_sql, plan, wanted_indexes};

mod backup;
mod data;
mod probe;
mod sessions;

pub use probe::{PROBE_TIMEOUT, ProbeError, probe};
pub use sessions::PgSessionStore;

/// Postgres store settings.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Pool size (default 16).
    pub max_connections: u32,
    /// A schema to use instead of `public` (created if missing; tests use one each).
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self { max_connections: 16, schema: None }
    }
}

/// An entity store in Postgres.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    manifest: Arc<Manifest>,
}

fn pg(e: sqlx::Error) -> StoreError {
    StoreError::Postgres(e.to_string())
}

fn table(entity: &str) -> String {
    format!("\"e_{entity}\"")
}

fn column_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Int => "BIGINT",
        FieldType::Float => "DOUBLE PRECISION",
        FieldType::Bool => "BOOLEAN",
        _ => "TEXT",
    }
}

fn select_list(entity: &EntityDef) -> String {
    let mut cols = vec!["\"id\"".to_owned()];
    cols.extend(entity.fields.iter().map(|f| format!("\"{}\"", f.name)));
    cols.join(", ")
}

const INTERNAL: &str = "
    CREATE TABLE IF NOT EXISTS pylon_schema (entity TEXT NOT NULL, field TEXT NOT NULL, type TEXT NOT NULL,
        optional BOOLEAN NOT NULL, uniq BOOLEAN NOT NULL, PRIMARY KEY (entity, field));
    CREATE TABLE IF NOT EXISTS pylon_indexes (name TEXT PRIMARY KEY, entity TEXT NOT NULL, sql TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS pylon_seq (id INT PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
    INSERT INTO pylon_seq (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    CREATE TABLE IF NOT EXISTS pylon_changes (seq BIGINT PRIMARY KEY, entity TEXT NOT NULL, row_id TEXT NOT NULL,
        kind TEXT NOT NULL, data TEXT, ts TEXT NOT NULL);
    ALTER TABLE pylon_changes ADD COLUMN IF NOT EXISTS prior TEXT;
    CREATE TABLE IF NOT EXISTS pylon_matches (match_id TEXT PRIMARY KEY, game TEXT NOT NULL, tick BIGINT NOT NULL,
        state TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS pylon_replays (match_id TEXT PRIMARY KEY, game TEXT NOT NULL, log TEXT NOT NULL,
        finished_at TEXT NOT NULL);";

/// One bind parameter.
#[derive(Debug, Clone)]
enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
}

fn arg(ty: &FieldType, v: &Value) -> Arg {
    match ty {
        FieldType::Int => Arg::Int(v.as_i64()),
        FieldType::Float => Arg::Float(v.as_f64()),
        FieldType::Bool => Arg::Bool(v.as_bool()),
        _ => Arg::Text(v.as_str().map(str::to_owned)),
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v.as_deref()),
            Arg::Int(v) => q.bind(*v),
            Arg::Float(v) => q.bind(*v),
            Arg::Bool(v) => q.bind(*v),
        };
    }
    q
}

fn read_row(entity: &EntityDef, r: &PgRow) -> Result<Row, sqlx::Error> {
    let mut out = Row::new();
    out.insert("id".into(), Value::String(r.try_get::<String, _>(0)?));
    for (i, f) in entity.fields.iter().enumerate() {
        let v = match f.ty {
            FieldType::Int => r.try_get::<Option<i64>, _>(i + 1)?.map_or(Value::Null, Value::from),
            FieldType::Float => r
                .try_get::<Option<f64>, _>(i + 1)?
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            FieldType::Bool => {
                r.try_get::<Option<bool>, _>(i + 1)?.map_or(Value::Null, Value::Bool)
            }
            _ => r.try_get::<Option<String>, _>(i + 1)?.map_or(Value::Null, Value::String),
        };
        out.insert(f.name.clone(), v);
    }
    Ok(out)
}

impl PgStore {
    /// Connects, creates the internal tables, migrates to `manifest` (refusing changes
    /// that would lose data; one process at a time, under an advisory lock).
    ///
    /// # Errors
    /// Connection failures, refused migrations.
    pub async fn open(
        url: &str,
        manifest: Arc<Manifest>,
        options: &PgOptions,
    ) -> Result<Self, StoreError> {
        let store = Self::connect(url, manifest, options).await?;
        store.migrate(false).await.map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(store)
    }

    /// Connects without migrating (`pylon migrate --dry-run`).
    ///
    /// # Errors
    /// Connection failures.
    pub async fn connect(
        url: &str,
        manifest: Arc<Manifest>,
        options: &PgOptions,
    ) -> Result<Self, StoreError> {
        let schema = options.schema.clone();
        if let Some(s) = &schema
            && !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::Open(format!("invalid schema name {s:?}")));
        }
        // One direct connection first: a database that is not there is named (refused,
        // authentication, no answer) within seconds instead of as a pool timeout.
        probe(url, PROBE_TIMEOUT).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                let schema = schema.clone();
                Box::pin(async move {
                    if let Some(s) = schema {
                        conn.execute(
                            format!(
                                "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET search_path TO \"{s}\""
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Open(format!("postgres: {e}")))?;
        Ok(Self { pool, manifest })
    }

    /// The manifest the store was opened with.
    #[must_use]
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The connection pool (the session store shares it).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Brings the schema to the manifest; what it did (or would do).
    ///
    /// # Errors
    /// A refusal naming entity and field, or database errors.
    pub async fn migrate(&self, dry_run: bool) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(7366871)").await.map_err(pg)?;
        sqlx::raw_sql(INTERNAL).execute(&mut *tx).await.map_err(pg)?;
        let stored: Vec<StoredField> =
            sqlx::query("SELECT entity, field, type, optional, uniq FROM pylon_schema")
                .fetch_all(&mut *tx)
                .await
                .map_err(pg)?
                .iter()
                .map(|r| StoredField {
                    entity: r.get(0),
                    field: r.get(1),
                    ty: r.get(2),
                    optional: r.get(3),
                    unique: r.get(4),
                })
                .collect();
        let facts = facts(&mut tx, &stored).await?;
        let mut existing = Vec::new();
        for e in &self.manifest.entities {
            let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1")
                .bind(format!("e_{}", e.name))
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg)?;
            if found.is_some() {
                existing.push(e.name.clone());
            }
        }
        let actions = plan(&self.manifest, &stored, &facts, |e| existing.iter().any(|x| x == e))
            .map_err(StoreError::Migrate)?;
        let mut done: Vec<String> = actions.iter().map(ToString::to_string).collect();
        for action in &actions {
            apply(&mut tx, &self.manifest, action).await?;
        }
        for entity in &self.manifest.entities {
            sync_indexes(&mut tx, entity, &mut done).await?;
            record(&mut tx, entity).await?;
        }
        if dry_run {
            tx.rollback().await.map_err(pg)?;
        } else {
            tx.commit().await.map_err(pg)?;
        }
        Ok(done)
    }
}

async fn facts(tx: &mut PgConnection, stored: &[StoredField]) -> Result<Facts, StoreError> {
    let mut facts = Facts::default();
    for s in stored {
        let t = table(&s.entity);
        if !facts.rows.contains_key(&s.entity) {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one(&mut *tx)
                .await
                .map_err(pg)?;
            facts.rows.insert(s.entity.clone(), n);
        }
        let sql = format!("SELECT COUNT(*) FROM {t} WHERE \"{}\" IS NOT NULL", s.field);
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *tx).await.map_err(pg)?;
        facts.values.insert((s.entity.clone(), s.field.clone()), n);
    }
    Ok(facts)
}

fn column_sql(f: &FieldDef) -> String {
    format!("\"{}\" {}", f.name, column_type(&f.ty))
}

async fn apply(
    tx: &mut PgConnection,
    manifest: &Manifest,
    action: &Action,
) -> Result<(), StoreError> {
    let field_of = |e: &str, f: &str| manifest.entity(e).and_then(|d| d.field(f)).map(column_sql);
    let sql = match action {
        Action::CreateEntity(e) => {
            let Some(entity) = manifest.entity(e) else { return Ok(()) };
            let mut cols = vec!["\"id\" TEXT COLLATE \"C\" PRIMARY KEY".to_owned()];
            cols.extend(entity.fields.iter().map(column_sql));
            format!("CREATE TABLE {} ({})", table(e), cols.join(", "))
        }
        Action::AddField(e, f) => match field_of(e, f) {
            Some(col) => format!("ALTER TABLE {} ADD COLUMN {col}", table(e)),
            None => return Ok(()),
        },
        Action::DropField(e, f) => format!("ALTER TABLE {} DROP COLUMN \"{f}\"", table(e)),
        Action::DropEntity(e) => format!(
            "DROP TABLE IF EXISTS {}; DELETE FROM pylon_schema WHERE entity = '{e}'",
            table(e)
        ),
        Action::Retype(e, f) => match field_of(e, f) {
            // The column holds no values (or int -> float): change its storage type.
            Some(_) => {
                let ty = manifest
                    .entity(e)
                    .and_then(|d| d.field(f))
                    .map_or("TEXT", |d| column_type(&d.ty));
                format!(
                    "ALTER TABLE {} ALTER COLUMN \"{f}\" TYPE {ty} USING \"{f}\"::{ty}",
                    table(e)
                )
            }
            None => return Ok(()),
        },
    };
    sqlx::raw_sql(&sql).execute(&mut *tx).await.map_err(pg)?;
    Ok(())
}

async fn sync_indexes(
    tx: &mut PgConnection,
    entity: &EntityDef,
    done: &mut Vec<String>,
) -> Result<(), StoreError> {
    let t = table(&entity.name);
    let wanted: Vec<(String, String)> =
        wanted_indexes(entity).iter().map(|ix| (ix.name.clone(), index_sql(ix, &t))).collect();
    let existing: Vec<(String, String)> =
        sqlx::query_as("SELECT name, sql FROM pylon_indexes WHERE entity = $1")
            .bind(&entity.name)
            .fetch_all(&mut *tx)
            .await
            .map_err(pg)?;
    for (name, sql) in &existing {
        if !wanted.iter().any(|(n, s)| n == name && s == sql) {
            sqlx::raw_sql(&format!("DROP INDEX IF EXISTS \"{name}\""))
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            sqlx::query("DELETE FROM pylon_indexes WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            done.push(format!("drop index {name}"));
        }
    }
    for (name, sql) in &wanted {
        if !existing.iter().any(|(n, s)| n == name && s == sql) {
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
                StoreError::Migrate(format!(
                    "refused: index {name} cannot be built on the existing rows: {e}"
                ))
            })?;
            sqlx::query("INSERT INTO pylon_indexes (name, entity, sql) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(&entity.name)
                .bind(sql)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            done.push(format!("create index {name}"));
        }
    }
    Ok(())
}

async fn record(tx: &mut PgConnection, entity: &EntityDef) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM pylon_schema WHERE entity = $1")
        .bind(&entity.name)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    for f in &entity.fields {
        sqlx::query("INSERT INTO pylon_schema (entity, field, type, optional, uniq) VALUES ($1, $2, $3, $4, $5)")
            .bind(&entity.name)
            .bind(&f.name)
            .bind(f.ty.as_str())
            .bind(f.optional)
            .bind(f.unique)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
    }
    Ok(())
}
