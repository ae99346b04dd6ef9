//! A game system that panics stops its match with close 1011 on every subscriber's
//! socket, while another match on the same server keeps ticking. In-process server (the
//! binary only registers the built-in games, which do not panic), real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use bevy_ecs::prelude::*;
use futures_util::{SinkExt, StreamExt};
use pylon_api::{ApiConfig, Listeners, Matches, Server};
use pylon_shard::{Game, GameRegistry, JoinRejected, Subscriber};
use pylon_storage::SqliteSessionStore;
use pylon_tick::{MonotonicClock, TickConfig, TickPool};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ADMIN: &str = "panic-test-admin-token-0123";

/// Ticks at 20 Hz; an input of `true` makes its system panic.
struct Bomb;

#[derive(Resource, Default)]
struct Armed(bool);

fn explode(armed: Res<Armed>) {
    assert!(!armed.0, "boom");
}

impl Game for Bomb {
    type Params = ();
    type Input = bool;
    type Snapshot = u32;
    type Outcome = ();
    const NAME: &'static str = "bomb";

    fn tick_rate_hz(_: &()) -> u32 {
        20
    }
    fn setup(_: &(), world: &mut World, schedule: &mut Schedule) {
        world.init_resource::<Armed>();
        schedule.add_systems(explode);
    }
    fn handle_join(_: &mut World, _: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        Ok(None)
    }
    fn apply_input(world: &mut World, _: &Subscriber, arm: bool) {
        world.resource_mut::<Armed>().0 = arm;
    }
    fn snapshot(_: &mut World) -> u32 {
        7
    }
    fn outcome(_: &mut World) -> Option<()> {
        None
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr, shard: &str) -> Ws {
    let mut req = format!("ws://{addr}/?shard={shard}&sid=p1").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next close frame's code, skipping data frames, within 5 s.
async fn close_code(ws: &mut Ws) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Close(Some(frame)) = msg {
            return (frame.code.into(), frame.reason.to_string());
        }
    }
}

async fn next_binary(ws: &mut Ws) -> bytes::Bytes {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Binary(b) = msg {
            return b;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_game_closes_its_sockets_with_1011() {
    let pool = TickPool::start(
        &TickConfig { threads: 1, ..TickConfig::default() },
        Arc::new(MonotonicClock::new()),
    )
    .unwrap();
    let mut games = GameRegistry::builtin();
    games.register::<Bomb>();
    let matches = Matches::new(pool, games, "local".into());
    let config = ApiConfig { admin_token: Some(ADMIN.into()), ..ApiConfig::default() };
    let server =
        Server::new(config, matches, SqliteSessionStore::in_memory().unwrap().into(), "test");
    let state = server.state().clone();
    state.matches.create("bomb", serde_json::Value::Null, Some("bomb-1"), Some(1), false).unwrap();
    state.matches.create("bomb", serde_json::Value::Null, Some("calm-1"), Some(2), false).unwrap();

    let listeners = Listeners {
        main: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        shard: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        sync: None,
        events: None,
    };
    let addr = listeners.shard.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(
        listeners,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));

    let mut bomb = connect(addr, "bomb-1").await;
    let mut calm = connect(addr, "calm-1").await;
    assert_eq!(&next_binary(&mut bomb).await[8..], b"7");
    bomb.send(Message::text("{\"input\":true,\"client_seq\":1}")).await.unwrap();
    let (code, reason) = close_code(&mut bomb).await;
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("game error"), "{reason}");

    // The other match on the same tick thread goes on.
    let first = next_binary(&mut calm).await;
    let second = next_binary(&mut calm).await;
    let tick = |b: &bytes::Bytes| u64::from_be_bytes(b[..8].try_into().unwrap());
    assert!(tick(&second) > tick(&first));
    assert_eq!(state.matches.get("bomb-1").unwrap().info().state, "panicked");

    let _ = stop_tx.send(());
    let (code, _) = close_code(&mut calm).await;
    assert_eq!(code, 1001, "shutdown closes the survivors with 1001");
    running.await.unwrap();
}
