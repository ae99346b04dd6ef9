//! Test harness: starts the real `pylon` binary on free loopback ports and gives tests
//! HTTP helpers, WebSocket clients (tokio-tungstenite) and a raw WebSocket client that
//! can stay silent or stop reading (what tungstenite clients cannot do: they answer
//! pings whenever they read).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pylon_shard::codec::{FrameType, WireMode, decode_server_frame, encode_client_frame};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

pub const ADMIN: &str = "integration-admin-token-0123456789";

/// Tests that assert timing (every tick delivered) run alone: they hold this for writing,
/// every other server test holds it for reading. On a 2-core machine a dozen servers
/// started in parallel would otherwise starve the very clients whose timing is measured.
static GATE: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum Gate {
    Shared(
        #[allow(dead_code, reason = "held for its drop")] std::sync::RwLockReadGuard<'static, ()>,
    ),
    Alone(
        #[allow(dead_code, reason = "held for its drop")] std::sync::RwLockWriteGuard<'static, ()>,
    ),
}

/// How to start a server process.
struct Launch<'a> {
    command: &'a str,
    fd_limit: Option<u32>,
    /// A port chosen beforehand (one attempt), or `None` to pick free ones.
    port: Option<u16>,
}

/// A server process until it answers `/health`: killed if dropped before (a test that
/// panics while another server starts leaves no process behind).
struct Starting(Option<Child>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running server process; killed when dropped.
pub struct TestServer {
    child: Child,
    _gate: Gate,
    /// Its data directory (entity database), removed on drop unless taken.
    pub data: Option<TempDir>,
    /// The HTTP port (shard sockets on `port + 3`).
    pub port: u16,
    pub http: reqwest::Client,
}

/// A port p with p+1, p+2 and p+3 free as well (the server binds all four).
pub fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port > 65_000 {
            continue;
        }
        if (1..=3).all(|k| TcpListener::bind(("127.0.0.1", port + k)).is_ok()) {
            return port;
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pylon-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The notes fixture manifest (policies by owner).
pub fn notes_manifest() -> String {
    format!("{}/tests/it/fixtures/notes.manifest.json", env!("CARGO_MANIFEST_DIR"))
}

impl TestServer {
    /// Starts `pylon serve` with the admin token, an in-memory session store, a fresh
    /// data directory and `env`.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_in(TempDir::new("server"), env).await
    }

    /// Starts `pylon serve` on the data directory `data` (restarts reuse it).
    pub async fn start_in(data: TempDir, env: &[(&str, &str)]) -> Self {
        let gate = Gate::Shared(GATE.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self::launch(data, env, gate).await
    }

    /// Starts `pylon dev` (dev defaults: the bundled example manifest) on `data`.
    pub async fn start_dev_in(data: TempDir, env: &[(&str, &str)]) -> Self {
        let gate = Gate::Shared(GATE.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self::launch_limited("dev", data, env, gate, None).await
    }

    /// Starts a server while no other test's server runs (timing assertions).
    pub async fn start_alone(env: &[(&str, &str)]) -> Self {
        let gate = Gate::Alone(GATE.write().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self::launch(TempDir::new("alone"), env, gate).await
    }

    /// Starts a server whose process may open at most `fds` file descriptors (`ulimit -n`),
    /// to run it out of them.
    pub async fn start_with_fd_limit(fds: u32, env: &[(&str, &str)]) -> Self {
        let gate = Gate::Shared(GATE.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self::launch_limited("serve", TempDir::new("fds"), env, gate, Some(fds)).await
    }

    async fn launch(data: TempDir, env: &[(&str, &str)], gate: Gate) -> Self {
        Self::launch_limited("serve", data, env, gate, None).await
    }

    /// Starts `pylon serve` on `port` (chosen beforehand with [`free_port_pair`], so that
    /// other servers' environment can name it: regions, a fleet), one attempt.
    pub async fn start_at(port: u16, env: &[(&str, &str)]) -> Self {
        let gate = Gate::Shared(GATE.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        let launch = Launch { command: "serve", fd_limit: None, port: Some(port) };
        Self::launch_with(launch, TempDir::new("at"), env, gate).await
    }

    async fn launch_limited(
        command: &str,
        data: TempDir,
        env: &[(&str, &str)],
        gate: Gate,
        fd_limit: Option<u32>,
    ) -> Self {
        Self::launch_with(Launch { command, fd_limit, port: None }, data, env, gate).await
    }

    async fn launch_with(
        launch: Launch<'_>,
        data: TempDir,
        env: &[(&str, &str)],
        gate: Gate,
    ) -> Self {
        let Launch { command, fd_limit, port: fixed } = launch;
        let db = data.0.join("pylon.db");
        for _attempt in 0..if fixed.is_some() { 1 } else { 5 } {
            let port = fixed.unwrap_or_else(free_port_pair);
            let mut cmd = match fd_limit {
                // `exec`: the server keeps the shell's pid, so kill and wait reach it.
                Some(n) => {
                    let mut sh = Command::new("sh");
                    sh.arg("-c")
                        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                        .arg(env!("CARGO_BIN_EXE_pylon"));
                    sh
                }
                None => Command::new(env!("CARGO_BIN_EXE_pylon")),
            };
            for (key, _) in std::env::vars() {
                if key.starts_with("PYLON_") || key == "DATABASE_URL" {
                    cmd.env_remove(key);
                }
            }
            cmd.arg(command)
                .env("PYLON_ADMIN_TOKEN", ADMIN)
                .env("PYLON_HOST", "127.0.0.1")
                .env("PYLON_PORT", port.to_string())
                .env("PYLON_SESSION_DB", data.0.join("sessions.db"))
                .env("PYLON_DB_PATH", &db)
                .env("PYLON_TICK_THREADS", "2")
                .env("PYLON_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut starting = Starting(Some(cmd.spawn().expect("pylon starts")));
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(child) = starting.0.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    break; // port raced away (or the start failed): try another
                }
                let health = http.get(format!("http://127.0.0.1:{port}/health")).send().await;
                if health.is_ok_and(|r| r.status() == 200)
                    && let Some(child) = starting.0.take()
                {
                    return Self { child, _gate: gate, data: Some(data), port, http };
                }
                assert!(Instant::now() < deadline, "server did not become healthy in 30 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("could not start the server (it exited before answering /health)");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `ws://127.0.0.1:<port+3>/?<query>`.
    pub fn shard_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/?{query}", self.port + 3)
    }

    pub fn shard_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + 3))
    }

    /// A guest session: (token, user id). Sent with the admin token, as load tools do, so
    /// tests that sign in many guests are not refused by the per-address guest limit
    /// (`limits.rs` tests that limit with plain requests).
    pub async fn guest(&self) -> (String, String) {
        let reply = self.post_json("/api/auth/guest", ADMIN, &json!({})).await.1;
        (reply["token"].as_str().unwrap().to_owned(), reply["user_id"].as_str().unwrap().to_owned())
    }

    /// `GET path` with `token`: the JSON answer (panics on anything but JSON).
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let res = self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        res.json().await.unwrap()
    }

    /// `POST path` with `token` and a JSON body: (status, JSON answer or null).
    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let res =
            self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a match of `game` with `params` as `token`; returns its id.
    pub async fn create(&self, token: &str, game: &str, params: Value) -> String {
        let response = self
            .http
            .post(self.url("/api/shards"))
            .bearer_auth(token)
            .json(&json!({ "game": game, "params": params }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "create {game}");
        let info: Value = response.json().await.unwrap();
        info["id"].as_str().unwrap().to_owned()
    }

    pub async fn metrics(&self) -> String {
        self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }

    /// Kills the process with SIGKILL and hands back its data directory.
    pub fn sigkill(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data.take().unwrap()
    }

    /// `ws://127.0.0.1:<port+1>/?<query>`: the entity-sync socket.
    pub fn sync_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/?{query}", self.port + 1)
    }

    /// `http://127.0.0.1:<port+2>/?<query>`: the SSE change stream.
    pub fn events_url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/?{query}", self.port + 2)
    }

    pub fn sigterm(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits (polling, with a deadline) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of metric line `name{labels}` (exact prefix match), or 0.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How a test client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPath {
    Header,
    Subprotocol,
    Query,
}

/// Connects a tungstenite client; returns the socket and the echoed subprotocol.
pub async fn connect(url: &str, token: Option<&str>, path: AuthPath) -> (Ws, Option<String>) {
    let url = match (token, path) {
        (Some(t), AuthPath::Query) => format!("{url}&token={t}"),
        _ => url.to_owned(),
    };
    let mut request = url.into_client_request().unwrap();
    match (token, path) {
        (Some(t), AuthPath::Header) => {
            request
                .headers_mut()
                .insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        }
        (Some(t), AuthPath::Subprotocol) => {
            // What the stock web client sends: encodeURIComponent(token).
            let entry = format!("bearer.{}", t.replace('%', "%25"));
            request
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_str(&entry).unwrap());
        }
        _ => {}
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("handshake");
    let echoed =
        response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
    (ws, echoed)
}

/// One frame a client saw.
#[derive(Debug)]
pub enum Seen {
    /// A compat binary snapshot: tick and JSON.
    Snapshot(u64, Value),
    /// Any other data message.
    Other(Message),
    /// The close frame: code and reason.
    Closed(u16, String),
}

/// The next data or close frame, within `within`.
pub async fn next(ws: &mut Ws, within: Duration) -> Seen {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame before the deadline")
            .expect("socket open")
            .expect("socket ok");
        match msg {
            Message::Binary(b) => {
                // Compat frames are tick + JSON; anything else (MessagePack) is `Other`.
                let snapshot = decode_server_frame(WireMode::Binary, FrameType::Binary, &b, None)
                    .ok()
                    .and_then(|f| Some((f.tick, f.body.value().ok()?)));
                return match snapshot {
                    Some((tick, value)) => Seen::Snapshot(tick, value),
                    None => Seen::Other(Message::Binary(b)),
                };
            }
            Message::Close(Some(CloseFrame { code, reason })) => {
                return Seen::Closed(code.into(), reason.to_string());
            }
            Message::Close(None) => return Seen::Closed(1005, String::new()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => return Seen::Other(other),
        }
    }
}

/// Reads until the close frame (skipping snapshots); its code and reason.
pub async fn close_of(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Seen::Closed(code, reason) = next(ws, left).await {
            return (code, reason);
        }
    }
}

/// Sends one compat input frame, as the codec writes it.
pub async fn send_input(ws: &mut Ws, input: Value, seq: u64) {
    let mut frame = Vec::new();
    encode_client_frame(WireMode::Binary, Some(seq), None, &input, &mut frame).unwrap();
    ws.send(Message::text(String::from_utf8(frame).unwrap())).await.unwrap();
}

/// A raw WebSocket client over a blocking TCP socket: it answers nothing unless told,
/// so it can be a client that never sends (no pongs) or never reads.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A server frame as the raw client parsed it.
#[derive(Debug)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawWs {
    /// Handshakes `path_and_query` on `addr` with `Authorization: Bearer token`.
    pub fn connect(addr: SocketAddr, path_and_query: &str, token: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut this = Self { stream, buf: Vec::new() };
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        this.stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(this.stream.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains("101"), "upgrade refused: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        this.buf = reader.buffer().to_vec();
        this
    }

    /// Sends one masked client frame.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        let mask = [1u8, 2, 3, 4];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.stream.write_all(&frame);
    }

    fn fill(&mut self, need: usize) -> bool {
        while self.buf.len() < need {
            let mut chunk = [0u8; 65_536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// The next server frame (unmasked), or `None` at EOF or after the read timeout.
    pub fn frame(&mut self) -> Option<RawFrame> {
        if !self.fill(2) {
            return None;
        }
        let opcode = self.buf[0] & 0x0f;
        let (len, header) = match self.buf[1] & 0x7f {
            126 => {
                if !self.fill(4) {
                    return None;
                }
                (usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                if !self.fill(10) {
                    return None;
                }
                (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        if !self.fill(header + len) {
            return None;
        }
        let payload = self.buf[header..header + len].to_vec();
        self.buf.drain(..header + len);
        Some(RawFrame { opcode, payload })
    }

    /// Reads frames until the close frame; its code and reason.
    pub fn close_code(&mut self) -> Option<(u16, String)> {
        while let Some(frame) = self.frame() {
            if frame.opcode == 0x8 {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                return Some((code, String::from_utf8_lossy(&frame.payload[2..]).into_owned()));
            }
        }
        None
    }
}

/// Reads SSE events with an id and JSON data (snapshots, changes) from a streaming
/// response.
pub struct SseEvents {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseEvents {
    pub fn new(response: reqwest::Response) -> Self {
        Self { body: Box::pin(response.bytes_stream()), buf: String::new() }
    }

    /// The next event with an id and data, within 5 s: (id, data).
    pub async fn next(&mut self) -> (u64, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let id = event
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .and_then(|v| v.trim().parse().ok());
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .and_then(|v| serde_json::from_str(v.trim()).ok());
                if let (Some(id), Some(data)) = (id, data) {
                    return (id, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("an SSE event in time")
                .unwrap()
                .unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
