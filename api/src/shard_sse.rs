//! The SSE fallback of the shard socket (docs/PROTOCOL.md, "SSE fallback"):
//! `GET /api/shards/:id/connect?sid=…`, for clients that cannot open a WebSocket.
//!
//! It subscribes through the same path as the socket ([`crate::subscription`]) and sends
//! what the codec writes for a compat client: the snapshot JSON with the ack spliced in
//! ([`pylon_shard::codec::encode_snapshot_json`]), one event per snapshot. Inputs come back
//! over `POST /api/shards/:id/input`.

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::atomic::Ordering;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use pylon_shard::Outgoing;
use pylon_shard::codec::encode_snapshot_json;

use crate::AppState;
use crate::auth;
use crate::subscription::{self, Refused, Subscription};

/// `GET /api/shards/:id/connect?sid=…` (session required; `?token=` accepted because
/// EventSource cannot send headers): one SSE event per snapshot, `id: <tick>` then
/// `data: <snapshot JSON>`. A reconnect with `Last-Event-ID: T` resumes the same
/// subscription and skips snapshots up to tick T (snapshots are state: the next one
/// supersedes anything missed). The match's end arrives as `event: end`, a stop as
/// `event: stopped` (`{"code":"session_ended"}` when the caller's session is logged out
/// or expires), then the stream closes.
pub(crate) async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (mut sid, mut query_token) = (None, None);
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*key {
            "sid" => sid = Some(value.into_owned()),
            "token" => query_token = Some(value.into_owned()),
            _ => {}
        }
    }
    let token = auth::header_token(&headers).or(query_token);
    let ready = match subscription::prepare(&state, &id, sid, token.as_deref()).await {
        Ok(ready) => ready,
        Err(Refused::WrongRegion(_)) => {
            let path = format!("/api/shards/{id}/connect");
            if let Some(redirect) = crate::shard_http::elsewhere(&state, &id, &path) {
                return redirect;
            }
            return Refused::UnknownShard.api_error(&id).into_response();
        }
        Err(refused) => return refused.api_error(&id).into_response(),
    };
    let sub = match Subscription::join(&state, ready).await {
        Ok((sub, _joined)) => sub,
        Err(refused) => return refused.api_error(&id).into_response(),
    };
    let last_seen: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let stream = SseStream { state: state.clone(), sub };
    state.metrics.sse_open.fetch_add(1, Ordering::Relaxed);
    let heartbeat = state.config.limits.sse_heartbeat;
    Sse::new(events(stream, last_seen))
        .keep_alive(KeepAlive::new().interval(heartbeat).text(" heartbeat"))
        .into_response()
}

/// One SSE subscription; the gauge goes down (and the subscription leaves) when the
/// stream is dropped.
struct SseStream {
    state: AppState,
    sub: Subscription,
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.state.metrics.sse_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn stopped(code: &str) -> Event {
    Event::default().event("stopped").data(serde_json::json!({ "code": code }).to_string())
}

fn events(stream: SseStream, last_seen: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some((stream, Vec::new())), move |state| async move {
        let (stream, mut out) = state?;
        let mut shutdown = stream.state.shutdown.clone();
        loop {
            let frame = tokio::select! {
                biased;
                () = crate::shutting_down(&mut shutdown) => {
                    return Some((Ok(stopped("shutdown")), None));
                }
                () = crate::sessions_live::ended(stream.sub.live()) => {
                    return Some((Ok(stopped("session_ended")), None));
                }
                frame = poll_fn(|cx| stream.sub.mailbox().poll_recv(cx)) => frame,
            };
            let Some(frame) = frame else {
                return Some((Ok(stopped("gone")), None));
            };
            let event = match &frame {
                Outgoing::Snapshot(s) if s.tick > last_seen => {
                    if let Err(e) = encode_snapshot_json(s, &mut out) {
                        tracing::error!(error = %e, "encoding a snapshot failed");
                        return Some((Ok(stopped("panicked")), None));
                    }
                    let metrics = &stream.state.metrics;
                    metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                    metrics.bytes_out.fetch_add(out.len() as u64, Ordering::Relaxed);
                    let json = String::from_utf8_lossy(&out).into_owned();
                    Event::default().id(s.tick.to_string()).data(json)
                }
                Outgoing::MatchEnd(end) => {
                    let outcome = match end.outcome.json() {
                        Ok(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        Err(e) => {
                            tracing::error!(error = %e, "encoding an outcome failed");
                            "null".to_owned()
                        }
                    };
                    let event =
                        Event::default().event("end").id(end.tick.to_string()).data(outcome);
                    return Some((Ok(event), None));
                }
                Outgoing::Stopped(why) => return Some((Ok(stopped(why.as_str())), None)),
                _ => continue,
            };
            return Some((Ok(event), Some((stream, out))));
        }
    })
}
