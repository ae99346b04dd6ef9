//! Every way pylon ends a WebSocket, as one enum: each variant has its code and a fixed,
//! readable reason (docs/PROTOCOL.md, "Close codes"). Internal causes are logged where
//! they happen and never reach a close frame; only a few variants carry a value the
//! client needs (the owner region's URL, a limit).

use std::borrow::Cow;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};

/// Why a socket is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Close {
    /// 1000: the client closed (our answer to its close frame).
    Normal,
    /// 1000: the match finished.
    MatchFinished,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1008: no token.
    AuthRequired,
    /// 1008: an unknown, expired or revoked token.
    InvalidToken,
    /// 1008: the session was logged out or expired while the socket was open.
    SessionEnded,
    /// 1008: the caller may not subscribe with this sid.
    Forbidden,
    /// 1009: a frame over the size limit (bytes).
    TooBig(usize),
    /// 1011: a server fault (details are in the server log).
    Internal,
    /// 1011: a game system panicked and the match was stopped.
    GameError,
    /// 1013: the server is busy (a queue was full, the join answer was late).
    Busy,
    /// 1013: the shard has no free seat.
    ShardFull,
    /// 1013: the match was stopped.
    MatchStopped,
    /// 1013: the match was stopped for being idle.
    MatchIdle,
    /// 1013: the match had already finished.
    AlreadyFinished,
    /// 1013: the client accepted no data for the idle timeout.
    TooSlow,
    /// 1013: the client fell so far behind that frames it must get were dropped.
    FramesDropped,
    /// 1013: the server runs without an entity store.
    NoEntityStore,
    /// 4400: a malformed request or frame; the reason says which rule it broke.
    BadRequest(BadRequest),
    /// 4404: no such shard.
    UnknownShard,
    /// 4408: nothing received within the idle timeout.
    Idle,
    /// 4409: the same sid connected on a newer socket, which took over.
    Replaced,
    /// 4410: the change log no longer holds the feed's position.
    Resync,
    /// 4421: the match lives in another region; the reason is that region's URL.
    WrongRegion(String),
    /// 4429: too many inputs per second.
    InputRate,
    /// 4429: too many sockets from this address (the cap).
    TooManySockets(u32),
    /// 4429: too many presence or topic frames per second on a sync socket.
    FrameRate,
}

/// The fixed reasons of [`Close::BadRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadRequest {
    /// The socket URL has no `shard`.
    MissingShard,
    /// `format` is not binary, json or msgpack, `delta` is not 0, 1, 2 (or false, true), or
    /// deltas are asked for without msgpack.
    UnknownFormat,
    /// A client frame that does not decode.
    MalformedFrame,
    /// The WebSocket protocol was broken (bad opcode, invalid UTF-8 text, …).
    Protocol,
    /// A feed's `since` is not a whole number.
    Since,
    /// A feed frame that is not a JSON object of a known `type`.
    FeedFrame,
}

impl BadRequest {
    fn reason(self) -> &'static str {
        match self {
            Self::MissingShard => "missing query parameter: shard",
            Self::UnknownFormat => {
                "unknown format or delta: use binary, json, or msgpack (delta=1 or 2 needs msgpack)"
            }
            Self::MalformedFrame => "malformed frame",
            Self::Protocol => "protocol error",
            Self::Since => "since must be a whole number",
            Self::FeedFrame => "unknown frame: expected a JSON object with a known type",
        }
    }
}

impl Close {
    /// The close code.
    #[must_use]
    pub fn code(&self) -> u16 {
        match self {
            Self::Normal | Self::MatchFinished => 1000,
            Self::GoingAway => 1001,
            Self::AuthRequired | Self::InvalidToken | Self::SessionEnded | Self::Forbidden => 1008,
            Self::TooBig(_) => 1009,
            Self::Internal | Self::GameError => 1011,
            Self::Busy
            | Self::ShardFull
            | Self::MatchStopped
            | Self::MatchIdle
            | Self::AlreadyFinished
            | Self::TooSlow
            | Self::FramesDropped
            | Self::NoEntityStore => 1013,
            Self::BadRequest(_) => 4400,
            Self::UnknownShard => 4404,
            Self::Idle => 4408,
            Self::Replaced => 4409,
            Self::Resync => 4410,
            Self::WrongRegion(_) => 4421,
            Self::InputRate | Self::TooManySockets(_) | Self::FrameRate => 4429,
        }
    }

    /// The reason sent with the code.
    #[must_use]
    pub fn reason(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::Normal => "bye",
            Self::MatchFinished | Self::AlreadyFinished => "match finished",
            Self::GoingAway => "server shutting down",
            Self::AuthRequired => "authentication required",
            Self::InvalidToken => "invalid or expired token",
            Self::SessionEnded => "session ended",
            Self::Forbidden => "forbidden: cannot subscribe with this sid",
            Self::TooBig(limit) => return format!("frame too large (limit {limit} bytes)").into(),
            Self::Internal => "server error",
            Self::GameError => "match stopped: game error",
            Self::Busy => "server busy, try again",
            Self::ShardFull => "shard full",
            Self::MatchStopped => "match stopped",
            Self::MatchIdle => "match stopped: idle",
            Self::TooSlow => "too slow: not reading",
            Self::FramesDropped => "too slow: frames dropped",
            Self::NoEntityStore => "no entity store",
            Self::BadRequest(why) => why.reason(),
            Self::UnknownShard => "unknown shard",
            Self::Idle => "idle timeout",
            Self::Replaced => "replaced by a newer connection for this sid",
            Self::Resync => "resync required",
            Self::WrongRegion(url) => return url.clone().into(),
            Self::InputRate => "too many inputs per second",
            Self::FrameRate => "too many presence frames per second",
            Self::TooManySockets(max) => return crate::limits::over_cap(*max).into(),
        })
    }

    /// The close frame: code and reason, the reason cut at a character boundary to the 123
    /// bytes a close reason may hold.
    #[must_use]
    pub fn message(&self) -> Message {
        let why = self.reason();
        let mut end = why.len().min(123);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        let reason = Utf8Bytes::from(&why[..end]);
        Message::Close(Some(CloseFrame { code: self.code(), reason }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// Long reasons are cut to 123 bytes on a character boundary; codes match the table.
    #[test]
    fn frames_and_codes() {
        let url = format!("https://{}.example.com", "é".repeat(100));
        let Message::Close(Some(frame)) = Close::WrongRegion(url).message() else { panic!() };
        assert_eq!(frame.code, 4421);
        assert!(frame.reason.len() <= 123);
        assert_eq!(Close::TooBig(65536).reason(), "frame too large (limit 65536 bytes)");
        assert_eq!(Close::BadRequest(BadRequest::Since).code(), 4400);
        assert_eq!(Close::SessionEnded.code(), 1008);
    }
}
