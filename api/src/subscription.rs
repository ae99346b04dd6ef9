//! One path from "this caller wants this match's frames" to a live subscription, shared by
//! the shard socket (`shard_ws`) and the SSE fallback (`shard_sse`): the region check,
//! the token, the match lookup and the `sid` rule ([`prepare`]), the join and the wait for
//! the shard's answer ([`Subscription::join`]), the mapping of refusals to close codes and
//! HTTP errors ([`Refused`]), and the leave when the transport goes away (drop).

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use pylon_shard::{Auth, JoinRejected, Outgoing, StopReason, SubscriberKey};
use pylon_tick::{Mailbox, SendError, ShardHandle};

use crate::AppState;
use crate::auth::{self, AuthFailure};
use crate::close::Close;
use crate::error::{ApiError, ErrorCode};
use crate::matches::MatchEntry;
use crate::sessions_live::LiveSession;

/// Frames a subscriber may have waiting that must not be dropped (join answer, match
/// end, stop); past this the subscriber is too slow and is closed.
pub(crate) const RELIABLE_FRAMES: usize = 8;

/// Why a subscription was not made.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No token.
    AuthRequired,
    /// The token resolves to nothing.
    InvalidToken,
    /// The session store failed (logged).
    StoreFailed,
    /// The match belongs to another region; its base URL.
    WrongRegion(String),
    /// No such match here.
    UnknownShard,
    /// The tick thread's queue was full, or its answer late.
    Busy,
    /// The server is stopping.
    ShuttingDown,
    /// The match stopped before answering.
    Stopped,
    /// The shard refused the join.
    Rejected(JoinRejected),
}

impl Refused {
    /// The close a socket gets.
    pub(crate) fn close(&self) -> Close {
        match self {
            Self::AuthRequired => Close::AuthRequired,
            Self::InvalidToken => Close::InvalidToken,
            Self::StoreFailed => Close::Internal,
            Self::WrongRegion(url) => Close::WrongRegion(url.clone()),
            Self::UnknownShard => Close::UnknownShard,
            Self::Busy => Close::Busy,
            Self::ShuttingDown => Close::GoingAway,
            Self::Stopped => Close::MatchStopped,
            Self::Rejected(why) => rejected_close(*why),
        }
    }

    /// The HTTP answer an SSE request gets (a wrong region is answered with a redirect
    /// before this is asked).
    pub(crate) fn api_error(&self, shard: &str) -> ApiError {
        match self {
            Self::AuthRequired => ApiError::auth_required(),
            Self::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::AuthRequired,
                "the token is unknown or expired",
            ),
            Self::StoreFailed => ApiError::internal(&"session store unavailable"),
            Self::WrongRegion(_) | Self::UnknownShard => ApiError::shard_not_found(shard),
            Self::Busy | Self::ShuttingDown => ApiError::overloaded(),
            Self::Stopped | Self::Rejected(JoinRejected::Full | JoinRejected::Finished) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ShardUnavailable,
                    self.close().reason(),
                )
            }
            Self::Rejected(_) => ApiError::forbidden("cannot subscribe with this sid")
                .with_hint("sid must be your user id unless the game allows spectators"),
        }
    }
}

fn rejected_close(why: JoinRejected) -> Close {
    match why {
        JoinRejected::Forbidden => Close::Forbidden,
        JoinRejected::Full => Close::ShardFull,
        JoinRejected::Finished => Close::AlreadyFinished,
        _ => Close::Busy,
    }
}

/// The close for a frame that ends a subscription, if `frame` is one.
pub(crate) fn ending(frame: &Outgoing) -> Option<Close> {
    match frame {
        Outgoing::MatchEnd(_) => Some(Close::MatchFinished),
        Outgoing::Stopped(why) => Some(match why {
            StopReason::Shutdown => Close::GoingAway,
            StopReason::Panicked => Close::GameError,
            StopReason::Idle => Close::MatchIdle,
            _ => Close::MatchStopped,
        }),
        Outgoing::JoinRejected(why) => Some(rejected_close(*why)),
        _ => None,
    }
}

/// A caller cleared to subscribe.
pub(crate) struct Ready {
    /// The match.
    pub entry: MatchEntry,
    /// The subscriber id.
    pub sid: Arc<str>,
    /// Who is asking.
    pub auth: Auth,
    /// The caller's session, when it has one (the admin token has none).
    pub session: Option<crate::sessions_live::SessionRef>,
}

/// Everything decided before a join: region, token, match, sid (a missing or empty `sid`
/// means the user id; whether the caller may use it is the shard's subscribe rule).
pub(crate) async fn prepare(
    state: &AppState,
    shard: &str,
    sid: Option<String>,
    token: Option<&str>,
) -> Result<Ready, Refused> {
    if let Some(url) = state.config.regions.elsewhere(shard) {
        return Err(Refused::WrongRegion(url.to_owned()));
    }
    let token = token.ok_or(Refused::AuthRequired)?;
    let resolved = match auth::resolve_session(state, token).await {
        Ok(resolved) => resolved,
        Err(AuthFailure::Invalid) => return Err(Refused::InvalidToken),
        Err(AuthFailure::Store(e)) => {
            tracing::error!(error = %e, "session store failed");
            return Err(Refused::StoreFailed);
        }
    };
    let entry = state.matches.get(shard).ok_or(Refused::UnknownShard)?;
    let sid: Arc<str> = match sid.filter(|s| !s.is_empty()) {
        Some(sid) => Arc::from(sid),
        None => Arc::clone(&resolved.auth.user_id),
    };
    Ok(Ready { entry, sid, auth: resolved.auth, session: resolved.session })
}

/// A live subscription. Dropping it unsubscribes on every exit path: the mailbox is
/// marked (so the tick thread drops the subscriber even if the leave command cannot be
/// queued) and a leave is sent.
pub(crate) struct Subscription {
    handle: ShardHandle,
    key: SubscriberKey,
    mailbox: Arc<Mailbox<Outgoing>>,
    metrics: Arc<crate::ApiMetrics>,
    live: Option<LiveSession>,
}

impl Subscription {
    /// Joins `ready.entry` as `ready.sid` and waits (at most the handshake timeout) for the
    /// shard's answer. Returns the subscription and the `Joined` frame (MessagePack
    /// clients receive it).
    pub(crate) async fn join(state: &AppState, ready: Ready) -> Result<(Self, Outgoing), Refused> {
        let Ready { entry, sid, auth, session } = ready;
        let mailbox = Arc::new(Mailbox::new(RELIABLE_FRAMES));
        match entry.handle.join(Arc::clone(&sid), auth, Arc::clone(&mailbox)) {
            Ok(()) => {}
            Err(SendError::Full) => return Err(Refused::Busy),
            Err(_) => return Err(Refused::ShuttingDown),
        }
        let wait = state.config.limits.handshake_timeout;
        let answer = tokio::time::timeout(wait, poll_fn(|cx| mailbox.poll_recv(cx))).await;
        let frame = match answer {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err(Refused::Stopped),
            Err(_) => {
                // Too late: make sure a join that lands after all is dropped at once.
                mailbox.close_consumer();
                return Err(Refused::Busy);
            }
        };
        let key = match &frame {
            Outgoing::Joined { key, .. } => *key,
            Outgoing::JoinRejected(why) => return Err(Refused::Rejected(*why)),
            _ => return Err(Refused::Busy),
        };
        let live = session.map(|s| state.live.register(s, auth::unix_now()));
        let sub = Self {
            handle: entry.handle.clone(),
            key,
            mailbox,
            metrics: Arc::clone(&state.metrics),
            live,
        };
        Ok((sub, frame))
    }

    /// The shard's handle.
    pub(crate) fn handle(&self) -> &ShardHandle {
        &self.handle
    }

    /// This subscription's key in the shard.
    pub(crate) fn key(&self) -> SubscriberKey {
        self.key
    }

    /// Where the shard's frames arrive.
    pub(crate) fn mailbox(&self) -> &Mailbox<Outgoing> {
        &self.mailbox
    }

    /// The session this subscription ends with (logout, expiry), if any.
    pub(crate) fn live(&self) -> Option<&LiveSession> {
        self.live.as_ref()
    }

    /// Why the mailbox closed without a final frame: the reliable queue overflowed (too
    /// slow), or a newer connection with the same sid took the subscription.
    pub(crate) fn closed_without_frame(&self) -> Close {
        if self.mailbox.is_overflowed() { Close::FramesDropped } else { Close::Replaced }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.mailbox.close_consumer();
        self.metrics.snapshots_replaced.fetch_add(self.mailbox.replaced_count(), Ordering::Relaxed);
        let _ = self.handle.leave(self.key);
    }
}
