//! One storage test suite, run against both backends: SQLite files in a temp dir and the
//! real Postgres (`PYLON_TEST_DATABASE_URL`; a schema of its own per test). CRUD and
//! validation, unique conflicts, all-or-nothing batches, keyset cursors, filters, the
//! durable dense change log under concurrent writers, and migrations that refuse to lose
//! data. (The SQLite online backup has its own test at the end.)

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::sync::Arc;

use pylon_storage::entity::{EntityError, Guard, Row, Verdict};
use pylon_storage::{Backend, ChangeKind, Manifest, SqliteOptions, SqliteStore, Store, WriteOp};
use serde_json::{Value, json};

const MANIFEST: &str = r#"{
  "manifest_version": 1, "name": "test", "version": "1",
  "entities": [
    {"name": "Player", "fields": [
      {"name": "name", "type": "string", "unique": true},
      {"name": "level", "type": "int"},
      {"name": "rating", "type": "float", "optional": true},
      {"name": "banned", "type": "bool", "optional": true},
      {"name": "region", "type": "string", "optional": true}
    ], "indexes": [{"name": "by_region", "fields": ["region"], "unique": false}]},
    {"name": "Item", "fields": [
      {"name": "owner", "type": "id(Player)"},
      {"name": "kind", "type": "string"}
    ]}
  ]
}"#;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pylon-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("pylon.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn manifest(json: &str) -> Arc<Manifest> {
    Arc::new(Manifest::parse(json).unwrap().0)
}

/// Where one test's data lives; SQLite directories are removed on drop.
struct Place {
    backend: Backend,
    _dir: Option<Dir>,
}

impl Place {
    async fn open(&self) -> Store {
        Store::open(&self.backend, manifest(MANIFEST)).await.unwrap()
    }
}

fn sqlite_place(test: &str) -> Place {
    let dir = Dir::new(test);
    Place { backend: Backend::Sqlite(dir.db()), _dir: Some(dir) }
}

/// A fresh schema of the test Postgres, or `None` (with a loud SKIPPED line) when it is
/// not reachable and `PYLON_TEST_REQUIRE_SERVICES` is unset.
async fn postgres_place(test: &str) -> Option<Place> {
    let url = std::env::var("PYLON_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("pylon_t_{test}_{}", std::process::id());
    let connected = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&url)
        .await;
    match connected {
        Ok(pool) => {
            // This test's schemas from earlier runs (other pids) go too: none pile up.
            drop_schemas(&pool, &format!("pylon_t_{test}_%")).await;
            Some(Place { backend: Backend::Postgres { url, schema: Some(schema) }, _dir: None })
        }
        Err(e) if std::env::var("PYLON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{test} needs postgres at {url}: {e}")
        }
        Err(_) => {
            eprintln!("SKIPPED: {test} needs postgres");
            None
        }
    }
}

/// Drops every schema whose name is `LIKE pattern`.
async fn drop_schemas(pool: &sqlx::PgPool, pattern: &str) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE $1",
    )
    .bind(pattern)
    .fetch_all(pool)
    .await
    .unwrap();
    for name in names {
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Runs each named test body on SQLite and on Postgres.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite_place(stringify!($name))).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(place) = super::postgres_place(stringify!($name)).await {
                        super::$name(place).await;
                    }
                }
            )*
        }
    };
}

both_backends!(
    crud_round_trip,
    validation_names_the_field,
    batches_are_all_or_nothing,
    guards_deny_inside_the_transaction,
    changes_keep_the_row_before,
    cursor_and_filters,
    concurrent_writers_and_durable_dense_log,
    migrations_refuse_data_loss,
);

fn row(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => panic!("object"),
    }
}

fn insert(entity: &str, data: Value) -> WriteOp {
    WriteOp {
        kind: ChangeKind::Insert,
        entity: entity.into(),
        id: None,
        data: row(data),
        guard: None,
    }
}

fn update(entity: &str, id: &str, data: Value) -> WriteOp {
    WriteOp {
        kind: ChangeKind::Update,
        entity: entity.into(),
        id: Some(id.into()),
        data: row(data),
        guard: None,
    }
}

fn delete(entity: &str, id: &str) -> WriteOp {
    WriteOp {
        kind: ChangeKind::Delete,
        entity: entity.into(),
        id: Some(id.into()),
        data: Row::new(),
        guard: None,
    }
}

/// Insert, read back with types intact, update, delete; each write is one change event.
async fn crud_round_trip(place: Place) {
    let store = place.open().await;
    let res = store
        .write(vec![insert(
            "Player",
            json!({"name": "ada", "level": 3, "rating": 1.5, "banned": false}),
        )])
        .await
        .unwrap();
    let id = res.ids[0].clone();
    let got = store.get("Player", &id).await.unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"id": id, "name": "ada", "level": 3, "rating": 1.5, "banned": false, "region": null})
    );
    let up = WriteOp {
        kind: ChangeKind::Update,
        entity: "Player".into(),
        id: Some(id.clone()),
        data: row(json!({"level": 4})),
        guard: None,
    };
    let res = store.write(vec![up]).await.unwrap();
    assert_eq!(res.changes[0].data.as_ref().unwrap()["level"], 4);
    assert_eq!(
        res.changes[0].data.as_ref().unwrap()["name"],
        "ada",
        "the event carries the whole row"
    );
    let del = WriteOp {
        kind: ChangeKind::Delete,
        entity: "Player".into(),
        id: Some(id.clone()),
        data: Row::new(),
        guard: None,
    };
    store.write(vec![del]).await.unwrap();
    assert!(matches!(store.get("Player", &id).await, Err(EntityError::NotFound { .. })));
    let log = store.changes_since(0, 100).await.unwrap();
    let kinds: Vec<ChangeKind> = log.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Delete]);
    assert_eq!(log.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

/// Bad values are refused naming the field; unknown entities and fields too.
async fn validation_names_the_field(place: Place) {
    let store = place.open().await;
    let cases = [
        (insert("Player", json!({"name": "x", "level": "high"})), "level"),
        (insert("Player", json!({"name": "x"})), "level"),
        (insert("Player", json!({"name": 5, "level": 1})), "name"),
        (insert("Player", json!({"name": "x", "level": 1, "banned": "no"})), "banned"),
        (insert("Player", json!({"name": "x", "level": 1.5})), "level"),
    ];
    for (op, field) in cases {
        let err = store.write(vec![op]).await.unwrap_err();
        match err.error {
            EntityError::InvalidField { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: {other}"),
        }
    }
    let err = store
        .write(vec![insert("Player", json!({"name": "x", "level": 1, "color": "red"}))])
        .await
        .unwrap_err();
    assert!(matches!(err.error, EntityError::UnknownField { ref field, .. } if field == "color"));
    let err = store.write(vec![insert("Ghost", json!({}))]).await.unwrap_err();
    assert!(matches!(err.error, EntityError::UnknownEntity(_)));
    assert_eq!(store.latest_seq().await.unwrap(), 0, "nothing was written");
}

/// A batch with one bad operation changes nothing; a unique collision is a conflict.
async fn batches_are_all_or_nothing(place: Place) {
    let store = place.open().await;
    store.write(vec![insert("Player", json!({"name": "taken", "level": 1}))]).await.unwrap();
    let err = store
        .write(vec![
            insert("Player", json!({"name": "new1", "level": 1})),
            insert("Player", json!({"name": "new2", "level": 1})),
            insert("Player", json!({"name": "taken", "level": 2})),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.index, 2);
    assert!(matches!(err.error, EntityError::Conflict { .. }), "{}", err.error);
    let page = store.list("Player", vec![], 100, 0).await.unwrap();
    assert_eq!(page.count, 1);
    assert_eq!(store.latest_seq().await.unwrap(), 1, "no change events from the failed batch");
}

/// A guard that says no aborts the write with PolicyDenied; one that hides the row
/// answers NotFound; an update's guard sees the row before and after, and a refused
/// update inside a batch leaves every row as it was.
async fn guards_deny_inside_the_transaction(place: Place) {
    let store = place.open().await;
    let mut op = insert("Player", json!({"name": "eve", "level": 1}));
    op.guard = Some(Arc::new(|_: Option<&Row>, after: Option<&Row>| {
        if after.is_some_and(|r| r["name"] == "eve") {
            Verdict::Deny("no eves".into())
        } else {
            Verdict::Allow
        }
    }));
    let err = store.write(vec![op]).await.unwrap_err();
    assert!(matches!(err.error, EntityError::PolicyDenied { ref hint, .. } if hint == "no eves"));
    assert_eq!(store.list("Player", vec![], 10, 0).await.unwrap().count, 0);

    let id =
        store.write(vec![insert("Player", json!({"name": "ada", "level": 1}))]).await.unwrap().ids
            [0]
        .clone();
    // Level may only go up: the guard compares both sides.
    let only_up: Guard =
        Arc::new(|before: Option<&Row>, after: Option<&Row>| match (before, after) {
            (Some(b), Some(a)) if a["level"].as_i64() < b["level"].as_i64() => {
                Verdict::Deny("down".into())
            }
            _ => Verdict::Allow,
        });
    let mut up = update("Player", &id, json!({"level": 5}));
    up.guard = Some(Arc::clone(&only_up));
    let mut down = update("Player", &id, json!({"level": 2}));
    down.guard = Some(only_up);
    let err = store.write(vec![up, down]).await.unwrap_err();
    assert_eq!(err.index, 1);
    assert!(matches!(err.error, EntityError::PolicyDenied { .. }));
    assert_eq!(store.get("Player", &id).await.unwrap()["level"], 1, "nothing of the batch applied");

    let mut hidden = update("Player", &id, json!({"level": 9}));
    hidden.guard = Some(Arc::new(|_: Option<&Row>, _: Option<&Row>| Verdict::Hidden));
    let err = store.write(vec![hidden]).await.unwrap_err();
    assert!(matches!(err.error, EntityError::NotFound { .. }), "{err:?}");
}

/// Update and delete events carry the row as it was, in the write's result and in the
/// durable log, so feeds can tell who could see the row before the write.
async fn changes_keep_the_row_before(place: Place) {
    let store = place.open().await;
    let id =
        store.write(vec![insert("Player", json!({"name": "ada", "level": 1}))]).await.unwrap().ids
            [0]
        .clone();
    let written = store.write(vec![update("Player", &id, json!({"level": 2}))]).await.unwrap();
    assert_eq!(written.changes[0].before.as_ref().unwrap()["level"], 1);
    assert_eq!(written.changes[0].data.as_ref().unwrap()["level"], 2);
    store.write(vec![delete("Player", &id)]).await.unwrap();
    let log = store.changes_since(0, 10).await.unwrap().changes;
    assert_eq!(log.len(), 3);
    assert!(log[0].before.is_none());
    assert_eq!(log[1].before.as_ref().unwrap()["level"], 1);
    assert_eq!(log[1].data.as_ref().unwrap()["level"], 2);
    assert_eq!(log[2].before.as_ref().unwrap()["level"], 2);
    assert!(log[2].data.is_none());
}

/// Keyset pagination visits every row once, in id order; filters need an index.
async fn cursor_and_filters(place: Place) {
    let store = place.open().await;
    let ops: Vec<WriteOp> = (0..25)
        .map(|i| insert("Player", json!({"name": format!("p{i}"), "level": i, "region": if i % 2 == 0 { "eu" } else { "us" }})))
        .collect();
    store.write(ops).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.cursor("Player", after.clone(), vec![], 10).await.unwrap();
        seen.extend(page.rows.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        if !page.has_more {
            break;
        }
        after = page.next_cursor;
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    let eu = store.list("Player", vec![("region".into(), "eu".into())], 100, 0).await.unwrap();
    assert_eq!(eu.count, 13);
    let err = store.list("Player", vec![("level".into(), "3".into())], 100, 0).await.unwrap_err();
    assert!(matches!(err, EntityError::BadRequest(_)), "level is not indexed");
}

/// 200 concurrent writers: every one committed, seqs dense 1..=200 (one order), and the
/// log and rows survive closing and reopening the store.
async fn concurrent_writers_and_durable_dense_log(place: Place) {
    {
        let store = place.open().await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(vec![insert("Player", json!({"name": format!("n{i}"), "level": i}))])
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().changes[0].seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    }
    let store = place.open().await;
    assert_eq!(store.latest_seq().await.unwrap(), 200);
    assert_eq!(store.list("Player", vec![], 1, 0).await.unwrap().count, 200);
    let page = store.changes_since(150, 1000).await.unwrap();
    assert_eq!(page.changes.len(), 50);
    assert_eq!(page.last_seq, 200);
    assert!(matches!(store.changes_since(201, 10).await, Err(EntityError::ResyncRequired { .. })));
}

/// SQLite: an online backup is a consistent copy with identical query results.
#[tokio::test]
async fn sqlite_backup_copy_is_identical() {
    let dir = Dir::new("backup");
    let store =
        SqliteStore::open(&dir.db(), manifest(MANIFEST), &SqliteOptions::default()).unwrap();
    store
        .write(
            (0..10)
                .map(|i| insert("Player", json!({"name": format!("b{i}"), "level": i})))
                .collect(),
        )
        .await
        .unwrap();
    let copy = dir.0.join("copy.db");
    store.backup_to(copy.clone()).await.unwrap();
    let restored = SqliteStore::open(&copy, manifest(MANIFEST), &SqliteOptions::default()).unwrap();
    let a = store.list("Player", vec![], 100, 0).await.unwrap();
    let b = restored.list("Player", vec![], 100, 0).await.unwrap();
    assert_eq!(a.rows, b.rows);
    assert_eq!(
        store.changes_since(0, 100).await.unwrap().changes,
        restored.changes_since(0, 100).await.unwrap().changes
    );
}

/// Migrations: adding optional fields works; dropping a field with values, narrowing a
/// type with values, or adding a required field to a non-empty table is refused and
/// nothing changes.
async fn migrations_refuse_data_loss(place: Place) {
    {
        let store = place.open().await;
        store
            .write(vec![insert("Player", json!({"name": "m", "level": 2, "rating": 2.5}))])
            .await
            .unwrap();
    }
    let with = |fields: &str| {
        format!(
            r#"{{"manifest_version":1,"name":"t","version":"2","entities":[{{"name":"Player","fields":[{fields}]}},{{"name":"Item","fields":[{{"name":"owner","type":"id(Player)"}},{{"name":"kind","type":"string"}}]}}]}}"#
        )
    };
    let base = r#"{"name":"name","type":"string","unique":true},{"name":"level","type":"int"},{"name":"banned","type":"bool","optional":true},{"name":"region","type":"string","optional":true}"#;
    let refused = [
        (with(base), "rating"),
        (with(&format!(r#"{base},{{"name":"rating","type":"int","optional":true}}"#)), "rating"),
        (
            with(&format!(
                r#"{base},{{"name":"rating","type":"float","optional":true}},{{"name":"xp","type":"int"}}"#
            )),
            "xp",
        ),
    ];
    for (json, field) in refused {
        let err = Store::open(&place.backend, manifest(&json)).await.err().expect("refused");
        assert!(err.to_string().contains(field), "{err}");
    }
    let grown = with(&format!(
        r#"{base},{{"name":"rating","type":"float","optional":true}},{{"name":"xp","type":"int","optional":true}}"#
    ));
    let store = Store::open(&place.backend, manifest(&grown)).await.unwrap();
    let rows = store.list("Player", vec![], 10, 0).await.unwrap().rows;
    assert_eq!(rows[0]["rating"], 2.5, "existing values kept");
    assert_eq!(rows[0]["xp"], Value::Null);
}

/// Postgres: sessions live beside the entities when `DATABASE_URL` is Postgres; the same
/// lifecycle as the SQLite session store (resolve, expiry, revoke, purge, and whether a
/// user has a live session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions() {
    let Some(place) = postgres_place("sessions").await else { return };
    let store = place.open().await;
    let Store::Postgres(pg) = &store else { panic!("postgres") };
    let sessions = pylon_storage::Sessions::from(
        pylon_storage::postgres::PgSessionStore::open(pg.pool().clone()).await.unwrap(),
    );
    let new = sessions.create_guest(1_000, 60).await.unwrap();
    assert_eq!(sessions.resolve(&new.token, 1_059).await.unwrap(), Some(new.session.clone()));
    assert_eq!(sessions.resolve(&new.token, 1_060).await.unwrap(), None, "expired");
    let user = new.session.user_id.clone();
    assert!(sessions.user_has_session(&user, 1_059).await.unwrap());
    assert!(!sessions.user_has_session(&user, 1_060).await.unwrap(), "expired");
    assert!(!sessions.user_has_session("guest_nobody", 1_000).await.unwrap());
    assert_eq!(sessions.resolve("nope", 1_000).await.unwrap(), None);
    let other = sessions.create_guest(1_000, 5).await.unwrap();
    assert_eq!(sessions.purge_expired(1_010).await.unwrap(), 1);
    assert_eq!(sessions.resolve(&other.token, 1_000).await.unwrap(), None);
    assert!(sessions.revoke(&new.token).await.unwrap());
    assert!(!sessions.revoke(&new.token).await.unwrap());
    assert!(!sessions.user_has_session(&user, 1_000).await.unwrap(), "revoked");
    sessions.ping().await.unwrap();
    sessions.flush().await.unwrap();
}

/// Postgres: a logical export restored into an empty schema answers every query the
/// same (rows, change log, next seq), and a non-empty target is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_export_import_is_identical() {
    let Some(from) = postgres_place("export").await else { return };
    let Some(to) = postgres_place("import").await else { return };
    let a = from.open().await;
    a.write(
        (0..10)
            .map(|i| insert("Player", json!({"name": format!("e{i}"), "level": i, "rating": 0.5})))
            .collect(),
    )
    .await
    .unwrap();
    let Store::Postgres(pg_a) = &a else { panic!("postgres") };
    let dir = Dir::new("pg-export");
    let tables = pg_a.export(&dir.0).await.unwrap();
    assert!(tables.iter().any(|t| t == "e_Player") && tables.iter().any(|t| t == "pylon_changes"));
    let b = to.open().await;
    let Store::Postgres(pg_b) = &b else { panic!("postgres") };
    pg_b.import(&dir.0).await.unwrap();
    assert_eq!(
        a.list("Player", vec![], 100, 0).await.unwrap().rows,
        b.list("Player", vec![], 100, 0).await.unwrap().rows
    );
    assert_eq!(
        a.changes_since(0, 100).await.unwrap().changes,
        b.changes_since(0, 100).await.unwrap().changes
    );
    assert_eq!(b.latest_seq().await.unwrap(), 10);
    let next = b.write(vec![insert("Player", json!({"name": "after", "level": 1}))]).await.unwrap();
    assert_eq!(next.changes[0].seq, 11, "the counter was restored too");
    assert!(pg_b.import(&dir.0).await.is_err(), "a non-empty target is refused");
}

/// Postgres: two stores on one database (as two processes would be) writing at once see
/// one order: every seq from 1 to 200 exactly once, and both read the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_processes_one_order() {
    let Some(place) = postgres_place("two_procs").await else { return };
    let (a, b) = (place.open().await, place.open().await);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .write(vec![insert("Player", json!({"name": format!("t{i}"), "level": i}))])
                .await
                .unwrap()
                .changes[0]
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let from_a = a.changes_since(0, 1000).await.unwrap().changes;
    let from_b = b.changes_since(0, 1000).await.unwrap().changes;
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.iter().map(|c| c.seq).collect::<Vec<_>>(), (1..=200).collect::<Vec<u64>>());
}
