//! The entity API end to end on the real binary: writes over HTTP arrive on the sync
//! WebSocket and the SSE stream filtered by read policy; bad input gets typed errors and
//! changes nothing; acknowledged writes survive SIGKILL; backup then restore gives the
//! same answers.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

async fn start() -> TestServer {
    TestServer::start(&[("PYLON_MANIFEST", &notes_manifest())]).await
}

/// The next JSON text frame of a sync socket.
async fn next_change(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(SECS5, ws.next())
            .await
            .expect("a change in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// A write over HTTP reaches the owner's WebSocket and SSE feeds; another user's feeds
/// see none of it (read policy), and the pull endpoint agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_feeds_filtered_by_policy() {
    let server = start().await;
    let (alice, alice_id) = server.guest().await;
    let (bob, _) = server.guest().await;

    let (mut alice_ws, _) =
        connect(&server.sync_url(""), Some(&alice), AuthPath::Subprotocol).await;
    let (mut bob_ws, _) = connect(&server.sync_url(""), Some(&bob), AuthPath::Header).await;
    let alice_sse =
        server.http.get(server.events_url("")).bearer_auth(&alice).send().await.unwrap();
    let bob_sse = server.http.get(server.events_url("")).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(alice_sse.headers()["content-type"], "text/event-stream");
    let mut alice_sse = SseEvents::new(alice_sse);
    let mut bob_sse = SseEvents::new(bob_sse);

    let created = server
        .http
        .post(server.url("/api/entities/Note"))
        .bearer_auth(&alice)
        .json(&json!({"owner": alice_id, "text": "secret plan"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // A public write everyone may read, as the marker that bob's feeds are live.
    let board = server
        .http
        .post(server.url("/api/entities/Board"))
        .bearer_auth(&bob)
        .json(&json!({"title": "lobby"}))
        .send()
        .await
        .unwrap();
    assert_eq!(board.status(), 201);

    let change = next_change(&mut alice_ws).await;
    assert_eq!(
        (change["entity"].as_str(), change["row_id"].as_str(), change["kind"].as_str()),
        (Some("Note"), Some(id.as_str()), Some("insert"))
    );
    assert_eq!(change["data"]["text"], "secret plan");
    assert!(change["seq"].as_u64().unwrap() >= 1 && change["timestamp"].is_string());
    let (sse_id, sse_change) = alice_sse.next().await;
    assert_eq!(sse_change["row_id"], id.as_str());
    assert_eq!(sse_id, change["seq"].as_u64().unwrap());

    // Bob's first visible event is the board: the note was filtered out.
    assert_eq!(next_change(&mut bob_ws).await["entity"], "Board");
    assert_eq!(bob_sse.next().await.1["entity"], "Board");

    let pulled: Value = server
        .http
        .get(server.url("/api/sync/pull?since=0"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entities: Vec<&str> = pulled["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entity"].as_str().unwrap())
        .collect();
    assert_eq!(entities, ["Board"]);
    assert_eq!(pulled["cursor"]["last_seq"], 2);
    let gone = server
        .http
        .get(server.url("/api/sync/pull?since=99"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);
    assert_eq!(gone.json::<Value>().await.unwrap()["error"]["code"], "RESYNC_REQUIRED");

    // SSE resumes after Last-Event-ID from the durable log.
    let resumed = server
        .http
        .get(server.events_url(""))
        .bearer_auth(&alice)
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    let mut resumed = SseEvents::new(resumed);
    assert_eq!(resumed.next().await.0, 2, "seq 2 (the board) follows seq 1");
}

/// Typed errors: unknown entity 404, wrong type 400 naming the field, too large 413,
/// malformed JSON 400, policy 403, and a transaction with one bad operation changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_typed_and_changes_nothing() {
    let server = TestServer::start(&[
        ("PYLON_MANIFEST", &notes_manifest()),
        ("PYLON_MAX_BODY_BYTES", "4096"),
    ])
    .await;
    let (alice, alice_id) = server.guest().await;
    let post = |path: &str, body: String| {
        server
            .http
            .post(server.url(path))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let error = |r: reqwest::Response| async move {
        (r.status().as_u16(), r.json::<Value>().await.unwrap()["error"].clone())
    };

    let (status, e) = error(post("/api/entities/Ghost", "{}".into()).await.unwrap()).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("ENTITY_NOT_FOUND")));
    let (status, e) = error(
        post("/api/entities/Note", json!({"owner": alice_id, "text": 5}).to_string())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str(), e["field"].as_str()),
        (400, Some("INVALID_FIELD"), Some("text"))
    );
    assert!(e["message"].as_str().unwrap().contains("text"));
    let (status, e) = error(post("/api/entities/Note", "x".repeat(5000)).await.unwrap()).await;
    assert_eq!((status, e["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    let (status, e) = error(post("/api/entities/Note", "{\"owner\":".into()).await.unwrap()).await;
    assert_eq!((status, e["code"].as_str()), (400, Some("INVALID_JSON")));
    let (status, e) = error(
        post("/api/entities/Note", json!({"owner": "someone-else", "text": "x"}).to_string())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (403, Some("POLICY_DENIED")));
    let (status, _) =
        error(post("/api/entities/Secret", json!({"value": "x"}).to_string()).await.unwrap()).await;
    assert_eq!(status, 403, "no policy outside dev mode: admin only");

    let tx = json!([
        {"op": "insert", "entity": "Note", "data": {"owner": alice_id, "text": "one"}},
        {"op": "insert", "entity": "Note", "data": {"owner": alice_id, "text": "two"}},
        {"op": "insert", "entity": "Note", "data": {"owner": alice_id, "stars": "many", "text": "three"}}
    ]);
    let (status, e) = error(post("/api/transact", tx.to_string()).await.unwrap()).await;
    assert_eq!(
        (status, e["code"].as_str(), e["operation"].as_u64()),
        (400, Some("INVALID_FIELD"), Some(2))
    );
    let list: Value = server
        .http
        .get(server.url("/api/entities/Note"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 0, "nothing of the failed transaction: {list}");
    let pulled: Value = server
        .http
        .get(server.url("/api/sync/pull?since=0"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pulled["changes"].as_array().unwrap().len(), 0);

    // And a good transaction commits everything, visible through CRUD and the cursor.
    let tx = json!([
        {"op": "insert", "entity": "Note", "id": "n1", "data": {"owner": alice_id, "text": "one"}},
        {"op": "insert", "entity": "Note", "id": "n2", "data": {"owner": alice_id, "text": "two"}},
        {"op": "update", "entity": "Note", "id": "n1", "data": {"stars": 5}}
    ]);
    let ok = post("/api/transact", tx.to_string()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let n1: Value = server
        .http
        .get(server.url("/api/entities/Note/n1"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(n1["stars"], 5);
    let page: Value = server
        .http
        .get(server.url("/api/entities/Note/cursor?limit=1"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (page["data"][0]["id"].as_str(), page["has_more"].as_bool(), page["next_cursor"].as_str()),
        (Some("n1"), Some(true), Some("n1"))
    );
    let del = server
        .http
        .delete(server.url("/api/entities/Note/n2"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(del.json::<Value>().await.unwrap(), json!({"deleted": true}));
    let missing = server
        .http
        .get(server.url("/api/entities/Note/n2"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// SIGKILL in the middle of a stream of acknowledged writes: after a restart every
/// acknowledged write is there, and no transaction is half applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let server = start().await;
    let (alice, alice_id) = server.guest().await;
    let url = server.url("/api/transact");
    let http = server.http.clone();
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..10_000u32 {
            // Two rows per transaction: both or neither may exist after the crash.
            let tx = json!([
                {"op": "insert", "entity": "Note", "id": format!("a{i}"), "data": {"owner": alice_id, "text": "a"}},
                {"op": "insert", "entity": "Note", "id": format!("b{i}"), "data": {"owner": alice_id, "text": "b"}}
            ]);
            match http.post(&url).bearer_auth(&alice).json(&tx).send().await {
                Ok(r) if r.status() == 200 => acked.push(i),
                _ => break,
            }
        }
        acked
    });
    // Let a few hundred writes land, then kill.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = server.metrics().await;
        if metric(&m, "pylon_http_requests_total{route=\"/api/transact\",status=\"200\"}") >= 300.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data = server.sigkill();
    let acked = writer.await.unwrap();
    assert!(acked.len() >= 300);

    let server = TestServer::start_in(data, &[("PYLON_MANIFEST", &notes_manifest())]).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let q = after.as_ref().map_or("limit=1000".to_owned(), |a| format!("limit=1000&after={a}"));
        let page: Value = server
            .http
            .get(server.url(&format!("/api/entities/Note/cursor?{q}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for row in page["data"].as_array().unwrap() {
            ids.insert(row["id"].as_str().unwrap().to_owned());
        }
        if page["has_more"] != true {
            break;
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
    }
    for i in &acked {
        assert!(
            ids.contains(&format!("a{i}")) && ids.contains(&format!("b{i}")),
            "acknowledged write {i} lost"
        );
    }
    let a = ids.iter().filter(|id| id.starts_with('a')).count();
    let b = ids.iter().filter(|id| id.starts_with('b')).count();
    assert_eq!(a, b, "no half transaction");
    assert!(a == acked.len() || a == acked.len() + 1, "at most the one in flight extra");
}
