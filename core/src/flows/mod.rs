//! Multi-step exchanges as state machines: the host sends, sleeps and reads the clock.
//!
//! Contract: [`Flow::next_step`] is idempotent until the host reports what happened with
//! [`Flow::on_response`] or [`Flow::on_transport_error`]; after `Wait { until }` the host calls
//! `next_step` again at or after `until`.

mod auth;
mod error;
pub(crate) mod exchange;
mod lifecycle;
mod list;
mod lookup;
mod role_sync;

pub use auth::Authorized;
pub use error::FlowError;
pub use lifecycle::{Action, Applied, LifecycleFlow, Note};
pub use list::{FirstPage, FirstPageFlow};
pub use lookup::{Conflict, ConflictReason};
pub use role_sync::{RoleSyncFlow, RoleSynced, RoleWrite};

use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq)]
pub enum Step<O> {
    /// Perform this request and report the answer.
    Send(HttpRequest),
    /// Call `next_step` again at or after this time.
    Wait { until: UnixMillis },
    /// Finished; further calls return the same outcome.
    Done(O),
}

pub trait Flow {
    type Output: Clone;
    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output>;
    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis);
    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis);
}
