//! pylon-sync: the transport-free logic of the change feeds, the cluster bus between
//! processes, and the matchmaker's queues.
//!
//! Must never: depend on HTTP types; transports live in `pylon-api`. The change log
//! itself is durable and lives in storage (`pylon_storage`), so a subscriber that falls
//! behind the hub's bounded buffer catches up from the log, never from memory.
//!
//! Layout:
//! - [`feed`]: [`Feeds`] (publish committed changes, answer pulls, open live feeds) and
//!   [`Feed`] (one subscriber's ordered, policy-filtered events);
//! - [`hub`]: the in-process bounded broadcast; [`published`]: a change with its shared
//!   JSON; [`cursors`]: where a feed opened without `since` starts;
//! - [`sequencer`]: committed changes put in `seq` order before the hub; [`relay`]: the
//!   changes of every process through the cluster bus, gaps filled from the log;
//! - [`bus`]: the [`ClusterBus`] between processes (no-op, or Redis PUB/SUB);
//! - [`presence`]: presence and topic frames of the sync sockets and the HTTP rooms,
//!   relayed over the bus; [`notice`]: notifications between processes;
//! - [`matchmaker`]: tickets, parties, skill windows and one queue per region (memory or
//!   Redis).

pub mod bus;
pub mod cursors;
pub mod feed;
pub mod hub;
pub mod matchmaker;
pub mod notice;
pub mod presence;
pub mod published;
pub mod relay;
pub mod sequencer;

pub use bus::{BusError, BusStatus, ClusterBus, Envelope, InstanceId, Kind, PublishOutcome};
pub use cursors::CursorKey;
pub use feed::{Feed, FeedCounters, Feeds, Pulled};
pub use hub::{DEFAULT_BUFFER, Hub};
pub use notice::Notice;
pub use presence::{Presence, PresenceSocket};
pub use published::Published;
