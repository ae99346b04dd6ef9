//! The matchmaker's typed errors: what the API turns into 400, 404, 409 and 410 answers,
//! and what a queue backend reports when its storage fails.

use thiserror::Error;

use super::ticket::TicketId;

/// A refused matchmaker operation or a failed queue backend.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MatchmakerError {
    /// No rules are registered for this game (API: 400).
    #[error("unknown game `{game}`")]
    UnknownGame {
        /// The game named by the request.
        game: String,
    },
    /// The game is registered but does not offer this mode, or needs one (API: 400).
    #[error("game `{game}` has no mode `{mode}`")]
    UnknownMode {
        /// The game.
        game: String,
        /// The requested mode (empty when a mode was required but none was given).
        mode: String,
    },
    /// A region, game or mode name is empty, too long or uses characters other than
    /// ASCII letters, digits, `_`, `-` and `.` (API: 400).
    #[error("invalid {what} `{value}`")]
    InvalidName {
        /// Which field: "region", "game", "mode", "user" or "match".
        what: &'static str,
        /// The refused value.
        value: String,
    },
    /// The ticket names no player (API: 400).
    #[error("a ticket needs at least one player")]
    EmptyParty,
    /// A user id appears twice in the party (API: 400).
    #[error("user `{user}` is listed twice in the party")]
    DuplicateMember {
        /// The repeated user id.
        user: String,
    },
    /// The party has more players than a match of this game and mode holds (API: 400).
    #[error("a party of {size} does not fit a match of at most {max}")]
    PartyTooLarge {
        /// Players in the party.
        size: usize,
        /// The mode's `max_players`.
        max: u32,
    },
    /// The skill is NaN or infinite (API: 400).
    #[error("skill must be a finite number")]
    InvalidSkill,
    /// A player of the new ticket already has an open (queued) ticket (API: 409).
    #[error("user `{user}` already has the open ticket {ticket}")]
    AlreadyQueued {
        /// The player who is already queued.
        user: String,
        /// Their open ticket.
        ticket: TicketId,
    },
    /// No ticket has this id, or it was closed longer ago than the retention (API: 404).
    #[error("no ticket {0}")]
    NotFound(TicketId),
    /// The ticket is already matched and can no longer be cancelled (API: 409).
    #[error("ticket {0} is already matched")]
    AlreadyMatched(TicketId),
    /// The ticket waited longer than its mode's `ticket_timeout` (API: 410).
    #[error("ticket {0} has expired")]
    Expired(TicketId),
    /// The ticket was cancelled before (API: 410).
    #[error("ticket {0} was cancelled")]
    Cancelled(TicketId),
    /// Open slots were offered for a game and mode whose rules do not enable backfill
    /// (API: 400).
    #[error("game `{game}` does not backfill running matches")]
    BackfillDisabled {
        /// The game.
        game: String,
    },
    /// The Redis queue's connection or command failed (API: 503).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored record did not decode (API: 500); names the key.
    #[error("corrupt matchmaker record `{key}`: {reason}")]
    Corrupt {
        /// The Redis key (or ticket id) whose value is bad.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The OS gave no randomness for a ticket id (API: 500).
    #[error("no randomness available: {0}")]
    Random(String),
}
