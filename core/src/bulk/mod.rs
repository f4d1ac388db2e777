//! Bulk provisioning: many users through `POST /Bulk`, every result correlated to its
//! operation, only what can still succeed retried, and one outcome per input user.
//!
//! - [`Intake`] turns input users into rows (validation, policy, repeats folded), one by one;
//! - [`BulkRun`] is the state machine: small, serialisable run state plus a bounded window of
//!   rows that the host loads and stores (one row per user: O(n) work, memory bounded by the
//!   window, not the input);
//! - [`InMemoryRun`] keeps the rows in a vector (the CLI, tests, dry runs).

mod batch;
mod entry;
mod hold;
mod input;
mod intake;
mod lookup;
mod memory;
mod report;
mod response;
mod run;

pub use entry::Entry;
pub use hold::{Hold, HoldAnswer, HoldAsk, Release};
pub use input::{input_digest, BulkUser};
pub use intake::Intake;
pub use memory::{DryRun, InMemoryRun, PlannedRequest};
pub use report::{BulkReport, Counts, Progress, RowOutcome, UserReport};
pub use response::{correlate, BulkResponseError, OpResult, SentOp};
pub use run::{BulkConfig, BulkRun, RowRequest, DEFAULT_BATCH_SIZE, DEFAULT_REQUEST_TIMEOUT_MS};

#[cfg(test)]
mod tests;
