//! [`Published`]: a committed change as the live feeds carry it. Its JSON is built once,
//! by the first subscriber that sends it, and shared by every other one (a thousand
//! subscribers, one encode); so is the variant a subscriber who lost sight of the row
//! receives (the change as a delete).

use std::sync::OnceLock;

use bytes::Bytes;
use pylon_storage::ChangeEvent;
use pylon_storage::access::Projection;

/// A committed change and its shared encodings.
#[derive(Debug)]
pub struct Published {
    /// The change.
    pub event: ChangeEvent,
    json: OnceLock<Bytes>,
    as_delete: OnceLock<Bytes>,
}

impl Published {
    /// Wraps a committed change.
    #[must_use]
    pub fn new(event: ChangeEvent) -> Self {
        Self { event, json: OnceLock::new(), as_delete: OnceLock::new() }
    }

    /// The JSON a subscriber receives under `projection` (UTF-8): the event, or the delete
    /// of its row for one who could read it before the write but not after.
    #[must_use]
    pub fn json(&self, projection: Projection) -> Bytes {
        match projection {
            Projection::AsIs => self.json.get_or_init(|| encode(&self.event)).clone(),
            Projection::AsDelete => {
                self.as_delete.get_or_init(|| encode(&self.event.as_delete())).clone()
            }
        }
    }
}

/// A change event's JSON. Serializing a `ChangeEvent` cannot fail (string keys, JSON
/// values); should it ever, the failure is logged and the event carries its identity
/// only, never an empty frame.
fn encode(event: &ChangeEvent) -> Bytes {
    match serde_json::to_vec(event) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            tracing::error!(error = %e, seq = event.seq, "a change event did not serialize");
            let fallback = serde_json::json!({
                "seq": event.seq, "entity": event.entity, "row_id": event.row_id,
                "kind": event.kind, "timestamp": event.timestamp,
            });
            Bytes::from(fallback.to_string())
        }
    }
}
