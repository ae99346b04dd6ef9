//! The shard socket (DESIGN.md section 4): `ws://HOST:PORT+3/?shard=<id>&sid=<sid>` and
//! `/shard?…` on the main port.
//!
//! Everything that can be decided before the upgrade is (address cap, query, region,
//! token, shard lookup), but a refusal is still sent as a close frame after the upgrade,
//! because browsers never show a client the status of a failed handshake. The `bearer.`
//! subprotocol entry is echoed in every case, or browsers drop the socket unread.
//!
//! After the join, one socket is one task (no split halves, no channel between them): it
//! reads client frames (rate limit, decode, hand-off to the tick thread), sends what the
//! mailbox holds, pings, and watches idle time and shutdown. A client that stops reading
//! stalls only its own task while its mailbox keeps only the newest snapshot; a send
//! stalled for the idle timeout closes the socket (1013).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use pylon_shard::codec::{FrameEncoder, FrameType, WireMode, decode_client_frame};
use pylon_shard::{Auth, JoinRejected, Outgoing, StopReason, SubscriberKey};
use pylon_tick::{InputFrom, Mailbox, SendError, ShardHandle};
use tracing::Instrument;

use crate::AppState;
use crate::auth::{self, AuthFailure, TokenSource};
use crate::error::{ApiError, close};
use crate::limits::{ConnSlot, InputBucket};
use crate::matches::MatchEntry;
use crate::sessions_live::{LiveSession, SessionRef};

/// Read buffer per socket (tungstenite grows it for a larger frame, up to the frame limit).
pub(crate) const SOCKET_READ_BUFFER: usize = 4096;

/// Reliable frames a subscriber may have unsent (join answer, match end, stop).
const RELIABLE_FRAMES: usize = 8;
/// How long a close frame may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The parsed socket query.
#[derive(Debug, Default)]
struct SocketQuery {
    shard: Option<String>,
    sid: Option<String>,
    token: Option<String>,
    format: Option<String>,
    delta: bool,
}

fn parse_query(raw: Option<&str>) -> SocketQuery {
    let mut q = SocketQuery::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*key {
            "shard" => q.shard = Some(value.into_owned()),
            "sid" => q.sid = Some(value.into_owned()),
            "token" => q.token = Some(value.into_owned()),
            "format" => q.format = Some(value.into_owned()),
            "delta" => q.delta = matches!(&*value, "1" | "true"),
            _ => {}
        }
    }
    q
}

/// A close frame reason: at most 123 bytes of UTF-8 (the WebSocket limit), cut on a
/// character boundary.
/// What the handler decided before the upgrade.
enum Plan {
    Refuse(u16, String),
    Join(Box<Joining>),
}

struct Joining {
    entry: MatchEntry,
    sid: Arc<str>,
    auth: Auth,
    /// The token's session (`None` for the admin token): logout and expiry close the
    /// socket with 1008 "session ended".
    session: Option<SessionRef>,
    mode: WireMode,
    _slot: ConnSlot,
}

/// The upgrade handler shared by the shard port and `/shard` on the main port.
pub(crate) async fn handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let query = parse_query(raw.as_deref());
    let token = auth::socket_token(&headers, query.token.as_deref());
    let echo = auth::echo_entry(token.as_ref());
    let plan = plan(&state, peer, query, token).await;
    let limit = state.config.limits.max_frame_bytes;
    // Small per-socket buffers: tungstenite's defaults (128 KiB to read, 128 KiB of write
    // batching) cost memory on every one of thousands of sockets; frames here are small
    // and each is written as soon as it is sent.
    let mut upgrade = upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_READ_BUFFER)
        .write_buffer_size(0);
    if let Some(entry) = echo {
        upgrade = upgrade.protocols([entry]);
    }
    let tasks = state.tasks.clone();
    upgrade
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                match plan {
                    Plan::Refuse(code, why) => refuse(socket, &state, code, &why).await,
                    Plan::Join(joining) => {
                        let span = tracing::info_span!(
                            "shard_socket",
                            shard = %joining.entry.id,
                            sid = %joining.sid,
                            peer = %peer,
                        );
                        run(socket, state, *joining).instrument(span).await;
                    }
                }
            })
        })
}

async fn plan(
    state: &AppState,
    peer: SocketAddr,
    query: SocketQuery,
    token: Option<(String, TokenSource)>,
) -> Plan {
    let max = state.config.limits.max_conns_per_ip;
    let Some(slot) = state.conns.acquire(peer.ip(), max) else {
        return Plan::Refuse(close::RATE_LIMITED, crate::limits::over_cap(max));
    };
    let Some(shard_id) = query.shard.filter(|s| !s.is_empty()) else {
        return Plan::Refuse(close::BAD_REQUEST, "missing query parameter: shard".into());
    };
    let Some(mode) = WireMode::from_query(query.format.as_deref(), query.delta) else {
        return Plan::Refuse(
            close::BAD_REQUEST,
            "unknown format: use binary, json, or msgpack (delta=1 needs msgpack)".into(),
        );
    };
    if let Some(url) = state.config.regions.elsewhere(&shard_id) {
        return Plan::Refuse(close::WRONG_REGION, url.to_owned());
    }
    let Some((token, _)) = token else {
        return Plan::Refuse(close::POLICY, "authentication required".into());
    };
    let (auth, session) = match auth::resolve_session(state, &token).await {
        Ok(resolved) => (resolved.auth, resolved.session),
        Err(AuthFailure::Invalid) => {
            return Plan::Refuse(close::POLICY, "invalid or expired token".into());
        }
        Err(AuthFailure::Store(e)) => {
            tracing::error!(error = %e, "session store failed");
            return Plan::Refuse(close::INTERNAL, "session store unavailable".into());
        }
    };
    let Some(entry) = state.matches.get(&shard_id) else {
        return Plan::Refuse(close::UNKNOWN_SHARD, format!("unknown shard {shard_id}"));
    };
    let sid: Arc<str> = match query.sid.filter(|s| !s.is_empty()) {
        Some(sid) => Arc::from(sid),
        None => Arc::clone(&auth.user_id),
    };
    Plan::Join(Box::new(Joining { entry, sid, auth, session, mode, _slot: slot }))
}

async fn refuse(mut socket: WebSocket, state: &AppState, code: u16, why: &str) {
    tracing::info!(code, reason = why, "shard socket refused");
    finish(&mut socket, state, code, why).await;
}

/// How a subscription ended.
enum End {
    /// The client closed or vanished; nothing more to send.
    Gone,
    /// Close the socket with this code and reason.
    Close(u16, String),
}

/// Close code and reason for a frame that ends the subscription, if `frame` is one.
fn ending(frame: &Outgoing, sid: &str) -> Option<(u16, String)> {
    match frame {
        Outgoing::MatchEnd(_) => Some((close::NORMAL, "match finished".into())),
        Outgoing::Stopped(why) => Some(match why {
            StopReason::Shutdown => (close::GOING_AWAY, "server shutting down".into()),
            StopReason::Panicked => (close::INTERNAL, "match stopped: game error".into()),
            StopReason::Idle => (close::TRY_AGAIN, "match stopped: idle".into()),
            _ => (close::TRY_AGAIN, "match stopped".into()),
        }),
        Outgoing::JoinRejected(why) => Some(match why {
            JoinRejected::Forbidden => {
                (close::POLICY, format!("forbidden: cannot subscribe as {sid}"))
            }
            JoinRejected::Full => (close::TRY_AGAIN, "shard full".into()),
            JoinRejected::Finished => (close::TRY_AGAIN, "match finished".into()),
            _ => (close::TRY_AGAIN, "join refused".into()),
        }),
        _ => None,
    }
}

/// Unsubscribes on every exit path: the leave command, and the mailbox marked so the
/// tick thread drops the subscriber even if the command queue was full.
struct Subscription {
    handle: ShardHandle,
    key: Option<SubscriberKey>,
    mailbox: Arc<Mailbox<Outgoing>>,
    metrics: Arc<crate::ApiMetrics>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.mailbox.close_consumer();
        self.metrics.snapshots_replaced.fetch_add(self.mailbox.replaced_count(), Ordering::Relaxed);
        if let Some(key) = self.key {
            let _ = self.handle.leave(key);
        }
    }
}

/// Counts an open socket; declared before the address slot in `run`, so it is dropped
/// after it: when the gauge goes down, the slot is already free.
struct OpenSocket(Arc<crate::ApiMetrics>);

impl OpenSocket {
    fn new(metrics: &Arc<crate::ApiMetrics>) -> Self {
        metrics.sockets_open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(metrics))
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.sockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(mut socket: WebSocket, state: AppState, joining: Joining) {
    let _open = OpenSocket::new(&state.metrics);
    let Joining { entry, sid, auth, session, mode, _slot } = joining;
    let live = session.map(|s| state.live.register(s, auth::unix_now()));
    state.metrics.sockets_total.fetch_add(1, Ordering::Relaxed);
    let mailbox = Arc::new(Mailbox::new(RELIABLE_FRAMES));
    let mut sub = Subscription {
        handle: entry.handle.clone(),
        key: None,
        mailbox: Arc::clone(&mailbox),
        metrics: Arc::clone(&state.metrics),
    };
    let mut encoder = FrameEncoder::new(mode);

    let outcome = join(&state, &entry, &sid, auth, &mailbox, &mut encoder).await;
    let (key, first) = match outcome {
        Ok(joined) => joined,
        Err((code, why)) => {
            finish(&mut socket, &state, code, &why).await;
            return;
        }
    };
    sub.key = Some(key);
    tracing::info!(resumed = first.is_some(), ?mode, "subscribed");
    if let Some(bytes) = first {
        let _ = send_encoded(&mut socket, &state, bytes, FrameType::Binary).await;
    }

    let connection = Connection {
        state: &state,
        handle: &entry.handle,
        key,
        mode,
        mailbox: &mailbox,
        sid: &sid,
        live: live.as_ref(),
    };
    let end = connection.run(&mut socket, &mut encoder).await;
    drop(sub);
    match end {
        End::Gone => {
            // The client closed (tungstenite answered its close frame) or vanished.
            tracing::info!("client closed the shard socket");
            state.metrics.count_close(close::NORMAL);
        }
        End::Close(code, why) => {
            finish(&mut socket, &state, code, &why).await;
            tracing::info!(code, reason = %why, "shard socket closed");
        }
    }
}

/// Sends the join, waits for the shard's answer. `Ok((key, frame))`: the msgpack
/// `Joined` frame to send first, if this mode carries it.
async fn join(
    state: &AppState,
    entry: &MatchEntry,
    sid: &Arc<str>,
    auth: Auth,
    mailbox: &Arc<Mailbox<Outgoing>>,
    encoder: &mut FrameEncoder,
) -> Result<(SubscriberKey, Option<Vec<u8>>), (u16, String)> {
    match entry.handle.join(Arc::clone(sid), auth, Arc::clone(mailbox)) {
        Ok(()) => {}
        Err(SendError::Full) => return Err((close::TRY_AGAIN, "server busy, try again".into())),
        Err(_) => return Err((close::GOING_AWAY, "server shutting down".into())),
    }
    let answer = tokio::time::timeout(
        state.config.limits.handshake_timeout,
        poll_fn(|cx| mailbox.poll_recv(cx)),
    )
    .await;
    let frame = match answer {
        Ok(Some(frame)) => frame,
        Ok(None) => return Err((close::TRY_AGAIN, "match stopped".into())),
        Err(_) => return Err((close::TRY_AGAIN, "server busy, try again".into())),
    };
    match &frame {
        Outgoing::Joined { key, .. } => {
            let mut out = Vec::new();
            let carried = encoder.encode(&frame, &mut out).ok().flatten().is_some();
            Ok((*key, carried.then_some(out)))
        }
        other => Err(ending(other, sid).unwrap_or((close::TRY_AGAIN, "join refused".into()))),
    }
}

async fn send_encoded(
    socket: &mut WebSocket,
    state: &AppState,
    bytes: Vec<u8>,
    kind: FrameType,
) -> Result<(), ()> {
    let len = bytes.len() as u64;
    let message = match kind {
        FrameType::Binary => Message::Binary(Bytes::from(bytes)),
        FrameType::Text => match String::from_utf8(bytes) {
            Ok(text) => Message::Text(Utf8Bytes::from(text)),
            Err(_) => return Err(()),
        },
    };
    socket.send(message).await.map_err(|_| ())?;
    state.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
    state.metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

/// Runs `send`; only a send that does not finish at once gets a timer (most finish at
/// once: the kernel buffer has room), so the common path arms no timer. A send stalled
/// past `limit` ends the connection as too slow; a failed one as gone.
async fn bounded_send<F>(limit: Duration, send: F) -> Result<(), End>
where
    F: Future<Output = Result<(), ()>>,
{
    let mut send = pin!(send);
    let done = match poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
        Poll::Ready(done) => done,
        Poll::Pending => match tokio::time::timeout(limit, send).await {
            Ok(done) => done,
            Err(_) => return Err(End::Close(close::TRY_AGAIN, "too slow: not reading".into())),
        },
    };
    done.map_err(|()| End::Gone)
}

/// One subscribed socket, driven by one task: frames in (rate limit, decode, hand-off to
/// the tick thread), mailbox out (encode, send), pings, idle and shutdown.
struct Connection<'a> {
    state: &'a AppState,
    handle: &'a ShardHandle,
    key: SubscriberKey,
    mode: WireMode,
    mailbox: &'a Mailbox<Outgoing>,
    sid: &'a str,
    live: Option<&'a LiveSession>,
}

impl Connection<'_> {
    async fn run(self, socket: &mut WebSocket, encoder: &mut FrameEncoder) -> End {
        let limits = &self.state.config.limits;
        let mut shutdown_rx = self.state.shutdown.clone();
        let shutdown = crate::shutting_down(&mut shutdown_rx);
        let mut shutdown = pin!(shutdown);
        // Pinned once like `shutdown`: polling it costs nothing until the session ends.
        let ended = crate::sessions_live::ended(self.live);
        let mut ended = pin!(ended);
        let period = limits.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // One idle timer, moved only when it fires (not on every frame): it fires at
        // the old deadline, then sleeps until `last_read + idle_timeout`.
        let mut last_read = tokio::time::Instant::now();
        let idle = tokio::time::sleep(limits.idle_timeout);
        let mut idle = pin!(idle);
        let mut bucket = InputBucket::new(limits.max_inputs_per_sec, Instant::now());
        let mut applied_base = 0u64;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    return End::Close(close::GOING_AWAY, "server shutting down".into());
                }
                () = &mut ended => {
                    return End::Close(close::POLICY, "session ended".into());
                }
                msg = socket.next() => {
                    last_read = tokio::time::Instant::now();
                    if let Some(end) = self.received(msg, &mut bucket, encoder, &mut applied_base) {
                        return end;
                    }
                }
                frame = poll_fn(|cx| self.mailbox.poll_recv(cx)) => {
                    if let Some(end) = self.deliver(socket, encoder, frame).await {
                        return end;
                    }
                }
                _ = ping.tick() => {
                    let send = async {
                        socket.send(Message::Ping(Bytes::new())).await.map_err(|_| ())
                    };
                    if let Err(end) = bounded_send(limits.idle_timeout, send).await {
                        return end;
                    }
                }
                () = &mut idle => {
                    let deadline = last_read + limits.idle_timeout;
                    if deadline <= tokio::time::Instant::now() {
                        return End::Close(close::IDLE, "idle timeout".into());
                    }
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Handles what the socket read: `Some` ends the connection.
    fn received(
        &self,
        msg: Option<Result<Message, axum::Error>>,
        bucket: &mut InputBucket,
        encoder: &mut FrameEncoder,
        applied_base: &mut u64,
    ) -> Option<End> {
        let bytes = match msg {
            None | Some(Ok(Message::Close(_))) => return Some(End::Gone),
            Some(Err(e)) => return Some(self.read_failed(&e.to_string())),
            Some(Ok(Message::Text(text))) => Bytes::from(text),
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return None,
        };
        match self.frame(&bytes, bucket) {
            Ok(Some(base)) if base > *applied_base => {
                *applied_base = base;
                encoder.handle_base_ack(base);
                None
            }
            Ok(_) => None,
            Err(end) => Some(end),
        }
    }

    /// Encodes and sends one mailbox frame: `Some` ends the connection.
    async fn deliver(
        &self,
        socket: &mut WebSocket,
        encoder: &mut FrameEncoder,
        frame: Option<Outgoing>,
    ) -> Option<End> {
        let Some(frame) = frame else {
            // Closed without a final frame: the reliable queue overflowed, or a newer
            // connection with the same sid took the subscription.
            return Some(if self.mailbox.is_overflowed() {
                End::Close(close::TRY_AGAIN, "too slow: frames dropped".into())
            } else {
                End::Close(close::REPLACED, "replaced by a newer connection for this sid".into())
            });
        };
        let mut out = Vec::new();
        match encoder.encode(&frame, &mut out) {
            Ok(Some(kind)) => {
                let send = send_encoded(socket, self.state, out, kind);
                let limit = self.state.config.limits.idle_timeout;
                if let Err(end) = bounded_send(limit, send).await {
                    return Some(end);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "encoding a frame failed");
                return Some(End::Close(close::INTERNAL, "encoding failed".into()));
            }
        }
        ending(&frame, self.sid).map(|(code, why)| End::Close(code, why))
    }

    /// The close for a failed read: too large, a protocol error, or the client gone.
    fn read_failed(&self, text: &str) -> End {
        let limits = &self.state.config.limits;
        if text.contains("Space limit exceeded") || text.contains("too long") {
            return End::Close(
                close::TOO_BIG,
                format!("frame too large (limit {} bytes)", limits.max_frame_bytes),
            );
        }
        if text.contains("UTF-8") || text.contains("protocol error") {
            return End::Close(close::BAD_REQUEST, format!("protocol error: {text}"));
        }
        tracing::debug!(error = %text, "socket read failed");
        End::Gone
    }

    /// Handles one data frame: `Ok(Some(tick))` when it acknowledges a delta base,
    /// `Err` when it ends the connection.
    fn frame(&self, bytes: &Bytes, bucket: &mut InputBucket) -> Result<Option<u64>, End> {
        let metrics = &self.state.metrics;
        metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        metrics.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if !bucket.take(Instant::now()) {
            metrics.count_socket_reject(0);
            return Err(End::Close(close::RATE_LIMITED, "too many inputs per second".into()));
        }
        let frame = match decode_client_frame(bytes, self.mode.is_msgpack()) {
            Ok(frame) => frame,
            Err(e) => {
                metrics.count_socket_reject(2);
                return Err(End::Close(close::BAD_REQUEST, format!("malformed frame: {e}")));
            }
        };
        if frame.base_tick.is_some() && frame.client_seq.is_none() && is_nil(&frame.input) {
            return Ok(frame.base_tick); // a pure base acknowledgement
        }
        match self.handle.input(InputFrom::Key(self.key), frame.client_seq, frame.input) {
            Ok(()) => Ok(frame.base_tick),
            Err(SendError::Full) => {
                metrics.count_socket_reject(1);
                Ok(frame.base_tick)
            }
            Err(_) => Err(End::Close(close::GOING_AWAY, "server shutting down".into())),
        }
    }
}

/// Sends the close frame and waits (bounded) for the client's answer.
async fn finish(socket: &mut WebSocket, state: &AppState, code: u16, why: &str) {
    state.metrics.count_close(code);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close::message(code, why))).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(msg)) = socket.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn is_nil(input: &pylon_shard::codec::InputPayload) -> bool {
    matches!(input.bytes.as_ref(), b"null" | [0xc0])
}
