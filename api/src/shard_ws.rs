//! The shard socket (docs/PROTOCOL.md): `ws://HOST:PORT+3/?shard=<id>&sid=<sid>` and
//! `/shard?…` on the main port.
//!
//! Everything that can be decided before the upgrade is (address cap, query, region,
//! token, shard lookup: [`crate::subscription::prepare`]), but a refusal is still sent as a
//! close frame after the upgrade, because browsers never show a client the status of a
//! failed handshake. The `bearer.` subprotocol entry is echoed in every case, or browsers
//! drop the socket unread.
//!
//! After the join, one socket is one task (no split halves, no channel between them): it
//! reads client frames (rate limit, decode, hand-off to the tick thread), sends what the
//! mailbox holds, and follows the socket rules of [`crate::socket`] (pings, idle time,
//! bounded sends, the close handshake).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use pylon_shard::Outgoing;
use pylon_shard::codec::{FrameEncoder, FrameType, InputPayload, WireMode, decode_client_frame};
use pylon_tick::{InputFrom, SendError};
use tracing::Instrument;

use crate::AppState;
use crate::auth;
use crate::close::{BadRequest, Close};
use crate::error::ApiError;
use crate::limits::{ConnSlot, InputBucket};
use crate::metrics::SocketReject;
use crate::socket::{self, End, Read, SocketTimers};
use crate::subscription::{self, Ready, Subscription};
use pylon_tick::gate::Gates;

/// The parsed socket query.
#[derive(Debug, Default)]
struct SocketQuery {
    shard: Option<String>,
    sid: Option<String>,
    token: Option<String>,
    format: Option<String>,
    delta: Option<String>,
}

fn parse_query(raw: Option<&str>) -> SocketQuery {
    let mut q = SocketQuery::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*key {
            "shard" => q.shard = Some(value.into_owned()),
            "sid" => q.sid = Some(value.into_owned()),
            "token" => q.token = Some(value.into_owned()),
            "format" => q.format = Some(value.into_owned()),
            "delta" => q.delta = Some(value.into_owned()),
            _ => {}
        }
    }
    q
}

/// What the handler decided before the upgrade.
enum Plan {
    Refuse(Close),
    Join(Box<Ready>, WireMode, ConnSlot),
}

/// The upgrade handler shared by the shard port and `/shard` on the main port.
pub(crate) async fn handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: socket::Upgrade,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let query = parse_query(raw.as_deref());
    let token = auth::socket_token(&headers, query.token.as_deref());
    let echo = auth::echo_entry(token.as_ref());
    let plan = plan(&state, peer, query, token.map(|(t, _)| t)).await;
    let upgrade = socket::configure(upgrade, &state.config.limits, echo);
    let tasks = state.tasks.clone();
    upgrade
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            match plan {
                Plan::Refuse(close) => tasks.track_future(refuse(socket, &state, close)).await,
                Plan::Join(ready, mode, slot) => {
                    let span = tracing::info_span!(
                        "shard_socket",
                        shard = %ready.entry.id,
                        sid = %ready.sid,
                        peer = %peer,
                    );
                    // A subscribed socket leaves this upgrade task for its match's socket
                    // group (crate::socket_groups), tracked like a task for graceful shutdown.
                    let groups = Arc::clone(&state.socket_groups);
                    let key = ready.entry.id.clone();
                    groups.run(
                        &key,
                        tasks.track_future(run(socket, state, *ready, mode, slot).instrument(span)),
                    );
                }
            }
        })
}

async fn plan(
    state: &AppState,
    peer: SocketAddr,
    query: SocketQuery,
    token: Option<String>,
) -> Plan {
    let max = state.config.limits.max_conns_per_ip;
    let Some(slot) = state.conns.acquire(peer.ip(), max) else {
        return Plan::Refuse(Close::TooManySockets(max));
    };
    let Some(shard) = query.shard.filter(|s| !s.is_empty()) else {
        return Plan::Refuse(Close::BadRequest(BadRequest::MissingShard));
    };
    let Some(mode) = WireMode::from_query(query.format.as_deref(), query.delta.as_deref()) else {
        return Plan::Refuse(Close::BadRequest(BadRequest::UnknownFormat));
    };
    match subscription::prepare(state, &shard, query.sid, token.as_deref()).await {
        Ok(ready) => Plan::Join(Box::new(ready), mode, slot),
        Err(refused) => Plan::Refuse(refused.close()),
    }
}

async fn refuse(mut socket: WebSocket, state: &AppState, close: Close) {
    tracing::info!(code = close.code(), reason = %close.reason(), "shard socket refused");
    state.metrics.count_close(close.code());
    socket::finish(&mut socket, &close).await;
}

/// Counts an open socket; declared before the address slot in `run`, so it is dropped
/// after it: when the gauge goes down, the slot is already free.
struct OpenSocket(Arc<crate::ApiMetrics>);

impl OpenSocket {
    fn new(metrics: &Arc<crate::ApiMetrics>) -> Self {
        metrics.sockets_open.fetch_add(1, Ordering::Relaxed);
        metrics.sockets_total.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(metrics))
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.sockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(
    mut socket: WebSocket,
    state: AppState,
    ready: Ready,
    mode: WireMode,
    _slot: ConnSlot,
) {
    let _open = OpenSocket::new(&state.metrics);
    let (sub, joined) = match Subscription::join(&state, ready).await {
        Ok(joined) => joined,
        Err(refused) => {
            let close = refused.close();
            state.metrics.count_close(close.code());
            socket::finish(&mut socket, &close).await;
            return;
        }
    };
    let mut encoder = FrameEncoder::new(mode);
    let resumed = matches!(joined, Outgoing::Joined { resumed: true, .. });
    tracing::info!(resumed, ?mode, "subscribed");
    let connection = Connection { state: &state, sub: &sub, mode, frame_hint: 256.into() };
    // MessagePack clients get the join answer first; compat modes do not carry it.
    let first = connection.deliver(&mut socket, &mut encoder, Some(joined)).await;
    let end = match first {
        Some(end) => end,
        None => connection.run(&mut socket, &mut encoder).await,
    };
    drop(sub);
    let code = end.code();
    state.metrics.count_close(code);
    tracing::info!(code, "shard socket closed");
    socket::end(&mut socket, end).await;
}

/// One subscribed socket, driven by one task: frames in (rate limit, decode, hand-off to
/// the tick thread), mailbox out (encode, send), pings, idle, session end and shutdown.
struct Connection<'a> {
    state: &'a AppState,
    sub: &'a Subscription,
    mode: WireMode,
    /// The capacity to encode the next frame into.
    frame_hint: std::sync::atomic::AtomicUsize,
}

impl Connection<'_> {
    async fn run(&self, socket: &mut WebSocket, encoder: &mut FrameEncoder) -> End {
        let limits = &self.state.config.limits;
        let mut shutdown_rx = self.state.shutdown.clone();
        let mut shutdown = pin!(crate::shutting_down(&mut shutdown_rx));
        // Pinned once like `shutdown`: polling it costs nothing until the session ends.
        let mut ended = pin!(crate::sessions_live::ended(self.sub.live()));
        let mut timers = SocketTimers::new(limits);
        let mut bucket = InputBucket::new(limits.max_inputs_per_sec, Instant::now());
        let mut applied_base = 0u64;
        // Most wakes are a new frame in the mailbox, polled first (a frame waiting needs no
        // registration at all); the other branches sit behind gates (pylon_tick::gate) and
        // are polled only after their own wakers fired: 0 shutdown, session end and
        // timers, 1 the socket's reads.
        let gates = Gates::<2>::new();
        loop {
            let event = poll_fn(|cx| {
                if let Poll::Ready(frame) = self.sub.mailbox().poll_recv(cx) {
                    return Poll::Ready(Event::Frame(frame));
                }
                gates.register(cx);
                let rare = gates.poll(0, |cx| {
                    if shutdown.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::End(End::Close(Close::GoingAway)));
                    }
                    if ended.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::End(End::Close(Close::SessionEnded)));
                    }
                    timers.poll_next(cx).map(Event::Timer)
                });
                if rare.is_ready() {
                    return rare;
                }
                gates.poll(1, |cx| socket.poll_next_unpin(cx)).map(Event::Read)
            })
            .await;
            match event {
                Event::End(end) => return end,
                Event::Timer(timer) => {
                    if let Err(end) = timers.handle(timer, socket, limits).await {
                        return end;
                    }
                }
                Event::Frame(frame) => {
                    if let Some(end) = self.deliver(socket, encoder, frame).await {
                        return end;
                    }
                }
                Event::Read(msg) => {
                    timers.saw_read();
                    let bytes = match socket::read(msg, limits) {
                        Read::Data(bytes) => bytes,
                        Read::Control => continue,
                        Read::End(end) => return end,
                    };
                    match self.frame(&bytes, &mut bucket) {
                        Ok(Some(base)) if base > applied_base => {
                            applied_base = base;
                            encoder.handle_base_ack(base);
                        }
                        Ok(_) => {}
                        Err(end) => return end,
                    }
                }
            }
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
            return Some(End::Close(self.sub.closed_without_frame()));
        };
        // One allocation per frame, sized by the previous one (frames of a match are
        // alike), instead of a vector grown by doubling.
        let mut out = Vec::with_capacity(self.frame_hint.load(Ordering::Relaxed));
        match encoder.encode(&frame, &mut out) {
            Ok(Some(kind)) => {
                let len = out.len() as u64;
                self.frame_hint.store(out.len() + out.len() / 8 + 16, Ordering::Relaxed);
                let message = match kind {
                    FrameType::Binary => Message::Binary(Bytes::from(out)),
                    // The codec writes text frames as JSON: valid UTF-8 by construction.
                    FrameType::Text => match String::from_utf8(out) {
                        Ok(text) => Message::Text(Utf8Bytes::from(text)),
                        Err(e) => {
                            tracing::error!(error = %e, "a text frame was not UTF-8");
                            return Some(End::Close(Close::Internal));
                        }
                    },
                };
                if let Err(end) = socket::send(socket, &self.state.config.limits, message).await {
                    return Some(end);
                }
                self.state.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                self.state.metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "encoding a frame failed");
                return Some(End::Close(Close::Internal));
            }
        }
        subscription::ending(&frame).map(End::Close)
    }

    /// Handles one data frame: `Ok(Some(tick))` when it acknowledges a delta base,
    /// `Err` when it ends the connection.
    fn frame(&self, bytes: &Bytes, bucket: &mut InputBucket) -> Result<Option<u64>, End> {
        let metrics = &self.state.metrics;
        metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        metrics.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if !bucket.take(Instant::now()) {
            metrics.count_socket_reject(SocketReject::RateLimited);
            return Err(End::Close(Close::InputRate));
        }
        let frame = match decode_client_frame(bytes, self.mode.is_msgpack()) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(error = %e, "malformed client frame");
                metrics.count_socket_reject(SocketReject::Malformed);
                return Err(End::Close(Close::BadRequest(BadRequest::MalformedFrame)));
            }
        };
        if frame.base_tick.is_some() && frame.client_seq.is_none() && is_nil(&frame.input) {
            return Ok(frame.base_tick); // a pure base acknowledgement
        }
        let from = InputFrom::Key(self.sub.key());
        match self.sub.handle().input(from, frame.client_seq, frame.input) {
            Ok(()) => Ok(frame.base_tick),
            Err(SendError::Full) => {
                metrics.count_socket_reject(SocketReject::Overloaded);
                Ok(frame.base_tick)
            }
            Err(_) => Err(End::Close(Close::GoingAway)),
        }
    }
}

/// What woke a subscribed socket.
enum Event {
    End(End),
    Timer(socket::Timer),
    Frame(Option<Outgoing>),
    Read(Option<Result<Message, axum::Error>>),
}

fn is_nil(input: &InputPayload) -> bool {
    matches!(input.bytes.as_ref(), b"null" | [0xc0])
}
