//! Finding a match without the matchmaker or an admin token: listed games' matches are
//! visible to every session (public fields only), join-or-create fills them, and the
//! matches of a game that does not list itself stay hidden.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

async fn join_or_create(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    let res = server
        .http
        .post(server.url("/api/shards/join-or-create"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn listed(server: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let res = server
        .http
        .get(server.url(&format!("/api/shards?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Vec<Value>>().await.unwrap()
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().filter_map(|m| m["id"].as_str()).collect()
}

/// A session finds a joinable arena match through the listing and joins it with
/// join-or-create; once full it is no longer joinable and the next caller gets a new
/// match. A session sees public fields only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_find_and_join_listed_matches() {
    let server = TestServer::start(&[]).await;
    let (a, a_id) = server.guest().await;
    let (b, b_id) = server.guest().await;
    let two = json!({"game": "arena", "params": {"max_players": 2}});
    let (status, first) = join_or_create(&server, &a, two.clone()).await;
    assert_eq!((status, first["created"].as_bool()), (201, Some(true)), "{first}");
    let id = first["id"].as_str().unwrap().to_owned();

    let open = listed(&server, &b, "game=arena&joinable=true").await;
    assert_eq!(ids(&open), [id.as_str()]);
    assert!(open[0].get("input_queue").is_none(), "public fields only: {}", open[0]);
    assert_eq!(open[0]["capacity"], 2);
    let (status, joined) = join_or_create(&server, &b, two.clone()).await;
    assert_eq!((status, joined["id"].as_str()), (200, Some(id.as_str())), "{joined}");

    let (mut ws_a, _) =
        connect(&server.shard_url(&format!("shard={id}&sid={a_id}")), Some(&a), AuthPath::Header)
            .await;
    let (mut ws_b, _) =
        connect(&server.shard_url(&format!("shard={id}&sid={b_id}")), Some(&b), AuthPath::Header)
            .await;
    assert!(matches!(next(&mut ws_a, SECS5).await, Seen::Snapshot(..)));
    assert!(matches!(next(&mut ws_b, SECS5).await, Seen::Snapshot(..)));
    let deadline = std::time::Instant::now() + SECS5;
    while ids(&listed(&server, &b, "game=arena&joinable=true").await).contains(&id.as_str()) {
        assert!(std::time::Instant::now() < deadline, "a full match is still listed as joinable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ids(&listed(&server, &b, "game=arena").await).contains(&id.as_str()), "still listed");
    let (c, _) = server.guest().await;
    let (status, other) = join_or_create(&server, &c, two).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["id"].as_str(), Some(id.as_str()));
}

/// A game that does not list itself (tictactoe) keeps its matches hidden from sessions
/// and refuses join-or-create; the admin token still sees every match in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_of_unlisted_games_stay_hidden() {
    let server = TestServer::start(&[]).await;
    let hidden = server.create(ADMIN, "tictactoe", json!({})).await;
    let (token, _) = server.guest().await;
    assert!(!ids(&listed(&server, &token, "").await).contains(&hidden.as_str()));
    assert!(listed(&server, &token, "game=tictactoe").await.is_empty());
    let (status, body) = join_or_create(&server, &token, json!({"game": "tictactoe"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("GAME_NOT_LISTED")), "{body}");
    let all = listed(&server, ADMIN, "").await;
    let found = all.iter().find(|m| m["id"] == hidden.as_str()).expect("admin sees it");
    assert!(found.get("input_queue").is_some(), "admin gets full info");
}
