//! The rules every pylon WebSocket follows, shard sockets and feed sockets alike:
//!
//! - small buffers and a maximum message and frame size (over it: close 1009);
//! - a send that does not complete within the idle timeout closes the socket (1013, "too
//!   slow"), so a client that stops reading holds nothing but its own task, and never holds
//!   shutdown for longer than that;
//! - a ping every `ping_interval`; a socket that sends nothing, not even a pong, for the
//!   idle timeout is closed (4408);
//! - the client's close frame is answered (the close handshake completes, so browsers see
//!   the code they sent, not 1006), and the server's own close frames carry fixed reasons
//!   from [`Close`];
//! - read errors are told apart by their kind (too large, protocol error, gone), never by
//!   their text.
//!
//! Owners keep their own `select!` loop (what they read and send differs) and call these
//! pieces from it: [`SocketTimers`] for pings and idle time, [`read`] for what came in,
//! [`bounded_send`] for what goes out, [`finish`] and [`answer_close`] at the end.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, Interval, Sleep};

use crate::close::{BadRequest, Close};
use crate::config::Limits;

/// Read buffer per socket (tungstenite grows it for a larger frame, up to the frame limit).
/// Client frames are inputs of tens of bytes; 512 bytes instead of 4 KiB took the server's
/// memory per idle client from 19.3 to 15.8 KiB (4,000 clients, BENCHMARKS.md) with no
/// measurable CPU change.
pub(crate) const READ_BUFFER: usize = 512;
/// How long a close frame may take to go out, and the client's answer to come back,
/// before the socket is dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The peer vanished or the transport failed; nothing more can be sent.
    Gone,
    /// The client sent a close frame; answer it ([`answer_close`]).
    ClientClosed,
    /// Close the socket with this.
    Close(Close),
}

/// What one read gave.
pub(crate) enum Read {
    /// A data message (text or binary), as bytes.
    Data(Bytes),
    /// A ping or pong: nothing to do (tungstenite answers pings itself).
    Control,
    /// The connection is over.
    End(End),
}

/// A WebSocket route's upgrade, or why the request was not one.
pub(crate) type Upgrade =
    Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

/// Applies the size limits, small buffers and the `bearer.` subprotocol echo to an upgrade.
pub(crate) fn configure(
    upgrade: WebSocketUpgrade,
    limits: &Limits,
    echo: Option<String>,
) -> WebSocketUpgrade {
    // tungstenite's defaults (128 KiB to read, 128 KiB of write batching) cost memory on
    // every one of thousands of sockets; frames here are small and written at once.
    let upgrade = upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    match echo {
        Some(entry) => upgrade.protocols([entry]),
        None => upgrade,
    }
}

/// Classifies what the socket read, by kind.
pub(crate) fn read(msg: Option<Result<Message, axum::Error>>, limits: &Limits) -> Read {
    match msg {
        None => Read::End(End::Gone),
        Some(Ok(Message::Close(_))) => Read::End(End::ClientClosed),
        Some(Ok(Message::Text(text))) => Read::Data(Bytes::from(text)),
        Some(Ok(Message::Binary(bytes))) => Read::Data(bytes),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Read::Control,
        Some(Err(e)) => Read::End(read_failed(e, limits)),
    }
}

fn read_failed(e: axum::Error, limits: &Limits) -> End {
    use tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    let Some(error) = inner.downcast_ref::<WsError>() else {
        tracing::debug!(error = %inner, "socket read failed");
        return End::Gone;
    };
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            End::Close(Close::TooBig(limits.max_frame_bytes))
        }
        WsError::Capacity(_) | WsError::Protocol(_) | WsError::Utf8(_) => {
            tracing::debug!(%error, "client broke the protocol");
            End::Close(Close::BadRequest(BadRequest::Protocol))
        }
        other => {
            tracing::debug!(error = %other, "socket read failed");
            End::Gone
        }
    }
}

/// Runs `send`; only a send that does not finish at once gets a timer (most finish at
/// once: the kernel buffer has room), so the common path arms no timer. A send stalled
/// past `limit` ends the connection as too slow; a failed one as gone.
pub(crate) async fn bounded_send<F>(limit: Duration, send: F) -> Result<(), End>
where
    F: Future<Output = Result<(), ()>>,
{
    let mut send = pin!(send);
    let done = match poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
        Poll::Ready(done) => done,
        Poll::Pending => match tokio::time::timeout(limit, send).await {
            Ok(done) => done,
            Err(_) => return Err(End::Close(Close::TooSlow)),
        },
    };
    done.map_err(|()| End::Gone)
}

/// Sends one message under [`bounded_send`] with the idle timeout as the bound.
pub(crate) async fn send(socket: &mut WebSocket, limits: &Limits, msg: Message) -> Result<(), End> {
    bounded_send(limits.idle_timeout, async { socket.send(msg).await.map_err(|_| ()) }).await
}

/// What a [`SocketTimers`] wait ended on.
pub(crate) enum Timer {
    /// Time to ping.
    Ping,
    /// The idle deadline passed with nothing read.
    Idle,
}

/// The ping interval and the idle deadline of one socket. One idle timer, moved only
/// when it fires (not on every frame): it fires at the old deadline, then sleeps until
/// `last_read + idle_timeout`.
pub(crate) struct SocketTimers {
    ping: Interval,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    last_read: Instant,
}

impl SocketTimers {
    /// Timers starting now.
    pub(crate) fn new(limits: &Limits) -> Self {
        let now = Instant::now();
        let period = limits.ping_interval;
        Self {
            ping: tokio::time::interval_at(now + period, period),
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            idle_timeout: limits.idle_timeout,
            last_read: now,
        }
    }

    /// Something was read: the socket is alive.
    pub(crate) fn saw_read(&mut self) {
        self.last_read = Instant::now();
    }

    /// The next timer event (cancel-safe: use it as a `select!` branch).
    pub(crate) async fn next(&mut self) -> Timer {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next timer event. Between events the ping interval and the idle
    /// sleep stay registered, so a [`pylon_tick::gate::Gates`] may skip this poll until one fires.
    pub(crate) fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Timer> {
        if self.ping.poll_tick(cx).is_ready() {
            return Poll::Ready(Timer::Ping);
        }
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = self.last_read + self.idle_timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(Timer::Idle);
            }
            self.idle.as_mut().reset(deadline);
        }
        Poll::Pending
    }

    /// Handles a timer event: pings (bounded) or ends the socket as idle.
    pub(crate) async fn handle(
        &mut self,
        timer: Timer,
        socket: &mut WebSocket,
        limits: &Limits,
    ) -> Result<(), End> {
        match timer {
            Timer::Ping => send(socket, limits, Message::Ping(Bytes::new())).await,
            Timer::Idle => Err(End::Close(Close::Idle)),
        }
    }
}

/// Completes the close handshake the client started: tungstenite queued the answer to
/// its close frame; flushing sends it, so the client sees the code it sent.
pub(crate) async fn answer_close(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
}

/// Sends our close frame and waits (bounded) for the client's answer.
pub(crate) async fn finish(socket: &mut WebSocket, close: &Close) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close.message())).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(msg)) = socket.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

impl End {
    /// The code the connection ends with: ours, the client's normal close, or 1006 (no
    /// close frame: the peer is gone).
    pub(crate) fn code(&self) -> u16 {
        match self {
            Self::Gone => 1006,
            Self::ClientClosed => Close::Normal.code(),
            Self::Close(close) => close.code(),
        }
    }
}

/// Ends a connection as `end` says: answers a client's close, sends ours, or does
/// nothing for a peer that is gone.
pub(crate) async fn end(socket: &mut WebSocket, end: End) {
    match end {
        End::Gone => {}
        End::ClientClosed => answer_close(socket).await,
        End::Close(close) => finish(socket, &close).await,
    }
}
