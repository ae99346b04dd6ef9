//! Entity store throughput at 64 concurrent callers: single-row inserts (each its own
//! durable commit; SQLite groups them, Postgres serializes on the change-log counter) and
//! reads by id, on an SQLite file and on the local Postgres (skipped when unreachable).
//! One iteration = 64 concurrent operations; criterion reports operations per second.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benches fail loudly")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pylon_storage::{Backend, ChangeKind, Manifest, Store, WriteOp};
use serde_json::json;

const CONCURRENCY: usize = 64;
const MANIFEST: &str = r#"{"manifest_version":1,"name":"bench","version":"1","entities":[
  {"name":"Player","fields":[{"name":"name","type":"string"},{"name":"level","type":"int"},{"name":"xp","type":"float"}]}]}"#;

fn insert(i: u64) -> WriteOp {
    let data =
        json!({"name": format!("p{i}"), "level": i % 100, "xp": 1.5}).as_object().cloned().unwrap();
    WriteOp { kind: ChangeKind::Insert, entity: "Player".into(), id: None, data, guard: None }
}

fn bench_store(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &Store) {
    let mut group = c.benchmark_group(format!("entities/{name}"));
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    group.bench_function("insert_x64", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..CONCURRENCY)
                        .map(|_| {
                            let store = store.clone();
                            let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::spawn(async move { store.write(vec![insert(i)]).await.unwrap() })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            })
        });
    });
    let ids: Vec<String> = rt.block_on(async {
        let res = store.write((0..1000).map(|i| insert(1_000_000 + i)).collect()).await.unwrap();
        res.ids
    });
    let ids = Arc::new(ids);
    group.bench_function("get_by_id_x64", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for n in 0..iters {
                    let tasks: Vec<_> = (0..CONCURRENCY)
                        .map(|k| {
                            let (store, ids) = (store.clone(), Arc::clone(&ids));
                            let id = ids[(n as usize * CONCURRENCY + k) % ids.len()].clone();
                            tokio::spawn(async move { store.get("Player", &id).await.unwrap() })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn entities(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let manifest = Arc::new(Manifest::parse(MANIFEST).unwrap().0);
    let dir = std::env::temp_dir().join(format!("pylon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sqlite = rt
        .block_on(Store::open(&Backend::Sqlite(dir.join("bench.db")), Arc::clone(&manifest)))
        .unwrap();
    bench_store(c, &rt, "sqlite", &sqlite);
    drop(sqlite);
    let _ = std::fs::remove_dir_all(&dir);

    let url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    let schema = format!("pylon_bench_{}", std::process::id());
    let pg = rt.block_on(async {
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            Store::open(&Backend::Postgres { url, schema: Some(schema) }, manifest),
        )
        .await;
        opened.ok().and_then(Result::ok)
    });
    match pg {
        Some(pg) => bench_store(c, &rt, "postgres", &pg),
        None => eprintln!("SKIPPED: entities/postgres needs postgres at 127.0.0.1:5432"),
    }
}

criterion_group!(benches, entities);
criterion_main!(benches);
