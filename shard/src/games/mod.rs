//! Built-in games and the registry that creates matches by game name.

pub mod arena;
pub mod tictactoe;

use crate::error::ShardError;
use crate::game::{Game, Matchmaking};
use crate::replay::{ReplayLog, replay};
use crate::runtime::{DynShard, MatchConfig, SavedMatch, Shard};

/// Creates a boxed shard of one game type.
pub type ShardFactory = fn(&MatchConfig) -> Result<Box<dyn DynShard>, ShardError>;
/// Replays a log of one game type (see [`crate::replay::replay`]).
pub type ReplayFn = fn(&ReplayLog, &mut dyn FnMut(u64, u64)) -> Result<u64, ShardError>;

/// Rebuilds a boxed shard of one game type from a saved match.
pub type RestoreFn = fn(&SavedMatch) -> Result<Box<dyn DynShard>, ShardError>;

/// How many subscribers a match of one game type with these parameters seats.
pub type CapacityFn = fn(&serde_json::Value) -> Result<usize, ShardError>;

/// What the server needs to know about a game type beyond making its matches.
#[derive(Debug, Clone, Copy)]
pub struct GameInfo {
    /// `Game::NAME`.
    pub name: &'static str,
    /// `Game::LISTED`.
    pub listed: bool,
    /// `Game::limits(params).max_subscribers`.
    pub capacity: CapacityFn,
    /// `Game::MATCHMAKING`: how the matchmaker seats this game (`None`: it does not).
    pub matchmaking: Option<Matchmaking>,
}

fn capacity<G: Game>(params: &serde_json::Value) -> Result<usize, ShardError> {
    let params: G::Params = if params.is_null() {
        G::Params::default()
    } else {
        serde_json::from_value(params.clone())
            .map_err(|source| ShardError::BadParams { game: G::NAME, source })?
    };
    Ok(G::limits(&params).max_subscribers)
}

fn factory<G: Game>(config: &MatchConfig) -> Result<Box<dyn DynShard>, ShardError> {
    Ok(Box::new(Shard::<G>::new(config)?))
}

fn restorer<G: Game>(saved: &SavedMatch) -> Result<Box<dyn DynShard>, ShardError> {
    Ok(Box::new(Shard::<G>::restore(saved)?))
}

/// The game types a process can run, by name.
#[derive(Debug, Clone, Default)]
pub struct GameRegistry {
    games: Vec<(&'static str, ShardFactory, ReplayFn, RestoreFn)>,
    info: Vec<GameInfo>,
}

impl GameRegistry {
    /// A registry with no games.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in games: `arena` and `tictactoe`.
    #[must_use]
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        registry.register::<arena::Arena>();
        registry.register::<tictactoe::TicTacToe>();
        registry
    }

    /// Adds game `G` (replacing a game of the same name).
    pub fn register<G: Game>(&mut self) {
        self.games.retain(|(name, ..)| *name != G::NAME);
        self.games.push((G::NAME, factory::<G>, replay::<G>, restorer::<G>));
        self.info.retain(|i| i.name != G::NAME);
        self.info.push(GameInfo {
            name: G::NAME,
            listed: G::LISTED,
            capacity: capacity::<G>,
            matchmaking: G::MATCHMAKING,
        });
    }

    /// What the server needs to know about game `name`.
    ///
    /// # Errors
    /// [`ShardError::UnknownGame`].
    pub fn info(&self, name: &str) -> Result<GameInfo, ShardError> {
        self.info
            .iter()
            .find(|i| i.name == name)
            .copied()
            .ok_or_else(|| ShardError::UnknownGame(name.to_owned()))
    }

    /// What the server needs to know about every game, in registration order.
    pub fn infos(&self) -> impl Iterator<Item = &GameInfo> + '_ {
        self.info.iter()
    }

    /// Registered names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.games.iter().map(|(name, ..)| *name)
    }

    /// Creates a match of game `name`.
    ///
    /// # Errors
    /// [`ShardError::UnknownGame`], or the game's parameter error.
    pub fn create(
        &self,
        name: &str,
        config: &MatchConfig,
    ) -> Result<Box<dyn DynShard>, ShardError> {
        let (_, make, ..) = self.find(name)?;
        make(config)
    }

    /// Replays a log with the game it names; returns the final state hash.
    ///
    /// # Errors
    /// [`ShardError::UnknownGame`], or the replay's error.
    pub fn replay(
        &self,
        log: &ReplayLog,
        on_tick: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ShardError> {
        let (_, _, run, _) = self.find(&log.game)?;
        run(log, on_tick)
    }

    /// Rebuilds a saved match with the game it names.
    ///
    /// # Errors
    /// [`ShardError::UnknownGame`], or the game's restore error.
    pub fn restore(&self, saved: &SavedMatch) -> Result<Box<dyn DynShard>, ShardError> {
        let (.., restore) = self.find(&saved.game)?;
        restore(saved)
    }

    #[allow(clippy::type_complexity, reason = "one private lookup")]
    fn find(
        &self,
        name: &str,
    ) -> Result<&(&'static str, ShardFactory, ReplayFn, RestoreFn), ShardError> {
        self.games
            .iter()
            .find(|(n, ..)| *n == name)
            .ok_or_else(|| ShardError::UnknownGame(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry exposes each game's matchmaking declaration: arena 8 with backfill,
    /// tictactoe 2 without; a game that declares none has `None`.
    #[test]
    fn matchmaking_from_the_registration() {
        let registry = GameRegistry::builtin();
        let arena = registry.info("arena").ok().and_then(|i| i.matchmaking);
        assert_eq!(
            arena,
            Some(Matchmaking { min_players: 8, max_players: 8, modes: &[], backfill: true })
        );
        let ttt = registry.info("tictactoe").ok().and_then(|i| i.matchmaking);
        assert_eq!(ttt, Some(Matchmaking::fixed(2)));
        assert_eq!(registry.infos().count(), 2);
    }
}
