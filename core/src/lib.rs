//! # cxone-scim-core
//!
//! Everything cxone-scim *decides*, with nothing it *does*: no sockets, no clock, no randomness
//! of its own. It compiles and tests on x86_64 and on `wasm32-unknown-unknown` alike.
//!
//! ## The flow contract
//! A multi-step exchange with CXone (upsert a user, fetch a token, page a listing) is a small
//! state machine implementing [`flows::Flow`]. The host asks it for the next [`flows::Step`],
//! performs that step with its own HTTP client and timer, and hands back what happened (a
//! `SendAll` is several independent requests, which the host may send at once):
//!
//! ```
//! use cxone_scim_core::flows::{Flow, Step};
//! use cxone_scim_core::http::{HttpRequest, HttpResponse, TransportError};
//!
//! fn drive<F: Flow>(
//!     flow: &mut F,
//!     mut now: impl FnMut() -> u64,
//!     mut send: impl FnMut(&HttpRequest) -> Result<HttpResponse, TransportError>,
//!     mut sleep_until: impl FnMut(u64),
//! ) -> F::Output {
//!     loop {
//!         match flow.next_step(now()) {
//!             Step::Send(req) => match send(&req) {
//!                 Ok(resp) => flow.on_response(resp, now()),
//!                 Err(err) => flow.on_transport_error(err, now()),
//!             },
//!             // Independent requests: a host may send them at once.
//!             Step::SendAll(reqs) => {
//!                 let answers = reqs.iter().map(&mut send).collect();
//!                 flow.on_answers(answers, now());
//!             }
//!             Step::Wait { until } => sleep_until(until),
//!             Step::Done(out) => return out,
//!         }
//!     }
//! }
//! ```
//!
//! Time is always passed in as [`UnixMillis`]; jitter comes from a seed the host provides.

pub mod admin;
pub mod api_error;
pub mod apply;
pub mod audit;
pub mod budget;
pub mod bulk;
pub mod deprovision;
pub mod digest;
pub mod dry_run;
pub mod event;
pub mod flows;
pub mod graph;
pub mod http;
pub mod ledger;
pub mod person;
pub mod policy;
pub mod profile;
pub mod provider_config;
pub mod retry;
pub mod scim;
pub mod secret;
pub mod settings;
pub mod time;
pub mod token;
pub mod webhook;

/// Milliseconds since the Unix epoch, supplied by the host.
pub type UnixMillis = u64;

#[cfg(test)]
pub(crate) mod testutil;
