//! What the entity store reads and writes: rows, write operations, change events, pages,
//! and the typed errors the API turns into HTTP answers.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

/// A row: `id` plus the manifest's fields, as JSON.
pub type Row = Map<String, Value>;

/// A check a write must pass, evaluated inside the write transaction with the row as it
/// is (`before`: update, delete) and as it will be (`after`: insert, update). The API
/// builds these from the manifest's policies ([`crate::access::Policies::check_write`]);
/// anything but [`Verdict::Allow`] aborts the whole batch: `Deny` with
/// [`EntityError::PolicyDenied`], `Hidden` with [`EntityError::NotFound`].
pub type Guard = Arc<dyn Fn(Option<&Row>, Option<&Row>) -> Verdict + Send + Sync>;

/// The answer to a write check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refused; the hint says which rule refused and what it needs.
    Deny(String),
    /// The caller may not see the row: answer as if it did not exist.
    Hidden,
}

/// One operation of a write batch.
#[derive(Clone)]
pub struct WriteOp {
    /// What to do.
    pub kind: ChangeKind,
    /// The entity (table).
    pub entity: String,
    /// The row id: required for update and delete; generated for an insert without one.
    pub id: Option<String>,
    /// Insert: the fields; update: the fields to change; delete: ignored.
    pub data: Row,
    /// The policy check, if any.
    pub guard: Option<Guard>,
}

impl std::fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOp")
            .field("kind", &self.kind)
            .field("entity", &self.entity)
            .field("id", &self.id)
            .field("data", &self.data)
            .field("guarded", &self.guard.is_some())
            .finish()
    }
}

/// Insert, update or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new row.
    Insert,
    /// Changed fields of an existing row.
    Update,
    /// A removed row.
    Delete,
}

impl ChangeKind {
    /// `insert`, `update` or `delete`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// The kind named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "insert" => Some(Self::Insert),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One change-log entry as both backends select it ([`crate::sql`]): `seq`, `entity`,
/// `row_id`, `kind`, `data`, `ts`, `prior`.
pub type LogRow = (i64, String, String, String, Option<String>, String, Option<String>);

/// One committed write, as the change feed carries it (docs/ENTITIES.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEvent {
    /// Dense, durable sequence number (lives in the database).
    pub seq: u64,
    /// The entity.
    pub entity: String,
    /// The row's id.
    pub row_id: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The row after the write (insert, update); absent for delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Row>,
    /// Commit time, RFC 3339 UTC.
    pub timestamp: String,
    /// Update and delete events: the row as it was, for read-policy checks (never sent).
    /// `None` for updates logged before pylon kept it.
    #[serde(skip)]
    pub before: Option<Row>,
}

impl ChangeEvent {
    /// The event as a delete of its row: what a subscriber who could read the row before
    /// the write, but not after it, receives.
    #[must_use]
    pub fn as_delete(&self) -> Self {
        Self {
            seq: self.seq,
            entity: self.entity.clone(),
            row_id: self.row_id.clone(),
            kind: ChangeKind::Delete,
            data: None,
            timestamp: self.timestamp.clone(),
            before: None,
        }
    }

    /// The event of one applied operation of a batch: `row_id` went from `before` to
    /// `after` at `timestamp`. Its `seq` is 0 until the change log numbers it.
    #[must_use]
    pub fn applied(
        op: &WriteOp,
        row_id: String,
        before: Option<Row>,
        after: Option<Row>,
        timestamp: &str,
    ) -> Self {
        Self {
            seq: 0,
            entity: op.entity.clone(),
            row_id,
            kind: op.kind,
            data: after,
            timestamp: timestamp.to_owned(),
            before,
        }
    }

    /// Rebuilds an event from its change-log columns (both backends store the same
    /// columns: `data` is the row after an insert or update and the row before a delete;
    /// `prior` is the row before an update).
    #[must_use]
    pub fn from_log(row: LogRow) -> Self {
        let (seq, entity, row_id, kind, data, timestamp, prior) = row;
        let kind = ChangeKind::parse(&kind).unwrap_or(ChangeKind::Update);
        let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str::<Row>(&t).ok());
        let (data, before) = match kind {
            ChangeKind::Delete => (None, parse(data)),
            ChangeKind::Update => (parse(data), parse(prior)),
            ChangeKind::Insert => (parse(data), None),
        };
        let seq = u64::try_from(seq).unwrap_or(0);
        Self { seq, entity, row_id, kind, data, timestamp, before }
    }

    /// The change-log columns of this event: (`data`, `prior`) as JSON text.
    #[must_use]
    pub fn log_columns(&self) -> (Option<String>, Option<String>) {
        let text = |row: &Option<Row>| row.as_ref().map(|r| Value::Object(r.clone()).to_string());
        match self.kind {
            ChangeKind::Delete => (text(&self.before), None),
            ChangeKind::Update => (text(&self.data), text(&self.before)),
            ChangeKind::Insert => (text(&self.data), None),
        }
    }
}

/// What a committed batch produced.
#[derive(Debug, Clone, Default)]
pub struct WriteResult {
    /// The id of each operation's row, in order.
    pub ids: Vec<String>,
    /// The change events, in order.
    pub changes: Vec<ChangeEvent>,
}

/// A page of `list`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The rows.
    pub rows: Vec<Row>,
    /// Rows matching the filters in all.
    pub count: u64,
}

/// A page of `cursor`.
#[derive(Debug, Clone, Default)]
pub struct CursorPage {
    /// The rows, by id ascending.
    pub rows: Vec<Row>,
    /// The id to pass as `after` for the next page.
    pub next_cursor: Option<String>,
    /// Whether rows follow.
    pub has_more: bool,
}

/// A page of the change log.
#[derive(Debug, Clone, Default)]
pub struct ChangesPage {
    /// The changes after the cursor, in order.
    pub changes: Vec<ChangeEvent>,
    /// The last seq in `changes`, or the cursor when empty.
    pub last_seq: u64,
    /// Whether more changes follow.
    pub has_more: bool,
}

/// Why an entity operation failed. Every variant names what the client got wrong.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EntityError {
    /// The manifest declares no such entity.
    #[error("unknown entity {0:?}")]
    UnknownEntity(String),
    /// No row with that id.
    #[error("{entity} {id:?} not found")]
    NotFound {
        /// Entity.
        entity: String,
        /// Id.
        id: String,
    },
    /// A field value does not fit the field's type (or a required field is missing).
    #[error("{entity}.{field}: {reason}")]
    InvalidField {
        /// Entity.
        entity: String,
        /// Field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The entity has no such field.
    #[error("{entity} has no field {field:?}")]
    UnknownField {
        /// Entity.
        entity: String,
        /// Field.
        field: String,
    },
    /// A unique field or index already holds that value, or the id exists.
    #[error("{entity}: {what} already exists")]
    Conflict {
        /// Entity.
        entity: String,
        /// The field or id that collides.
        what: String,
    },
    /// A policy refused the operation.
    #[error("{kind} on {entity} denied by policy")]
    PolicyDenied {
        /// Entity.
        entity: String,
        /// The operation.
        kind: &'static str,
        /// Which rule refused and what it needs.
        hint: String,
    },
    /// A malformed request (missing id for update, bad cursor, …).
    #[error("{0}")]
    BadRequest(String),
    /// The cursor of a change-log pull is older than what is kept, or ahead of the log.
    #[error("resync required: the change log holds seq {oldest_seq} to {latest_seq}")]
    ResyncRequired {
        /// The oldest seq still kept.
        oldest_seq: u64,
        /// The newest seq.
        latest_seq: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

impl EntityError {
    /// Which operation of a batch failed, for messages (`operation 2: …`).
    #[must_use]
    pub fn in_operation(self, index: usize) -> IndexedError {
        IndexedError { index, error: self }
    }
}

/// An error tagged with the index of the batch operation that caused it.
#[derive(Debug, Error)]
#[error("operation {index}: {error}")]
pub struct IndexedError {
    /// Zero-based index in the batch.
    pub index: usize,
    /// The error.
    pub error: EntityError,
}

/// Limits of the entity API.
pub mod limits {
    /// Largest page of `list` and `cursor`.
    pub const MAX_PAGE: u32 = 1000;
    /// Default page size.
    pub const DEFAULT_PAGE: u32 = 100;
    /// Most operations in one `transact`.
    pub const MAX_BATCH: usize = 1000;
}
