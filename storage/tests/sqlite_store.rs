//! The SQLite entity store on real files: CRUD and validation, unique conflicts,
//! all-or-nothing batches, keyset cursors, filters, the durable dense change log,
//! group commit under concurrency, backups, and migrations that refuse to lose data.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use std::sync::Arc;

use pylon_storage::entity::{EntityError, Row};
use pylon_storage::{ChangeKind, Manifest, SqliteOptions, SqliteStore, WriteOp};
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

fn open(dir: &Dir) -> SqliteStore {
    SqliteStore::open(&dir.db(), manifest(MANIFEST), &SqliteOptions::default()).unwrap()
}

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

/// Insert, read back with types intact, update, delete; each write is one change event.
#[tokio::test]
async fn crud_round_trip() {
    let dir = Dir::new("crud");
    let store = open(&dir);
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
#[tokio::test]
async fn validation_names_the_field() {
    let dir = Dir::new("validation");
    let store = open(&dir);
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
#[tokio::test]
async fn batches_are_all_or_nothing() {
    let dir = Dir::new("batch");
    let store = open(&dir);
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

/// A guard that says no aborts the write with PolicyDenied.
#[tokio::test]
async fn guards_deny_inside_the_transaction() {
    let dir = Dir::new("guard");
    let store = open(&dir);
    let mut op = insert("Player", json!({"name": "eve", "level": 1}));
    op.guard = Some(Arc::new(|r: &Row| r["name"] != "eve"));
    let err = store.write(vec![op]).await.unwrap_err();
    assert!(matches!(err.error, EntityError::PolicyDenied { .. }));
    assert_eq!(store.list("Player", vec![], 10, 0).await.unwrap().count, 0);
}

/// Keyset pagination visits every row once, in id order; filters need an index.
#[tokio::test]
async fn cursor_and_filters() {
    let dir = Dir::new("cursor");
    let store = open(&dir);
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

/// 200 concurrent writers: every one committed, seqs dense 1..=200, and the log and rows
/// survive closing and reopening the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_and_durable_dense_log() {
    let dir = Dir::new("group");
    {
        let store = open(&dir);
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
    let store = open(&dir);
    assert_eq!(store.latest_seq().await.unwrap(), 200);
    assert_eq!(store.list("Player", vec![], 1, 0).await.unwrap().count, 200);
    let page = store.changes_since(150, 1000).await.unwrap();
    assert_eq!(page.changes.len(), 50);
    assert_eq!(page.last_seq, 200);
    assert!(matches!(store.changes_since(201, 10).await, Err(EntityError::ResyncRequired { .. })));
}

/// An online backup is a consistent copy with identical query results.
#[tokio::test]
async fn backup_copy_is_identical() {
    let dir = Dir::new("backup");
    let store = open(&dir);
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
#[tokio::test]
async fn migrations_refuse_data_loss() {
    let dir = Dir::new("migrate");
    {
        let store = open(&dir);
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
        let err = SqliteStore::open(&dir.db(), manifest(&json), &SqliteOptions::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains(field), "{err}");
    }
    let grown = with(&format!(
        r#"{base},{{"name":"rating","type":"float","optional":true}},{{"name":"xp","type":"int","optional":true}}"#
    ));
    let store = SqliteStore::open(&dir.db(), manifest(&grown), &SqliteOptions::default()).unwrap();
    let rows = store.list("Player", vec![], 10, 0).await.unwrap().rows;
    assert_eq!(rows[0]["rating"], 2.5, "existing values kept");
    assert_eq!(rows[0]["xp"], Value::Null);
}
