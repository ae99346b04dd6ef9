//! Data access end to end: writes are checked on the row as it is and as it will be,
//! hidden rows are neither counted nor told apart from missing ones, and a subscriber who
//! loses sight of a row learns it is gone. The first tests replay the reported takeover
//! against the example manifest `pylon dev` ships.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

fn example_manifest() -> String {
    format!("{}/examples/pylon.manifest.json", env!("CARGO_MANIFEST_DIR"))
}

fn docs_manifest() -> String {
    format!("{}/tests/it/fixtures/docs.manifest.json", env!("CARGO_MANIFEST_DIR"))
}

/// One JSON request: (status, body).
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server.http.request(method, server.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn created(server: &TestServer, entity: &str, token: &str, data: Value) -> String {
    let (status, body) =
        call(server, Method::POST, &format!("/api/entities/{entity}"), token, Some(data)).await;
    assert_eq!(status, 201, "{entity}: {body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A victim's player, profile and inventory item, created with the victim's own session.
struct Victim {
    token: String,
    profile: String,
    item: String,
}

async fn victim(server: &TestServer) -> Victim {
    let (token, user) = server.guest().await;
    let player = json!({"id": user, "displayName": format!("v-{user}"), "createdAt": "2026-01-01T00:00:00Z", "level": 1, "xp": 0});
    created(server, "Player", &token, player).await;
    let profile = created(server, "Profile", &token, json!({"player": user, "bio": "mine"})).await;
    let item = json!({"owner": user, "itemType": "sword", "quantity": 1, "equipped": false});
    let item = created(server, "InventoryItem", &token, item).await;
    Victim { token, profile, item }
}

/// The takeover by PATCH is refused and changes nothing: a public row (Profile) answers
/// 403 with a hint naming the rule, a private one (InventoryItem) answers 404 as if it
/// did not exist; the same patch without the owner field is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_takeover_by_patch_is_refused_and_the_row_is_unchanged() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &example_manifest())]).await;
    let v = victim(&server).await;
    let (eve, eve_id) = server.guest().await;

    let path = format!("/api/entities/Profile/{}", v.profile);
    let (status, body) =
        call(&server, Method::PATCH, &path, &eve, Some(json!({"player": eve_id}))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "POLICY_DENIED");
    let hint = body["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("auth.userId == data.player"), "the hint names the rule: {hint}");
    let (status, _) =
        call(&server, Method::PATCH, &path, &eve, Some(json!({"bio": "pwned"}))).await;
    assert_eq!(status, 403);
    let (_, profile) = call(&server, Method::GET, &path, &eve, None).await;
    assert_eq!(profile["bio"], "mine");
    assert_ne!(profile["player"], eve_id.as_str());

    let path = format!("/api/entities/InventoryItem/{}", v.item);
    let (status, body) =
        call(&server, Method::PATCH, &path, &eve, Some(json!({"owner": eve_id}))).await;
    assert_eq!(status, 404, "a hidden row answers like a missing one: {body}");
    let (status, _) = call(&server, Method::DELETE, &path, &eve, None).await;
    assert_eq!(status, 404);
    let (status, item) = call(&server, Method::GET, &path, &v.token, None).await;
    assert_eq!(status, 200);
    assert_ne!(item["owner"], eve_id.as_str(), "the victim still owns the item");
}

/// The takeover inside one transaction (`update X owner=me`, then `delete X`) is refused
/// at its first step and nothing in it commits; a transaction whose only refused step is
/// a later delete commits nothing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_step_inside_a_transaction_commits_nothing() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &example_manifest())]).await;
    let v = victim(&server).await;
    let (eve, eve_id) = server.guest().await;
    let ops = json!([
        {"op": "update", "entity": "Profile", "id": v.profile, "data": {"player": eve_id}},
        {"op": "delete", "entity": "Profile", "id": v.profile},
    ]);
    let (status, body) = call(&server, Method::POST, "/api/transact", &eve, Some(ops)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["operation"], 0);

    let eve_player = json!({"id": eve_id, "displayName": "eve", "createdAt": "2026-01-01T00:00:00Z", "level": 1, "xp": 0});
    let ops = json!([
        {"op": "insert", "entity": "Player", "data": eve_player},
        {"op": "delete", "entity": "Profile", "id": v.profile},
    ]);
    let (status, body) = call(&server, Method::POST, "/api/transact", &eve, Some(ops)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["operation"], 1);
    let (status, _) =
        call(&server, Method::GET, &format!("/api/entities/Player/{eve_id}"), &eve, None).await;
    assert_eq!(status, 404, "the allowed insert before the refused delete did not commit");
    let path = format!("/api/entities/Profile/{}", v.profile);
    let (status, profile) = call(&server, Method::GET, &path, &v.token, None).await;
    assert_eq!((status, profile["bio"].as_str()), (200, Some("mine")));
}

/// A rule with `old.`: the owner may edit their doc but not hand it to someone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_fields_limit_what_an_update_may_change() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &docs_manifest())]).await;
    let (ada, ada_id) = server.guest().await;
    let (_, bob_id) = server.guest().await;
    let doc = json!({"owner": ada_id, "public": true, "text": "v1"});
    let id = created(&server, "Doc", &ada, doc).await;
    let path = format!("/api/entities/Doc/{id}");
    let (status, _) = call(&server, Method::PATCH, &path, &ada, Some(json!({"text": "v2"}))).await;
    assert_eq!(status, 200);
    let (status, body) =
        call(&server, Method::PATCH, &path, &ada, Some(json!({"owner": bob_id}))).await;
    assert_eq!(status, 403, "{body}");
    let (_, doc) = call(&server, Method::GET, &path, &ada, None).await;
    assert_eq!((doc["owner"].as_str(), doc["text"].as_str()), (Some(ada_id.as_str()), Some("v2")));
}

/// Lists count only what the caller may read (both when the rule becomes an indexed
/// filter and when each row must be checked), and a hidden row reads as 404 exactly like
/// a missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_rows_are_not_counted_and_read_as_404() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &example_manifest())]).await;
    let a = victim(&server).await;
    let (bob, bob_id) = server.guest().await;
    let item = json!({"owner": bob_id, "itemType": "shield", "quantity": 1, "equipped": true});
    created(&server, "InventoryItem", &bob, item).await;
    let (_, page) = call(&server, Method::GET, "/api/entities/InventoryItem", &bob, None).await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (_, page) = call(&server, Method::GET, "/api/entities/InventoryItem", &a.token, None).await;
    assert_eq!(page["count"], 1, "{page}");
    let (_, admin_page) =
        call(&server, Method::GET, "/api/entities/InventoryItem", ADMIN, None).await;
    assert_eq!(admin_page["count"], 2);

    let hidden =
        call(&server, Method::GET, &format!("/api/entities/InventoryItem/{}", a.item), &bob, None)
            .await;
    let missing =
        call(&server, Method::GET, "/api/entities/InventoryItem/no-such-id", &bob, None).await;
    assert_eq!(hidden.0, 404);
    assert_eq!(hidden.1["error"]["code"], missing.1["error"]["code"]);

    // Per-row checks: public docs and one's own.
    let server = TestServer::start(&[("PYLON_MANIFEST", &docs_manifest())]).await;
    let (ada, ada_id) = server.guest().await;
    let (bob, bob_id) = server.guest().await;
    for (token, owner, public) in [
        (&ada, &ada_id, true),
        (&ada, &ada_id, false),
        (&ada, &ada_id, false),
        (&bob, &bob_id, false),
    ] {
        created(&server, "Doc", token, json!({"owner": owner, "public": public, "text": "t"}))
            .await;
    }
    let (_, page) = call(&server, Method::GET, "/api/entities/Doc?limit=1", &bob, None).await;
    assert_eq!(page["count"], 2, "bob sees ada's public doc and his own: {page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (_, page) = call(&server, Method::GET, "/api/entities/Doc", &ada, None).await;
    assert_eq!(page["count"], 3);
    let (_, cursor) =
        call(&server, Method::GET, "/api/entities/Doc/cursor?limit=10", &bob, None).await;
    assert_eq!(cursor["data"].as_array().unwrap().len(), 2);
}

async fn next_text(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a change in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// When a row moves out of a subscriber's view, the subscriber receives its delete (no
/// data); the new owner receives the update; a stranger receives nothing, and neither
/// does the pull of a stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_who_loses_sight_of_a_row_gets_a_delete() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &docs_manifest())]).await;
    let (ada, ada_id) = server.guest().await;
    let (bob, bob_id) = server.guest().await;
    let (carol, _) = server.guest().await;
    let id =
        created(&server, "Doc", &ada, json!({"owner": ada_id, "public": false, "text": "t"})).await;
    let since =
        call(&server, Method::GET, "/api/sync/pull", ADMIN, None).await.1["cursor"]["last_seq"]
            .as_u64()
            .unwrap();
    let query = format!("since={since}");
    let (mut ada_ws, _) = connect(&server.sync_url(&query), Some(&ada), AuthPath::Header).await;
    let (mut bob_ws, _) = connect(&server.sync_url(&query), Some(&bob), AuthPath::Header).await;
    let (mut carol_ws, _) = connect(&server.sync_url(&query), Some(&carol), AuthPath::Header).await;

    let path = format!("/api/entities/Doc/{id}");
    let (status, _) =
        call(&server, Method::PATCH, &path, ADMIN, Some(json!({"owner": bob_id}))).await;
    assert_eq!(status, 200);
    created(&server, "Marker", ADMIN, json!({"n": 1})).await;

    let gone = next_text(&mut ada_ws).await;
    assert_eq!(
        (gone["kind"].as_str(), gone["row_id"].as_str()),
        (Some("delete"), Some(id.as_str()))
    );
    assert!(gone.get("data").is_none(), "a delete carries no data: {gone}");
    let moved = next_text(&mut bob_ws).await;
    assert_eq!(
        (moved["kind"].as_str(), moved["data"]["owner"].as_str()),
        (Some("update"), Some(bob_id.as_str()))
    );
    let first = next_text(&mut carol_ws).await;
    assert_eq!(first["entity"], "Marker", "carol saw nothing of the doc: {first}");
    let pulled =
        call(&server, Method::GET, &format!("/api/sync/pull?{query}"), &carol, None).await.1;
    let entities: Vec<&str> =
        pulled["changes"].as_array().unwrap().iter().filter_map(|c| c["entity"].as_str()).collect();
    assert_eq!(entities, ["Marker"]);
    let pulled = call(&server, Method::GET, &format!("/api/sync/pull?{query}"), &ada, None).await.1;
    assert_eq!(pulled["changes"][0]["kind"], "delete");
}
