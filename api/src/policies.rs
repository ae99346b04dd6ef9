//! The manifest's policies as the API uses them. The rules themselves live in
//! `pylon_storage::access` (so the write path and the change feeds ask the same
//! questions); this module turns the API's authenticated caller into the policy caller.

use pylon_shard::Auth;
pub use pylon_storage::access::{Access, Caller, Policies, Projection, ReadScope};
pub use pylon_storage::entity::Verdict;

/// The policy view of an HTTP or socket caller (`None`: anonymous).
#[must_use]
pub fn caller(auth: Option<&Auth>) -> Caller {
    match auth {
        None => Caller::anonymous(),
        Some(a) => {
            Caller { user_id: Some(a.user_id.to_string()), is_admin: a.is_admin, roles: Vec::new() }
        }
    }
}
