//! Multi-step exchanges as state machines: the host sends, sleeps and reads the clock.
//!
//! Contract: [`Flow::next_step`] is idempotent until the host reports what happened with
//! [`Flow::on_response`] or [`Flow::on_transport_error`]; after `Wait { until }` the host calls
//! `next_step` again at or after `until`.

mod auth;
mod check;
mod drive;
mod error;
pub(crate) mod exchange;
mod lifecycle;
pub(crate) mod lookup;
mod role_sync;

pub use auth::Authorized;
pub use check::{probe_user_name, ConnectionCheck, ConnectionCheckFlow, SchemaSupport};
pub use drive::{block_on, drive, drive_watched, Driven, Host};
pub use error::FlowError;
pub use lifecycle::{Action, Applied, LifecycleFlow, Note};
pub use lookup::{Conflict, ConflictReason};
pub use role_sync::{RoleSyncFlow, RoleSynced, RoleWrite};

use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq)]
pub enum Step<O> {
    /// Perform this request and report the answer.
    Send(HttpRequest),
    /// Perform these requests at once (none depends on another's answer) and report every
    /// answer, in the same order, with [`Flow::on_answers`].
    SendAll(Vec<HttpRequest>),
    /// Call `next_step` again at or after this time.
    Wait { until: UnixMillis },
    /// Finished; further calls return the same outcome.
    Done(O),
}

/// What came back for one request: an answer, or none.
pub type Answer = Result<HttpResponse, TransportError>;

pub trait Flow {
    type Output: Clone;
    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output>;
    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis);
    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis);

    /// The answers to a [`Step::SendAll`], in its order. A flow that never asks for several
    /// requests at once keeps this, which hands them over one by one.
    fn on_answers(&mut self, answers: Vec<Answer>, now: UnixMillis) {
        one_by_one(self, answers, now);
    }
}

/// Hands `answers` to `flow` one by one, as if each request had been sent alone.
pub fn one_by_one<F: Flow + ?Sized>(flow: &mut F, answers: Vec<Answer>, now: UnixMillis) {
    for answer in answers {
        match answer {
            Ok(resp) => flow.on_response(resp, now),
            Err(err) => flow.on_transport_error(err, now),
        }
    }
}
