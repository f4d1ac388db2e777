//! A leaver, verified: every leaver (a webhook's disable or delete, a Graph leaver or removal,
//! a bulk row with `active:false`, an approved held leaver, `POST /deprovision`) takes
//! [`DeprovisionFlow`], in the person's ledger like any other change:
//! 1. find the account (the same matching as every write) and the person's agent in NICE's Admin
//!    API (an exact userName or userID match; none or several ends no session);
//! 2. report what depends on the agent (skills, groups, scheduled callbacks); with
//!    `blockOnDependencies` a leaver who has any is held for a person, nothing changed;
//! 3. deactivate (`active=false`; a `DELETE` only where the server deletes and the mode asks);
//! 4. end the agent's live session (`endSessions`);
//! 5. read both back: the account inactive (or gone), the agent `isActive:false`; a read-back
//!    that does not show it yet is tried again after a pause, then reported unverified.
//!
//! Steps after the deactivation are independent: one failing never undoes another, each
//! outcome is in the [`Report`], and the report is verified only when every step is. The host
//! tells HR ([`DeprovisionNotice`]) once the steps have settled and records the audit entry.
//!
//! NICE publishes no licence or seat API: the report says `"licence":"not_managed"`.

pub mod agents;
mod batch;
mod flow;
mod notice;
mod request;

pub use agents::{match_agent, AdminApi, Agent, AgentMatch, DependencyKind};
pub use batch::{row_event_id, BatchProgress, BatchRow, BatchState, RowResult};
pub use flow::{DeprovisionFlow, Plan, VERIFY_PAUSE_MS, VERIFY_TRIES};
pub use notice::{DeprovisionData, DeprovisionNotice};
pub use request::{DeprovisionBatch, DeprovisionRequest, MAX_BATCH};

use crate::flows::{Action, Applied, Conflict, Note};
use serde::{Deserialize, Serialize};

/// What a leaver's account becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `active=false`: the account is kept (the only way on CXone).
    #[default]
    Deactivate,
    /// `DELETE /Users/{id}` where the server deletes accounts; elsewhere deactivated.
    Delete,
}

impl Mode {
    /// The operation a leaver in this mode is ordered as.
    pub fn operation(self) -> crate::event::Operation {
        match self {
            Self::Deactivate => crate::event::Operation::Disable,
            Self::Delete => crate::event::Operation::Delete,
        }
    }
}

/// How a leaver is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    pub mode: Mode,
    /// End the agent's live session (default true).
    pub end_sessions: bool,
    /// Hold a leaver who has skills, groups or scheduled callbacks for a person to decide
    /// (default false).
    pub block_on_dependencies: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Deactivate,
            end_sessions: true,
            block_on_dependencies: false,
            reason: None,
        }
    }
}

/// The steps of a leaver, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    Find,
    Agent,
    Dependencies,
    Deactivate,
    Logout,
    Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Done,
    /// Nothing to do: already so.
    AlreadyDone,
    /// Not asked for (`endSessions:false`), or not reached (held, nothing found).
    Skipped,
    NotFound,
    /// Several candidates: none touched, for a person to resolve.
    Ambiguous,
    /// No Admin API is configured.
    NotConfigured,
    /// Held for a person (`blockOnDependencies`).
    Held,
    Failed,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub step: StepName,
    pub status: StepStatus,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What depends on the agent: how many, and their names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Named {
    pub count: usize,
    pub names: Vec<String>,
}

impl Named {
    pub fn of(names: Vec<String>) -> Self {
        Self {
            count: names.len(),
            names,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    pub skills: Named,
    pub groups: Named,
    pub scheduled_callbacks: Named,
}

impl Dependencies {
    pub fn any(&self) -> bool {
        self.skills.count + self.groups.count + self.scheduled_callbacks.count > 0
    }
}

/// How a leaver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeprovisionOutcome {
    /// Deactivated (or deleted), the session ended, read back so.
    Deprovisioned,
    /// Already inactive with no active agent: nothing deactivated, read back so.
    AlreadyDeprovisioned,
    /// Held for a person (`blockOnDependencies`): nothing changed.
    Held,
    /// A step failed or the read-back does not show it: replayable, never reported done.
    Unverified,
    /// No account is this person's: nothing changed.
    NotFound,
    /// The account found is not provably this person's: nothing changed, kept for review.
    Conflict,
}

/// Everything a leaver's steps found and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub outcome: DeprovisionOutcome,
    pub verified: bool,
    pub mode: Mode,
    /// What was done to the account.
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
    /// NICE publishes no licence or seat API.
    pub licence: Licence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Licence {
    #[default]
    NotManaged,
}

impl Report {
    /// The account's part, as every other write reports it.
    pub fn applied(&self) -> Applied {
        Applied {
            action: self.action,
            id: self.cxone_id.clone(),
            note: self.note,
            conflict: self.conflict.clone(),
        }
    }

    /// Whether the steps have settled: nothing is left that a replay could finish.
    pub fn settled(&self) -> bool {
        !self.replayable()
    }

    /// Whether a replay could finish what is left: a step failed, or the read-back did not
    /// show it done.
    pub fn replayable(&self) -> bool {
        self.outcome == DeprovisionOutcome::Unverified && self.steps.iter().any(|s| s.status == StepStatus::Failed)
    }

    pub fn step(&self, name: StepName) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == name)
    }
}

/// A leaver's id: the same for every delivery of the same change to the same person, so that a
/// replay, the audit trail and HR's notice name one leaver.
pub fn deprovision_id(person_key: &str, event_id: &str) -> String {
    let digest = crate::digest::sha256_hex(format!("{person_key}\n{event_id}").as_bytes());
    format!("dp_{}", digest.get(..24).unwrap_or(&digest))
}

#[cfg(test)]
mod tests;
