//! Matches and storage together: a running match survives a restart of the server (saved
//! at shutdown, resumed at start, its player reconnects and continues); a finished match
//! writes its `MatchResult` row (visible through the entity API and the change feed) and
//! its replay log, which re-simulates.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

fn example_manifest() -> String {
    format!("{}/examples/pylon.manifest.json", env!("CARGO_MANIFEST_DIR"))
}

fn player<'a>(snapshot: &'a Value, id: &str) -> Option<&'a Value> {
    snapshot["players"].as_array()?.iter().find(|p| p["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_match_survives_a_restart() {
    let mut server = TestServer::start(&[]).await;
    let (token, user) = server.guest().await;
    let id = server.create(&token, "arena", json!({"score_limit": 100000, "speed": 50})).await;
    let url = server.shard_url(&format!("shard={id}"));
    let (mut ws, _) = connect(&url, Some(&token), AuthPath::Header).await;
    let Seen::Snapshot(_, first) = next(&mut ws, SECS5).await else { panic!("snapshot") };
    let x0 = player(&first, &user).unwrap()["x"].as_f64().unwrap();
    let dx = if x0 < 500.0 { 1.0 } else { -1.0 };
    send_input(&mut ws, json!({"dx": dx, "dy": 0}), 1).await;
    let deadline = Instant::now() + SECS5;
    let (tick_before, x_before) = loop {
        assert!(Instant::now() < deadline, "ack never came");
        if let Seen::Snapshot(tick, snap) = next(&mut ws, SECS5).await
            && snap["ack"] == 1
        {
            break (tick, player(&snap, &user).unwrap()["x"].as_f64().unwrap());
        }
    };

    server.sigterm();
    assert_eq!(close_of(&mut ws, SECS5).await.0, 1001);
    assert_eq!(server.wait_exit(Duration::from_secs(35)).code(), Some(0));
    let data = server.data.take().unwrap();
    drop(server);

    let server = TestServer::start_in(data, &[]).await;
    let info: Value = server
        .http
        .get(server.url(&format!("/api/shards/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["running"], true, "{info}");
    assert!(info["tick"].as_u64().unwrap() >= tick_before, "resumed from its saved tick: {info}");
    // The same player (its session survived too) reconnects and finds itself further on.
    let (mut ws, _) =
        connect(&server.shard_url(&format!("shard={id}")), Some(&token), AuthPath::Header).await;
    let Seen::Snapshot(tick, snap) = next(&mut ws, SECS5).await else { panic!("snapshot") };
    assert!(tick > tick_before);
    let players = snap["players"].as_array().unwrap();
    assert_eq!(players.len(), 1, "no second player was made: {snap}");
    let x = player(&snap, &user).unwrap()["x"].as_f64().unwrap();
    assert!((x - x_before) * dx >= 0.0, "kept moving the same way: {x_before} -> {x}");
    assert!((x - x0).abs() > 1.0, "not a fresh spawn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_match_writes_result_and_replay() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &example_manifest())]).await;
    let (mut feed, _) = connect(&server.sync_url(""), Some(ADMIN), AuthPath::Header).await;
    let created = server
        .http
        .post(server.url("/api/shards"))
        .bearer_auth(ADMIN)
        .json(&json!({"game": "arena", "params": {"time_limit_secs": 1}, "seed": 42, "record_replay": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let (mut ws, _) =
        connect(&server.shard_url(&format!("shard={id}&sid=p1")), Some(ADMIN), AuthPath::Header)
            .await;
    send_input(&mut ws, json!({"dx": 1, "dy": 1}), 1).await;
    assert_eq!(close_of(&mut ws, SECS5).await.0, 1000, "the match finished");

    // The result row, through the change feed and the entity API.
    let change = loop {
        let Seen::Other(tokio_tungstenite::tungstenite::Message::Text(t)) =
            next(&mut feed, SECS5).await
        else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["entity"] == "MatchResult" {
            break v;
        }
    };
    assert_eq!(change["row_id"], id.as_str());
    let row: Value = server
        .http
        .get(server.url(&format!("/api/entities/MatchResult/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((row["matchId"].as_str(), row["game"].as_str()), (Some(id.as_str()), Some("arena")));
    assert!((row["durationSecs"].as_f64().unwrap() - 1.0).abs() < 0.1, "{row}");
    let scores: Value = serde_json::from_str(row["scores"].as_str().unwrap()).unwrap();
    assert_eq!(scores["reason"], "time_limit");

    // The replay log downloads and re-simulates to the end.
    let deadline = Instant::now() + SECS5;
    let log = loop {
        let r =
            server.http.get(server.url(&format!("/api/shards/{id}/replay"))).send().await.unwrap();
        if r.status() == 200 {
            break r.json::<pylon_shard::replay::ReplayLog>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no replay stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut ticks = 0u64;
    pylon_shard::GameRegistry::builtin().replay(&log, &mut |_, _| ticks += 1).unwrap();
    assert_eq!(ticks, 20, "one second at 20 Hz");
    let missing =
        server.http.get(server.url("/api/shards/local-none/replay")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
