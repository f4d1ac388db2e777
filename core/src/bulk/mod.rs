//! Bulk provisioning: many users through `POST /Bulk`, every result correlated to its operation
//! (by `bulkId`, else by `location`), only what can still succeed retried, and one outcome per
//! input user.
//!
//! [`BulkRun`] is a serialisable state machine (see [`crate::flows::Flow`]): the host may
//! checkpoint it between any two steps and resume it in another invocation.

mod input;
mod report;
mod response;
mod run;

pub use input::{input_digest, BulkUser};
pub use report::{BulkReport, Counts, Outcome, Progress, UserReport};
pub use response::{correlate, BulkResponseError, OpResult, SentOp};
pub use run::{BulkConfig, BulkRun, DryRun, PlannedRequest, DEFAULT_BATCH_SIZE};
