//! What a bulk run reports: one outcome per input user, and counts that add up to the input.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Created,
    Updated,
    /// Already in CXone as asked (or a repeat of an earlier user in the same input).
    Exists,
    Failed,
    /// CXone holds an account with this userName for another externalId: nothing written.
    Conflict,
    /// An event applied for the person since the run began comes first: nothing written.
    Stale,
    /// The person was deleted (by an event newer than the run): nothing written.
    Skipped,
    /// `active:false`: a leaver, handed to the run's batch of leavers, which takes every
    /// leaver's steps (deactivate, end the session, read back, tell HR).
    Leaver,
    /// Not finished yet (only in the progress of a running run).
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserReport {
    pub index: usize,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub outcome: RowOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a repeat inside the input: the index of the first occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub exists: usize,
    pub failed: usize,
    #[serde(default)]
    pub conflict: usize,
    #[serde(default)]
    pub stale: usize,
    #[serde(default)]
    pub skipped: usize,
    /// Handed to the run's batch of leavers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leaver: usize,
    pub pending: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Counts {
    pub fn add(&mut self, outcome: Option<RowOutcome>) {
        match outcome {
            Some(RowOutcome::Created) => self.created += 1,
            Some(RowOutcome::Updated) => self.updated += 1,
            Some(RowOutcome::Exists) => self.exists += 1,
            Some(RowOutcome::Failed) => self.failed += 1,
            Some(RowOutcome::Conflict) => self.conflict += 1,
            Some(RowOutcome::Stale) => self.stale += 1,
            Some(RowOutcome::Skipped) => self.skipped += 1,
            Some(RowOutcome::Leaver) => self.leaver += 1,
            Some(RowOutcome::Pending) | None => self.pending += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.created
            + self.updated
            + self.exists
            + self.failed
            + self.conflict
            + self.stale
            + self.skipped
            + self.leaver
            + self.pending
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub counts: Counts,
    pub bulk_requests: u32,
    /// Single-user writes (`POST /Users`, `PATCH /Users/{id}`) on a server without Bulk.
    #[serde(default)]
    pub user_writes: u32,
    pub lookups: u32,
    pub finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkReport {
    #[serde(flatten)]
    pub progress: Progress,
    pub users: Vec<UserReport>,
    /// Unreadable answers met on the way (each kept, truncated, for diagnosis).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}
