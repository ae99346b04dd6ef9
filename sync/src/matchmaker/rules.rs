//! Per game and mode matchmaking rules, registered by the caller from its game registry:
//! match size, skill window, timeouts and backfill, with documented defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::MatchmakerError;
use super::ticket::{QueueKey, check_name};

/// Default [`SkillWindow::start`]: tickets within 100 skill points match at once.
pub const DEFAULT_SKILL_START: f64 = 100.0;
/// Default [`SkillWindow::widen_per_sec`]: the window grows by 50 points per second waited.
pub const DEFAULT_SKILL_WIDEN_PER_SEC: f64 = 50.0;
/// Default [`SkillWindow::unbounded_after`]: after 30 s of waiting a ticket matches any
/// skill.
pub const DEFAULT_SKILL_UNBOUNDED_AFTER: Duration = Duration::from_secs(30);
/// Default [`GameRules::ticket_timeout`]: a ticket still queued after 120 s expires.
pub const DEFAULT_TICKET_TIMEOUT: Duration = Duration::from_secs(120);
/// Default [`GameRules::fill_timeout`]: a flexible-size match forms below its maximum once
/// its oldest ticket has waited 10 s.
pub const DEFAULT_FILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How far apart in skill two tickets may be, growing with the time a ticket has waited.
///
/// A ticket's window is `min(start + widen_per_sec * waited_secs, max)`, and infinite once
/// it has waited `unbounded_after`. Two tickets are compatible when each one's skill lies
/// within the other's window: `|a - b| <= window(a)` and `|a - b| <= window(b)`. A ticket
/// without a skill is compatible with every ticket (and a ticket's window never excludes
/// it): skill is a preference, not a gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkillWindow {
    /// Width at creation ([`DEFAULT_SKILL_START`]).
    pub start: f64,
    /// Growth per second of waiting ([`DEFAULT_SKILL_WIDEN_PER_SEC`]).
    pub widen_per_sec: f64,
    /// Cap of the width before `unbounded_after` (default: infinite, no cap).
    pub max: f64,
    /// Waiting time after which the window is infinite ([`DEFAULT_SKILL_UNBOUNDED_AFTER`];
    /// `None`: never, the window stays at most `max`).
    pub unbounded_after: Option<Duration>,
}

impl Default for SkillWindow {
    fn default() -> Self {
        Self {
            start: DEFAULT_SKILL_START,
            widen_per_sec: DEFAULT_SKILL_WIDEN_PER_SEC,
            max: f64::INFINITY,
            unbounded_after: Some(DEFAULT_SKILL_UNBOUNDED_AFTER),
        }
    }
}

impl SkillWindow {
    /// The window's width after waiting `waited_ms` milliseconds.
    #[must_use]
    pub fn width(&self, waited_ms: u64) -> f64 {
        let waited = Duration::from_millis(waited_ms);
        if self.unbounded_after.is_some_and(|after| waited >= after) {
            return f64::INFINITY;
        }
        let grown = self.start + self.widen_per_sec * waited.as_secs_f64();
        grown.min(self.max).max(0.0)
    }
}

/// The matchmaking rules of one game (and optionally one of its modes).
#[derive(Debug, Clone, PartialEq)]
pub struct GameRules {
    /// The smallest match that may form (after `fill_timeout`); `1..=max_players`.
    pub min_players: u32,
    /// The match size; a match always forms as soon as it is reached.
    pub max_players: u32,
    /// The modes a ticket may ask for; the first is the default. Empty: the game has no
    /// modes and a ticket must not name one.
    pub modes: Vec<String>,
    /// How skill limits who plays whom.
    pub skill_window: SkillWindow,
    /// How long a ticket may stay queued before it expires ([`DEFAULT_TICKET_TIMEOUT`]).
    pub ticket_timeout: Duration,
    /// With `min_players < max_players`: how long the oldest ticket of a candidate match
    /// waits for a full match before one of at least `min_players` forms
    /// ([`DEFAULT_FILL_TIMEOUT`]).
    pub fill_timeout: Duration,
    /// Whether running matches with free slots are filled before new matches form
    /// (default `false`).
    pub backfill: bool,
}

impl GameRules {
    /// A fixed match size of `players` (arena 8, tictactoe 2) with the default window,
    /// timeouts, no modes and no backfill.
    #[must_use]
    pub fn fixed(players: u32) -> Self {
        Self::flexible(players, players)
    }

    /// A match of `min..=max` players: it forms at `max`, or at `min` or more once its
    /// oldest ticket waited `fill_timeout`. Values are clamped to `1 <= min <= max`.
    #[must_use]
    pub fn flexible(min: u32, max: u32) -> Self {
        let max = max.max(1);
        Self {
            min_players: min.clamp(1, max),
            max_players: max,
            modes: Vec::new(),
            skill_window: SkillWindow::default(),
            ticket_timeout: DEFAULT_TICKET_TIMEOUT,
            fill_timeout: DEFAULT_FILL_TIMEOUT,
            backfill: false,
        }
    }

    /// These rules with the given modes (the first is the default).
    #[must_use]
    pub fn with_modes<S: Into<String>>(mut self, modes: impl IntoIterator<Item = S>) -> Self {
        self.modes = modes.into_iter().map(Into::into).collect();
        self
    }

    /// These rules with backfill switched on or off.
    #[must_use]
    pub fn with_backfill(mut self, backfill: bool) -> Self {
        self.backfill = backfill;
        self
    }

    fn normalized(mut self) -> Self {
        self.max_players = self.max_players.max(1);
        self.min_players = self.min_players.clamp(1, self.max_players);
        self
    }
}

/// The rules of every game the matchmaker knows, with per-mode overrides.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    games: BTreeMap<String, GameRules>,
    modes: BTreeMap<(String, String), GameRules>,
}

impl Rules {
    /// No games.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) `game` with `rules`, used for every one of its modes that
    /// has no override. Sizes are clamped as in [`GameRules::flexible`].
    ///
    /// # Errors
    /// [`MatchmakerError::InvalidName`] for a bad game or mode name.
    pub fn register(&mut self, game: &str, rules: GameRules) -> Result<&mut Self, MatchmakerError> {
        check_name("game", game)?;
        for mode in &rules.modes {
            check_name("mode", mode)?;
        }
        self.games.insert(game.to_owned(), rules.normalized());
        Ok(self)
    }

    /// Overrides the rules of one mode of a registered game (its `modes` list is ignored).
    ///
    /// # Errors
    /// [`MatchmakerError::UnknownGame`] or [`MatchmakerError::UnknownMode`] when the game
    /// is not registered or does not list the mode.
    pub fn register_mode(
        &mut self,
        game: &str,
        mode: &str,
        rules: GameRules,
    ) -> Result<&mut Self, MatchmakerError> {
        let base = self
            .games
            .get(game)
            .ok_or_else(|| MatchmakerError::UnknownGame { game: game.to_owned() })?;
        if !base.modes.iter().any(|m| m == mode) {
            return Err(MatchmakerError::UnknownMode {
                game: game.to_owned(),
                mode: mode.to_owned(),
            });
        }
        let rules = GameRules { modes: base.modes.clone(), ..rules.normalized() };
        self.modes.insert((game.to_owned(), mode.to_owned()), rules);
        Ok(self)
    }

    /// The mode a ticket for `game` asking for `mode` is queued under (the game's default
    /// mode when none is asked and the game has modes) and that mode's rules.
    ///
    /// # Errors
    /// [`MatchmakerError::UnknownGame`] or [`MatchmakerError::UnknownMode`].
    pub fn resolve(
        &self,
        game: &str,
        mode: Option<&str>,
    ) -> Result<(Option<String>, &GameRules), MatchmakerError> {
        let base = self
            .games
            .get(game)
            .ok_or_else(|| MatchmakerError::UnknownGame { game: game.to_owned() })?;
        let unknown =
            |m: &str| MatchmakerError::UnknownMode { game: game.to_owned(), mode: m.to_owned() };
        let mode = match (mode, base.modes.first()) {
            (None, None) => return Ok((None, base)),
            (Some(m), None) => return Err(unknown(m)),
            (None, Some(first)) => first.clone(),
            (Some(m), Some(_)) if base.modes.iter().any(|x| x == m) => m.to_owned(),
            (Some(m), Some(_)) => return Err(unknown(m)),
        };
        let rules = self.modes.get(&(game.to_owned(), mode.clone())).unwrap_or(base);
        Ok((Some(mode), rules))
    }

    /// The rules of one queue, if its game (and mode) is known here.
    #[must_use]
    pub fn for_queue(&self, key: &QueueKey) -> Option<&GameRules> {
        match self.resolve(&key.game, key.mode.as_deref()) {
            Ok((mode, rules)) if mode == key.mode => Some(rules),
            _ => None,
        }
    }

    /// When `ticket` expires if still queued (Unix ms), by its queue's `ticket_timeout`;
    /// `None` when its game is no longer registered here.
    #[must_use]
    pub fn expires_at(&self, ticket: &super::Ticket) -> Option<u64> {
        let rules = self.for_queue(&ticket.queue_key())?;
        let timeout = u64::try_from(rules.ticket_timeout.as_millis()).unwrap_or(u64::MAX);
        Some(ticket.created_at.saturating_add(timeout))
    }

    /// The registered game names, sorted.
    pub fn games(&self) -> impl Iterator<Item = &str> {
        self.games.keys().map(String::as_str)
    }
}
