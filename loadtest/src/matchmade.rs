//! `arena --matchmaker`: bots get their seats from the matchmaker instead of matches
//! created for them. Each bot signs in as a guest, files a ticket
//! (`POST /api/matchmaker/tickets`, from its own source address), opens the ticket's SSE
//! stream and waits for the pushed assignment (`event: matched`); time to match is
//! measured from sending the ticket to that event. The seats then play as in `arena`.
//!
//! The server limits tickets per address (`PYLON_TICKETS_PER_SEC_PER_IP`, default 5 a
//! second): raise it, or spread the bots over more `--source-ips`, for large runs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::arena::{ArenaConfig, Seat, source_ip};
use crate::report::Latency;

/// Bots signing in and filing tickets at once (waiting for a match holds no slot).
const FILING_AT_ONCE: usize = 64;
/// A bot whose ticket is not matched within this long gives up (counted as unmatched).
const MATCH_DEADLINE: Duration = Duration::from_secs(120);

/// The seats the matchmaker handed out, time to match, and how many bots got none.
pub struct Seated {
    /// One per matched bot.
    pub seats: Vec<Seat>,
    /// Ticket sent -> assignment pushed, per matched bot.
    pub time_to_match: Latency,
    /// Bots whose ticket failed or was not matched in time.
    pub unmatched: usize,
    /// Distinct matches the bots were seated in.
    pub matches: usize,
}

/// An HTTP client per source address (`--source-ips`), so that per-address limits see
/// the bots spread as their sockets are.
fn clients(n: u8) -> anyhow::Result<Vec<reqwest::Client>> {
    (0..usize::from(n.max(1)))
        .map(|i| {
            let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
            if let Some(ip) = source_ip(i, n) {
                builder = builder.local_address(ip);
            }
            Ok(builder.build()?)
        })
        .collect()
}

/// Files a ticket for every bot and waits for the assignments.
///
/// # Errors
/// The clients cannot be built.
pub async fn seat(base: &str, config: &ArenaConfig) -> anyhow::Result<Seated> {
    let clients = clients(config.source_ips)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(FILING_AT_ONCE));
    let params = json!({"tick_rate_hz": config.hz, "score_limit": 1_000_000, "time_limit_secs": 86_400, "max_players": 64});
    let mut bots = Vec::with_capacity(config.bots);
    for i in 0..config.bots {
        let http = clients[i % clients.len()].clone();
        let (base, gate, params) = (base.to_owned(), Arc::clone(&gate), params.clone());
        let admin = config.token.clone();
        let source = source_ip(i, config.source_ips);
        bots.push(tokio::spawn(async move {
            one_bot(&http, &base, admin.as_deref(), &gate, &params).await.map(|s| (s, source))
        }));
    }
    let mut out =
        Seated { seats: Vec::new(), time_to_match: Latency::default(), unmatched: 0, matches: 0 };
    let mut matches = BTreeSet::new();
    for bot in bots {
        match bot.await? {
            Ok(((seat, took), source)) => {
                out.time_to_match.record_us(took.as_micros() as u64);
                matches.insert(seat.shard.clone());
                out.seats.push(Seat { source, ..seat });
            }
            Err(e) => {
                out.unmatched += 1;
                eprintln!("bot not seated: {e:#}");
            }
        }
    }
    out.matches = matches.len();
    Ok(out)
}

/// One bot: a guest, its ticket and its stream (under the gate), then the wait for the
/// push. Its seat and its time to match.
async fn one_bot(
    http: &reqwest::Client,
    base: &str,
    admin: Option<&str>,
    gate: &tokio::sync::Semaphore,
    params: &Value,
) -> anyhow::Result<(Seat, Duration)> {
    let permit = gate.acquire().await?;
    let mut request = http.post(format!("{base}/api/auth/guest"));
    if let Some(token) = admin {
        request = request.bearer_auth(token);
    }
    let guest: Value = request.send().await?.error_for_status()?.json().await?;
    let token = guest["token"].as_str().context("guest reply has no token")?.to_owned();
    let user = guest["user_id"].as_str().context("guest reply has no user_id")?.to_owned();
    let sent = Instant::now();
    let body = json!({"game": "arena", "params": params});
    let reply = http
        .post(format!("{base}/api/matchmaker/tickets"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?;
    if reply.status() != 201 {
        bail!("ticket refused: {} {}", reply.status(), reply.text().await.unwrap_or_default());
    }
    let ticket: Value = reply.json().await?;
    let id = ticket["ticket_id"].as_str().context("ticket reply has no ticket_id")?;
    let events = http.get(format!("{base}/api/matchmaker/tickets/{id}/events")).bearer_auth(&token);
    let stream = events.timeout(MATCH_DEADLINE).send().await?.error_for_status()?;
    drop(permit);
    let matched = tokio::time::timeout(MATCH_DEADLINE, matched(stream))
        .await
        .context("no match in time")??;
    let took = sent.elapsed();
    let shard = matched["shard_id"].as_str().context("matched without shard_id")?.to_owned();
    let ws_url = matched["ws_url"].as_str().unwrap_or_default().to_owned();
    Ok((Seat { token, user, shard, ws_base: ws_url, source: None }, took))
}

/// Reads a ticket's SSE stream until `event: matched`; its data.
async fn matched(response: reqwest::Response) -> anyhow::Result<Value> {
    let mut body = response.bytes_stream();
    let mut buf = String::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let name = event.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
            let data = event.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim);
            match (name, data) {
                (Some("matched"), Some(data)) => return Ok(serde_json::from_str(data)?),
                (Some("expired" | "cancelled"), _) => bail!("ticket closed: {event}"),
                _ => {}
            }
        }
        let chunk = body.next().await.context("the stream ended before a match")??;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}
