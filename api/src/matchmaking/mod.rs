//! The matchmaker service (docs/MATCHMAKER.md) around `pylon_sync::matchmaker`'s core;
//! the HTTP routes are [`crate::matchmaker`].
//!
//! - [`rules_from`]: the queue's rules from the game registry (`Game::MATCHMAKING`), with
//!   the core's documented defaults for skill windows and timeouts, and the overrides an
//!   `App` registered.
//! - [`Matchmaking::start`]: the matcher on the tokio runtime with a [`host::Host`] that
//!   makes each match in this process before its assignment is committed; a task that
//!   takes every committed assignment, publishes a `match_ready` notice on the cluster
//!   bus and pushes it to this process's waiters ([`waiters`]: ticket SSE streams, the
//!   players' sync sockets); every other process pushes the notice to its own
//!   ([`Matchmaking::ready`], called by `crate::cluster`); a task that keeps the backfill
//!   slots of this process's matches current ([`seats`]).
//! - The metrics (`pylon_matchmaker_*`): [`metrics`].
//!
//! Must never: run on a tick thread, or make a request wait on a matching pass (requests
//! only submit, read and cancel tickets).

pub mod host;
pub mod metrics;
pub mod seats;
pub mod waiters;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pylon_shard::GameRegistry;
use pylon_sync::matchmaker::{
    Assignment, GameRules, MatchEvent, MatcherConfig, MatcherHandle, MatchmakerError, Queue, Rules,
    TicketId, spawn_matcher_with,
};
use pylon_sync::{ClusterBus, Notice};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use self::host::Host;
use self::metrics::{Gauges, MatchmakerMetrics, TicketEvent};
use self::seats::Seats;
use self::waiters::{Push, Waiters};
use crate::AppState;

/// Default [`MatchmakingConfig::seat_hold`]: an assigned seat is kept for its player for
/// 20 s (the status's `expires_at`); after that a backfill game offers it again.
pub const DEFAULT_SEAT_HOLD: Duration = Duration::from_secs(20);
/// Default [`MatchmakingConfig::recheck`]: a ticket's SSE stream re-reads its status
/// every 5 s (its position, and the assignment or expiry should a push from another
/// process be lost). A memory queue's position costs a scan of the older tickets, so
/// not every second.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(5);

/// The longest a stopping matchmaker holds up shutdown.
pub const STOP_WITHIN: Duration = Duration::from_secs(5);

/// How the service runs.
#[derive(Debug, Clone)]
pub struct MatchmakingConfig {
    /// The matcher's pass interval and event buffer (`pylon_sync` defaults: 250 ms).
    pub matcher: MatcherConfig,
    /// How long an assigned seat is held ([`DEFAULT_SEAT_HOLD`]).
    pub seat_hold: Duration,
    /// Latencies above this do not choose a ticket's region (80 ms).
    pub latency_threshold: Duration,
    /// How often a ticket's SSE stream re-reads its status ([`DEFAULT_RECHECK`]).
    pub recheck: Duration,
}

impl Default for MatchmakingConfig {
    fn default() -> Self {
        Self {
            matcher: MatcherConfig::default(),
            seat_hold: DEFAULT_SEAT_HOLD,
            latency_threshold: pylon_sync::matchmaker::DEFAULT_LATENCY_THRESHOLD,
            recheck: DEFAULT_RECHECK,
        }
    }
}

/// The matchmaker rules of the games in `registry` that declare `Game::MATCHMAKING`:
/// sizes, modes and backfill from the declaration, tickets expiring after
/// `ticket_timeout` (`PYLON_TICKET_TIMEOUT_SECS`, the core's default 120 s), skill window
/// and fill timeout at the core's defaults; then `overrides` (an `App`'s, by game name)
/// replace a game's rules whole.
///
/// # Errors
/// An override for a game that is not registered or not matchmade, bad game or mode
/// names.
pub fn rules_from(
    registry: &GameRegistry,
    overrides: &[(String, GameRules)],
    ticket_timeout: Duration,
) -> Result<Rules, MatchmakerError> {
    let mut rules = Rules::new();
    for info in registry.infos() {
        let Some(m) = info.matchmaking else { continue };
        let mut base = GameRules::flexible(m.min_players, m.max_players)
            .with_modes(m.modes.iter().copied())
            .with_backfill(m.backfill);
        base.ticket_timeout = ticket_timeout;
        rules.register(info.name, base)?;
    }
    for (game, custom) in overrides {
        if !rules.games().any(|g| g == game) {
            return Err(MatchmakerError::UnknownGame { game: game.clone() });
        }
        rules.register(game, custom.clone())?;
    }
    Ok(rules)
}

/// The running matchmaker of this process.
pub struct Matchmaking {
    queue: Arc<Queue>,
    config: MatchmakingConfig,
    matcher: Mutex<Option<MatcherHandle>>,
    waiters: Arc<Waiters>,
    seats: Arc<Seats>,
    metrics: Arc<MatchmakerMetrics>,
}

impl Matchmaking {
    /// The service over `queue` (its rules: [`rules_from`]); nothing runs until
    /// [`Matchmaking::start`].
    #[must_use]
    pub fn new(queue: Queue, config: MatchmakingConfig) -> Self {
        let seats = Arc::new(Seats::new(queue.rules().clone(), config.seat_hold));
        Self {
            queue: Arc::new(queue),
            config,
            matcher: Mutex::new(None),
            waiters: Arc::new(Waiters::default()),
            seats,
            metrics: Arc::new(MatchmakerMetrics::default()),
        }
    }

    /// The queue.
    #[must_use]
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// The rules tickets are checked and matched with.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        self.queue.rules()
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &MatchmakingConfig {
        &self.config
    }

    /// The local waiters.
    #[must_use]
    pub fn waiters(&self) -> &Arc<Waiters> {
        &self.waiters
    }

    /// The counters.
    #[must_use]
    pub fn metrics(&self) -> &MatchmakerMetrics {
        &self.metrics
    }

    /// Starts the matcher (making matches in `state`'s table) and the tasks beside it:
    /// the fan-out of committed assignments and the backfill slot sync. They end at
    /// shutdown; [`Matchmaking::stop`] stops the matcher first.
    pub(crate) fn start(self: &Arc<Self>, state: &AppState) -> Vec<JoinHandle<()>> {
        let max = usize::try_from(state.config.limits.max_matches).unwrap_or(usize::MAX);
        let host = Host::new(
            Arc::clone(&state.matches),
            max,
            Arc::clone(&self.seats),
            Arc::clone(&self.metrics),
        );
        let matcher = spawn_matcher_with(self.queue.clone(), &self.config.matcher, Arc::new(host));
        let events = matcher.subscribe();
        *self.matcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(matcher);
        let follow = follow(Arc::clone(self), events, state.bus.clone(), state.shutdown.clone());
        let slots = keep_slots(Arc::clone(self), state.clone());
        vec![tokio::spawn(follow), tokio::spawn(slots)]
    }

    /// Stops the matcher after its pass in flight, releases its Redis leases (another
    /// process takes over at once) and withdraws this process's backfill slots; gives up
    /// after [`STOP_WITHIN`] (Redis down: the leases lapse on their own).
    pub(crate) async fn stop(&self) {
        let matcher = self.matcher.lock().unwrap_or_else(PoisonError::into_inner).take();
        let stop = async {
            if let Some(matcher) = matcher {
                matcher.stop().await;
            }
            self.seats.withdraw_all(&self.queue).await;
        };
        if tokio::time::timeout(STOP_WITHIN, stop).await.is_err() {
            tracing::warn!("matchmaker: not stopped cleanly within 5 s (its leases lapse)");
        }
    }

    /// An assignment whose match exists (committed by this process's matcher, or heard of
    /// on the bus): pushed to this process's waiters; a backfill into one of this
    /// process's matches holds its seats.
    pub fn ready(&self, assignment: &Arc<Assignment>) {
        if assignment.backfill {
            self.seats.backfilled(assignment);
        }
        self.waiters.matched(assignment);
    }

    /// A ticket closed without a match here (expired in this process's matcher, or
    /// cancelled through it): its local SSE streams end with it.
    pub fn closed(&self, id: &TicketId, push: &Push) {
        self.waiters.closed(id, push);
    }

    /// The `pylon_matchmaker_*` families.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let queued = self
            .matcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(MatcherHandle::queue_lengths)
            .unwrap_or_default();
        let gauges = Gauges {
            queued: &queued,
            offered: self.seats.offered(),
            waiters: self.waiters.counts(),
        };
        self.metrics.render(out, &gauges);
    }
}

/// Takes this process's committed assignments and expiries until shutdown: counts them,
/// tells the other processes (a `match_ready` notice) and this process's waiters.
async fn follow(
    mm: Arc<Matchmaking>,
    mut events: tokio::sync::broadcast::Receiver<MatchEvent>,
    bus: ClusterBus,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            biased;
            () = crate::shutting_down(&mut shutdown) => return,
            event = events.recv() => event,
        };
        match event {
            Ok(MatchEvent::Matched(a)) => {
                mm.metrics.matched(&a);
                Notice::MatchReady { assignment: Arc::clone(&a) }.publish(&bus);
                mm.ready(&a);
            }
            Ok(MatchEvent::Expired(id)) => {
                mm.metrics.count(TicketEvent::Expired, 1);
                mm.closed(&id, &Push::Expired);
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "matchmaker: pushes dropped (waiters read the status)");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Keeps the backfill slots of this process's matches current, every pass interval,
/// until shutdown.
async fn keep_slots(mm: Arc<Matchmaking>, state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut every =
        tokio::time::interval(mm.config.matcher.interval.max(Duration::from_millis(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = crate::shutting_down(&mut shutdown) => return,
            _ = every.tick() => mm.seats.sync(&state.matches, &mm.queue).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use pylon_sync::matchmaker::QueueKey;

    use super::*;

    fn key(game: &str) -> QueueKey {
        QueueKey { region: "eu".into(), game: game.into(), mode: None }
    }

    /// The registry's declarations become the rules (arena 8 with backfill, tictactoe
    /// 2), with the ticket timeout given and the core's skill window; an App's override
    /// replaces a game's rules whole; an override for a game without a matchmaker is
    /// refused.
    #[test]
    fn rules_from_the_registry() {
        let games = GameRegistry::builtin();
        let rules = rules_from(&games, &[], Duration::from_secs(30)).unwrap();
        let arena = rules.for_queue(&key("arena")).unwrap();
        assert_eq!((arena.min_players, arena.max_players, arena.backfill), (8, 8, true));
        assert_eq!(arena.ticket_timeout, Duration::from_secs(30));
        assert_eq!(arena.skill_window, pylon_sync::matchmaker::SkillWindow::default());
        let ttt = rules.for_queue(&key("tictactoe")).unwrap();
        assert_eq!((ttt.max_players, ttt.backfill), (2, false));
        let custom = GameRules::flexible(2, 4).with_modes(["duo"]);
        let rules =
            rules_from(&games, &[("arena".into(), custom.clone())], Duration::from_secs(30));
        let rules = rules.unwrap();
        assert!(rules.for_queue(&key("arena")).is_none(), "arena now has modes");
        assert_eq!(rules.resolve("arena", None).unwrap().1.max_players, 4);
        let bad =
            rules_from(&GameRegistry::empty(), &[("arena".into(), custom)], Duration::from_secs(1));
        assert!(matches!(bad, Err(MatchmakerError::UnknownGame { .. })));
    }
}
