//! The matchmaker's HTTP routes (docs/MATCHMAKER.md); the service behind them is
//! [`crate::matchmaking`].
//!
//! - `POST /api/matchmaker/tickets` `{game, mode?, region?, latencies?, party?, skill?,
//!   params?}` -> 201 `{ticket_id, status:"queued", …}`. The ticket's region: `region`,
//!   else the fastest of `latencies` within 80 ms, else this process's; a ticket for
//!   another region is answered 307 to the same route of that region (a 307 keeps the
//!   method and body). At most `PYLON_TICKETS_PER_SEC_PER_IP` per client address (429).
//! - `GET /api/matchmaker/tickets/:id`: the status (`queued`, `matched` with what the
//!   client needs to connect, `cancelled`; expired is 410); `DELETE` cancels (409 once
//!   matched); `GET …/events`: the status as SSE, then the assignment pushed the moment
//!   its match exists. Ticket routes of another region's ticket (its id starts with its
//!   region) are redirected by `crate::regions::match_owner`.
//!
//! Only the ticket's party members (and the admin token) may read or cancel it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::Stream;
use pylon_shard::Auth;
use pylon_sync::matchmaker::{
    Assignment, MatchmakerError, NewTicket, Ticket, TicketId, TicketState, TicketStatus,
    pick_region,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::extract::BodyBytes;
use crate::limits::{ConnSlot, Refusal, addr_key};
use crate::matchmaking::Matchmaking;
use crate::matchmaking::metrics::TicketEvent;
use crate::matchmaking::waiters::{Push, Waiter};
use crate::metrics::Limit;
use crate::sessions_live::LiveSession;

/// Party members a ticket may name before any is looked up (the mode's match size limits
/// it further).
pub const MAX_PARTY: usize = 64;

/// The body of `POST /api/matchmaker/tickets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketRequest {
    game: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    latencies: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    party: Option<Vec<String>>,
    #[serde(default)]
    skill: Option<f64>,
    #[serde(default)]
    params: Option<Value>,
}

fn service(state: &AppState) -> Result<&Arc<Matchmaking>, ApiError> {
    state.matchmaking.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "this server runs no matchmaker")
    })
}

/// The ticket rate of the client address (`PYLON_TICKETS_PER_SEC_PER_IP`); the admin
/// token is exempt.
fn limit(state: &AppState, headers: &HeaderMap, client: SocketAddr) -> Result<(), ApiError> {
    if auth::header_token(headers).is_some_and(|t| auth::is_admin_token(state, &t)) {
        return Ok(());
    }
    let Err(refusal) = state.rates.tickets.check(addr_key(client.ip()), Instant::now()) else {
        return Ok(());
    };
    let what =
        if matches!(refusal, Refusal::Crowded) { Limit::LimiterFull } else { Limit::Tickets };
    state.metrics.count_refusal(what);
    let n = state.config.limits.tickets_per_sec_per_ip;
    Err(ApiError::too_many(
        ErrorCode::RateLimited,
        format!("too many matchmaker tickets from this address (limit {n} a second)"),
        "keep one ticket open and wait for its push; retry after the Retry-After seconds",
        Some(refusal.retry_after_secs()),
    ))
}

/// The region a ticket queues in: `region` (a configured one, or this process's), else
/// the fastest configured region of `latencies` within the threshold, else this
/// process's.
fn choose_region(
    state: &AppState,
    mm: &Matchmaking,
    req: &TicketRequest,
) -> Result<String, ApiError> {
    let regions = &state.config.regions;
    let mut known: Vec<String> = regions.listed().into_iter().map(|(name, ..)| name).collect();
    if !known.contains(&regions.local) {
        known.push(regions.local.clone());
    }
    if let Some(region) = &req.region {
        if known.contains(region) {
            return Ok(region.clone());
        }
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnknownRegion,
            format!("no region named {region:?}"),
        )
        .with_hint(format!("regions: {} (GET /api/regions)", known.join(", "))));
    }
    let Some(latencies) = &req.latencies else { return Ok(regions.local.clone()) };
    let measured = latencies.iter().map(|(r, ms)| (r.as_str(), *ms));
    let threshold = mm.config().latency_threshold;
    Ok(pick_region(measured, known.iter().map(String::as_str), &regions.local, threshold))
}

/// `POST /api/matchmaker/tickets`: queues a ticket for the caller and its party, or
/// redirects it (307) to its region.
pub(crate) async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    let mm = service(&state)?;
    limit(&state, &headers, client)?;
    let req: TicketRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_json(format!("invalid ticket: {e}")))?;
    let region = choose_region(&state, mm, &req)?;
    if region != state.config.regions.local {
        return redirect(&state, mm, &region, &uri);
    }
    let caller = auth::require_caller(&state, &headers, None).await?;
    let (mode, max_players) = {
        let (mode, rules) = mm.rules().resolve(&req.game, req.mode.as_deref()).map_err(mm_error)?;
        (mode, rules.max_players)
    };
    let party = party_of(&state, &caller, req.party.unwrap_or_default(), max_players).await?;
    check_params(&state, &req.game, req.params.as_ref(), max_players)?;
    let new =
        NewTicket { game: req.game, mode, region, party, skill: req.skill, params: req.params };
    let ticket = mm.queue().submit(new).await.map_err(mm_error)?;
    mm.metrics().count(TicketEvent::Created, 1);
    let location = format!("/api/matchmaker/tickets/{}", ticket.id);
    let body = json!({
        "ticket_id": ticket.id,
        "status": "queued",
        "game": ticket.game,
        "mode": ticket.mode,
        "region": ticket.region,
        "party": ticket.party,
    });
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// 307 to the same route of `region`'s URL.
fn redirect(
    state: &AppState,
    mm: &Matchmaking,
    region: &str,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let regions = &state.config.regions;
    let Some((_, url)) = regions.urls.iter().find(|(name, _)| name == region) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnknownRegion,
            format!("region {region:?} has no URL (PYLON_REGIONS)"),
        ));
    };
    mm.metrics().redirects.fetch_add(1, Ordering::Relaxed);
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let to = format!("{}{}{query}", url.trim_end_matches('/'), uri.path());
    Ok(Redirect::temporary(&to).into_response())
}

/// The ticket's players, the owner first: the caller, then the other members named (the
/// admin token names them all). Every member but the caller must have a live session.
async fn party_of(
    state: &AppState,
    caller: &Auth,
    named: Vec<String>,
    max_players: u32,
) -> Result<Vec<String>, ApiError> {
    let mut party: Vec<String> = Vec::with_capacity(named.len() + 1);
    if !caller.is_admin {
        party.push(caller.user_id.to_string());
    }
    for user in named {
        if !party.contains(&user) {
            party.push(user);
        }
    }
    let bad =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParty, message);
    if party.is_empty() {
        return Err(bad("the admin token must name the players (party)".into()));
    }
    if party.len() > MAX_PARTY.min(max_players as usize) {
        return Err(bad(format!(
            "a party of {} does not fit a match of {max_players}",
            party.len()
        )));
    }
    let now = auth::unix_now();
    for user in party.iter().filter(|u| caller.is_admin || **u != *caller.user_id) {
        let live =
            state.sessions.user_has_session(user, now).await.map_err(|e| ApiError::internal(&e))?;
        if !live {
            return Err(bad(format!("party member {user:?} has no live session"))
                .with_detail("user", json!(user))
                .with_hint("every member must be signed in (POST /api/auth/guest or your login)"));
        }
    }
    Ok(party)
}

/// The match parameters a ticket carries must be the game's and seat the whole match.
fn check_params(
    state: &AppState,
    game: &str,
    params: Option<&Value>,
    max_players: u32,
) -> Result<(), ApiError> {
    let Some(params) = params else { return Ok(()) };
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, message);
    let info = state.matches.games().info(game).map_err(|e| invalid(e.to_string()))?;
    let capacity = (info.capacity)(params).map_err(|e| invalid(e.to_string()))?;
    if capacity < max_players as usize {
        return Err(invalid(format!("these params seat {capacity}, a match has {max_players}")));
    }
    Ok(())
}

/// A matchmaker refusal as the HTTP error of docs/MATCHMAKER.md.
pub(crate) fn mm_error(e: MatchmakerError) -> ApiError {
    let (status, code) = match &e {
        MatchmakerError::UnknownGame { .. } => (StatusCode::BAD_REQUEST, ErrorCode::UnknownGame),
        MatchmakerError::UnknownMode { .. } => (StatusCode::BAD_REQUEST, ErrorCode::UnknownMode),
        MatchmakerError::InvalidName { .. } | MatchmakerError::InvalidSkill => {
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidField)
        }
        MatchmakerError::EmptyParty
        | MatchmakerError::DuplicateMember { .. }
        | MatchmakerError::PartyTooLarge { .. } => {
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidParty)
        }
        MatchmakerError::AlreadyQueued { .. } => (StatusCode::CONFLICT, ErrorCode::AlreadyQueued),
        MatchmakerError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::TicketNotFound),
        MatchmakerError::AlreadyMatched(_) => (StatusCode::CONFLICT, ErrorCode::AlreadyMatched),
        MatchmakerError::Expired(_) => (StatusCode::GONE, ErrorCode::TicketExpired),
        MatchmakerError::Cancelled(_) => (StatusCode::GONE, ErrorCode::TicketCancelled),
        MatchmakerError::BackfillDisabled { .. } => {
            (StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
        }
        MatchmakerError::Redis(_) => {
            tracing::warn!(error = %e, "matchmaker: queue unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the matchmaker queue is unavailable",
            )
            .with_hint("retry after a short delay");
        }
        _ => return ApiError::internal(&e),
    };
    let mut error = ApiError::new(status, code, e.to_string());
    match &e {
        MatchmakerError::AlreadyQueued { user, ticket } => {
            error = error.with_detail("ticket_id", json!(ticket)).with_detail("user", json!(user));
        }
        MatchmakerError::Expired(id) => {
            error =
                error.with_detail("ticket_id", json!(id)).with_detail("status", json!("expired"));
        }
        MatchmakerError::InvalidName { what, .. } => {
            error = error.with_detail("field", json!(what))
        }
        MatchmakerError::InvalidSkill => error = error.with_detail("field", json!("skill")),
        MatchmakerError::UnknownGame { .. } => {
            error = error
                .with_hint("games with a matchmaker: see docs/MATCHMAKER.md (Game::MATCHMAKING)");
        }
        _ => {}
    }
    error
}

/// The ticket, when `caller` may see it (a party member, or the admin token): 404 for an
/// unknown ticket, 403 for anyone else.
async fn ticket_for(
    mm: &Matchmaking,
    caller: &Auth,
    id: &TicketId,
) -> Result<TicketState, ApiError> {
    let found = mm.queue().status(id).await.map_err(mm_error)?;
    if !caller.is_admin && !found.ticket.party.iter().any(|u| **u == *caller.user_id) {
        return Err(ApiError::forbidden("only the ticket's party may read or cancel it"));
    }
    Ok(found)
}

/// The subscriber id a caller connects with: its user id when it is in the party, else
/// (the admin token) the ticket's owner's.
fn sid_for(caller: &Auth, ticket: &Ticket) -> String {
    if ticket.party.iter().any(|u| **u == *caller.user_id) {
        caller.user_id.to_string()
    } else {
        ticket.owner().to_owned()
    }
}

/// `{"status":"matched",…}`: the match and what a client needs to connect to it.
pub(crate) fn matched_json(
    state: &AppState,
    mm: &Matchmaking,
    a: &Assignment,
    ticket: Option<&TicketId>,
    sid: &str,
    headers: Option<&HeaderMap>,
) -> Value {
    let hold_ms = u64::try_from(mm.config().seat_hold.as_millis()).unwrap_or(u64::MAX);
    json!({
        "status": "matched",
        "ticket_id": ticket,
        "shard_id": a.match_key,
        "region": a.region,
        "ws_url": crate::regions::socket_url(&state.config.regions, &a.region, headers),
        "sid": sid,
        "expires_at": a.matched_at.saturating_add(hold_ms) / 1000,
        "game": a.game,
        "mode": a.mode,
        "backfill": a.backfill,
    })
}

/// A ticket's status as JSON, or the error it is answered with (expired: 410).
fn status_json(
    state: &AppState,
    mm: &Matchmaking,
    found: &TicketState,
    sid: &str,
    headers: Option<&HeaderMap>,
) -> Result<Value, ApiError> {
    let t = &found.ticket;
    Ok(match &found.status {
        TicketStatus::Queued { position, waiting_secs } => json!({
            "status": "queued",
            "ticket_id": t.id,
            "position": position,
            "waiting_secs": (waiting_secs * 1000.0).round() / 1000.0,
            "game": t.game,
            "mode": t.mode,
            "region": t.region,
        }),
        TicketStatus::Matched(a) => matched_json(state, mm, a, Some(&t.id), sid, headers),
        TicketStatus::Cancelled => json!({"status": "cancelled", "ticket_id": t.id}),
        _ => return Err(mm_error(MatchmakerError::Expired(t.id.clone()))),
    })
}

/// `GET /api/matchmaker/tickets/:id`.
pub(crate) async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let mm = service(&state)?;
    let id = TicketId::from(id);
    let caller = auth::require_caller(&state, &headers, None).await?;
    let found = ticket_for(mm, &caller, &id).await?;
    let sid = sid_for(&caller, &found.ticket);
    Ok(Json(status_json(&state, mm, &found, &sid, Some(&headers))?))
}

/// `DELETE /api/matchmaker/tickets/:id`: cancels a queued ticket (its players may queue
/// again at once); 409 `ALREADY_MATCHED` once matched, 410 once expired or cancelled.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let mm = service(&state)?;
    let id = TicketId::from(id);
    let caller = auth::require_caller(&state, &headers, None).await?;
    ticket_for(mm, &caller, &id).await?;
    mm.queue().cancel(&id).await.map_err(mm_error)?;
    mm.metrics().count(TicketEvent::Cancelled, 1);
    mm.closed(&id, &Push::Cancelled);
    Ok(Json(json!({"status": "cancelled", "ticket_id": id})))
}

/// `GET /api/matchmaker/tickets/:id/events` (`?token=` accepted: EventSource cannot send
/// headers): `event: queued` with the status now and every recheck, then one
/// `event: matched` (pushed the moment the match exists), `expired` or `cancelled`, and
/// the stream ends. Counted with the client address's long-lived sockets.
pub(crate) async fn events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mm = Arc::clone(service(&state)?);
    let max = state.config.limits.max_conns_per_ip;
    let slot = state.conns.acquire(peer.ip(), max).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyConnections,
            crate::limits::over_cap(max),
        )
    })?;
    let query_token = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let id = TicketId::from(id);
    // Registered before the status is read: a push in between waits in the channel.
    let waiter = mm.waiters().ticket(&id);
    let token = auth::header_token(&headers).or(query_token);
    let resolved = auth::http_session(&state, &headers, token.as_deref())
        .await?
        .ok_or_else(ApiError::auth_required)?;
    let caller = resolved.auth;
    let found = ticket_for(&mm, &caller, &id).await?;
    let live = resolved.session.map(|s| state.live.register(s, auth::unix_now()));
    let stream = TicketStream {
        sid: sid_for(&caller, &found.ticket),
        state: state.clone(),
        mm,
        id,
        waiter,
        headers,
        live,
        _slot: slot,
        recheck: None,
    };
    let first = stream.event_of(&found);
    let heartbeat = state.config.limits.sse_heartbeat;
    Ok(Sse::new(ticket_events(stream, first))
        .keep_alive(KeepAlive::new().interval(heartbeat).text(" heartbeat"))
        .into_response())
}

/// One ticket's SSE stream; it holds the client address's connection slot and its
/// waiter until it ends.
struct TicketStream {
    state: AppState,
    mm: Arc<Matchmaking>,
    id: TicketId,
    sid: String,
    waiter: Waiter,
    headers: HeaderMap,
    live: Option<LiveSession>,
    _slot: ConnSlot,
    recheck: Option<tokio::time::Interval>,
}

/// An SSE event, and whether the stream ends after it.
type Step = (Event, bool);

fn sse_event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl TicketStream {
    /// The event for a status read from the queue.
    fn event_of(&self, found: &TicketState) -> Step {
        match status_json(&self.state, &self.mm, found, &self.sid, Some(&self.headers)) {
            Ok(json) => {
                let name = json["status"].as_str().unwrap_or("queued").to_owned();
                let last = name != "queued";
                if name == "matched" {
                    self.mm.metrics().pushes_sse.fetch_add(1, Ordering::Relaxed);
                }
                (sse_event(&name, &json), last)
            }
            Err(_) => {
                (sse_event("expired", &json!({"status": "expired", "ticket_id": self.id})), true)
            }
        }
    }

    /// The event for a push.
    fn event_of_push(&self, push: Push) -> Step {
        match push {
            Push::Matched(a) => {
                self.mm.metrics().pushes_sse.fetch_add(1, Ordering::Relaxed);
                let json = matched_json(
                    &self.state,
                    &self.mm,
                    &a,
                    Some(&self.id),
                    &self.sid,
                    Some(&self.headers),
                );
                (sse_event("matched", &json), true)
            }
            Push::Expired => {
                (sse_event("expired", &json!({"status": "expired", "ticket_id": self.id})), true)
            }
            Push::Cancelled => (
                sse_event("cancelled", &json!({"status": "cancelled", "ticket_id": self.id})),
                true,
            ),
        }
    }

    /// Waits for the next event: a push, a recheck of the status, the session's end or
    /// shutdown (`None`: end without an event).
    async fn next_step(&mut self) -> Option<Step> {
        let every = self.mm.config().recheck;
        let recheck = self.recheck.get_or_insert_with(|| {
            tokio::time::interval_at(tokio::time::Instant::now() + every, every)
        });
        let mut shutdown = self.state.shutdown.clone();
        tokio::select! {
            biased;
            () = crate::shutting_down(&mut shutdown) => None,
            () = crate::sessions_live::ended(self.live.as_ref()) => {
                Some((sse_event("session_ended", &json!({"code": ErrorCode::SessionEnded})), true))
            }
            push = self.waiter.recv() => Some(self.event_of_push(push)),
            _ = recheck.tick() => match self.mm.queue().status(&self.id).await {
                Ok(found) => Some(self.event_of(&found)),
                Err(MatchmakerError::NotFound(_)) => None,
                Err(e) => {
                    tracing::warn!(error = %e, ticket = %self.id, "matchmaker: status recheck failed");
                    Some((Event::default().comment("status unavailable"), false))
                }
            },
        }
    }
}

fn ticket_events(
    stream: TicketStream,
    first: Step,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((Some(stream), Some(first)), |(stream, pending)| async move {
        let mut stream = stream?;
        let (event, last) = match pending {
            Some(step) => step,
            None => stream.next_step().await?,
        };
        let next = if last { None } else { Some(stream) };
        Some((Ok(event), (next, None)))
    })
}

/// The sync socket's frame for a ready assignment of `user`:
/// `{"type":"match","status":"matched","ticket_id","shard_id","region","ws_url","sid",…}`;
/// `origin`: the main port's `Host` as the socket's client reaches it.
pub(crate) fn socket_frame(
    state: &AppState,
    mm: &Matchmaking,
    a: &Assignment,
    user: &str,
    origin: &HeaderMap,
) -> String {
    let mut json = matched_json(state, mm, a, a.ticket_of(user), user, Some(origin));
    if let Some(map) = json.as_object_mut() {
        map.insert("type".into(), json!("match"));
    }
    json.to_string()
}
