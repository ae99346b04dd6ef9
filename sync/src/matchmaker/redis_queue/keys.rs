//! The Redis key layout of the shared queue, every key under `<namespace>:mm:`.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:mm:queues` | set | queue names `<region>:<game>:<mode>` (mode empty for none) that may hold tickets |
//! | `<ns>:mm:q:<queue>` | sorted set | queued ticket ids, scored by `created_at` (ms); ties by id |
//! | `<ns>:mm:t:<ticket>` | hash | `data` (ticket JSON), `status` (`queued`, `matched`, `expired`, `cancelled`), `assignment` (JSON, once matched); expires `closed_retention` after closing |
//! | `<ns>:mm:p:<user>` | string | the id of the user's open ticket (the one-open-ticket rule) |
//! | `<ns>:mm:lease:<queue>` | string | instance id of the process matching that queue, `PX` lease TTL |
//! | `<ns>:mm:slots` | hash | running match id -> open slot JSON (backfill) |
//! | `<ns>:mm:log` | stream | field `a`: every committed assignment's JSON (trimmed to about `log_capacity`) |

use crate::matchmaker::ticket::{QueueKey, TicketId};

/// Builds the keys of one namespace.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(namespace: &str) -> Self {
        Self { prefix: format!("{namespace}:mm:") }
    }

    /// `<region>:<game>:<mode>`; names never contain `:` (checked at submit).
    pub(super) fn queue_name(key: &QueueKey) -> String {
        format!("{}:{}:{}", key.region, key.game, key.mode.as_deref().unwrap_or(""))
    }

    /// The inverse of [`Keys::queue_name`].
    pub(super) fn parse_queue_name(name: &str) -> Option<QueueKey> {
        let mut parts = name.split(':');
        let (region, game, mode) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || region.is_empty() || game.is_empty() {
            return None;
        }
        let mode = (!mode.is_empty()).then(|| mode.to_owned());
        Some(QueueKey { region: region.to_owned(), game: game.to_owned(), mode })
    }

    pub(super) fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    pub(super) fn queue(&self, key: &QueueKey) -> String {
        format!("{}q:{}", self.prefix, Self::queue_name(key))
    }

    pub(super) fn lease(&self, key: &QueueKey) -> String {
        format!("{}lease:{}", self.prefix, Self::queue_name(key))
    }

    pub(super) fn ticket_prefix(&self) -> String {
        format!("{}t:", self.prefix)
    }

    pub(super) fn ticket(&self, id: &TicketId) -> String {
        format!("{}t:{id}", self.prefix)
    }

    pub(super) fn player(&self, user: &str) -> String {
        format!("{}p:{user}", self.prefix)
    }

    pub(super) fn slots(&self) -> String {
        format!("{}slots", self.prefix)
    }

    pub(super) fn log(&self) -> String {
        format!("{}log", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queue names round-trip, with and without a mode, and malformed ones are refused.
    #[test]
    fn queue_names_round_trip() {
        for mode in [None, Some("ranked".to_owned())] {
            let key = QueueKey { region: "eu".into(), game: "arena".into(), mode };
            assert_eq!(Keys::parse_queue_name(&Keys::queue_name(&key)), Some(key));
        }
        assert_eq!(Keys::parse_queue_name("eu:arena"), None);
        assert_eq!(Keys::parse_queue_name("eu:arena:x:y"), None);
        assert_eq!(
            Keys::new("ns").queue(&Keys::parse_queue_name("eu:a:").unwrap()),
            "ns:mm:q:eu:a:"
        );
    }
}
