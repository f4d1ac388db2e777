//! One input user's row in a bulk run: what is still to do for them, and how it ended. The
//! host stores one row per user (one SQLite row at the edge, a vector in the CLI); the run
//! works on a bounded window of unfinished rows.

use super::report::{RowOutcome, UserReport};
use crate::audit::{payload_sha256, AuditDraft, Outcome as AuditOutcome, Trigger, Who};
use crate::flows::Action;
use crate::scim::build::DesiredUser;
use crate::scim::PatchOp;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "stage")]
pub(super) enum Stage {
    /// To be looked up (pre-check, after a 409, or after an answer that said nothing certain).
    Lookup,
    Create,
    Patch {
        id: String,
        patch: PatchOp,
    },
    Done {
        outcome: RowOutcome,
    },
}

/// What a run knows about one input user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub(super) user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) desired: Option<DesiredUser>,
    pub(super) stage: Stage,
    #[serde(default)]
    pub(super) attempts: u32,
    #[serde(default)]
    pub(super) not_before: UnixMillis,
    /// Written before its operation is sent (write-ahead): a row still marked when it is
    /// loaded again was sent by an invocation that never read the answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) sent: bool,
    /// A create of this user was sent and its outcome is not known: if the user turns up with
    /// this externalId, this run created them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) maybe_created: bool,
    /// A PATCH of this user was sent and its outcome is not known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) maybe_updated: bool,
    /// From the pre-check: whether CXone had this user before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) existed_before: Option<bool>,
    /// A create of this user answered 409.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) conflicted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scim_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) duplicate_of: Option<usize>,
    /// The role values of the account a lookup found, for the audit trail's "before".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) roles_before: Option<Vec<String>>,
    /// The row's person is held in their ledger for it (see `bulk::hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hold: Option<super::hold::Hold>,
    /// The CXone account the person's ledger knows, not read yet: read by its id first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) known_id: Option<String>,
    /// That account answered 404.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) known_gone: bool,
}

impl Entry {
    pub(super) fn new(user_name: String, external_id: Option<String>, stage: Stage) -> Self {
        Self {
            user_name,
            external_id,
            desired: None,
            stage,
            attempts: 0,
            not_before: 0,
            sent: false,
            maybe_created: false,
            maybe_updated: false,
            existed_before: None,
            conflicted: false,
            id: None,
            status: None,
            scim_type: None,
            detail: None,
            duplicate_of: None,
            roles_before: None,
            hold: None,
            known_id: None,
            known_gone: false,
        }
    }

    pub(super) fn fail(&mut self, status: u16, scim_type: Option<String>, detail: impl Into<String>) {
        self.stage = Stage::Done {
            outcome: RowOutcome::Failed,
        };
        self.status = Some(status);
        self.scim_type = scim_type;
        self.detail = Some(detail.into());
    }

    pub(super) fn finish(&mut self, outcome: RowOutcome, id: Option<String>) {
        self.stage = Stage::Done { outcome };
        if id.is_some() {
            self.id = id;
        }
    }

    /// How to find the leaver this row hands to the run's batch of leavers, when it is one.
    pub fn leaver(&self) -> Option<crate::event::Lookup> {
        (self.outcome() == Some(RowOutcome::Leaver)).then(|| crate::event::Lookup {
            user_name: Some(self.user_name.clone()).filter(|n| !n.is_empty()),
            external_id: self.external_id.clone(),
            cxone_id: None,
        })
    }

    /// The row takes the account out of use (`active: false`): a leaver.
    pub(super) fn disables(&self) -> bool {
        self.desired.as_ref().is_some_and(|d| d.active == Some(false))
    }

    /// This run created the user, even if CXone now answers 409 for it or the answer to the
    /// create was lost.
    pub(super) fn ours(&self) -> bool {
        self.maybe_created || (self.conflicted && self.existed_before == Some(false))
    }

    /// The audit trail's record of this row, once it wrote to CXone (created, updated) or failed
    /// there; `None` otherwise (still pending, already as asked, a conflict, a repeat).
    /// `rolesBefore` is what the account held when a lookup found it (`[]` for an account this
    /// run created); `rolesAfter` is what was written, or the same as before when the input
    /// said nothing about roles.
    pub fn audit_draft(&self, at: UnixMillis, latency_ms: u64) -> Option<AuditDraft> {
        let (action, outcome) = match self.outcome()? {
            RowOutcome::Created => (Some(Action::Created), AuditOutcome::Success),
            RowOutcome::Updated => (Some(Action::Updated), AuditOutcome::Success),
            RowOutcome::Failed if self.duplicate_of.is_none() => (None, AuditOutcome::Failure),
            _ => return None,
        };
        let roles_before = match action {
            Some(Action::Created) => Vec::new(),
            _ => self.roles_before.clone().unwrap_or_default(),
        };
        let roles_after = match (&action, self.desired.as_ref().and_then(DesiredUser::role_values)) {
            (Some(_), Some(values)) => values,
            (Some(_), None) => roles_before.clone(),
            (None, _) => Vec::new(),
        };
        let payload = serde_json::to_value(&self.desired).unwrap_or(serde_json::Value::Null);
        Some(AuditDraft {
            at,
            who: Who {
                cxone_id: self.id.clone(),
                external_id: self.external_id.clone(),
                user_name: Some(self.user_name.clone()),
            },
            action,
            roles_before,
            roles_after,
            trigger: Trigger::Bulk,
            outcome,
            latency_ms,
            payload_sha256: payload_sha256(&payload),
            steps: None,
        })
    }

    /// The final outcome; `None` while something is still to do.
    pub fn outcome(&self) -> Option<RowOutcome> {
        match self.stage {
            Stage::Done { outcome } => Some(outcome),
            _ => None,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.outcome().is_none()
    }

    /// The row as it was left by an invocation that sent it and stopped before the answer:
    /// nothing about that operation is certain, so the user is read before anything is re-sent.
    pub(super) fn resume(&mut self) {
        if self.sent {
            self.outcome_unknown();
        }
    }

    /// Its operation was sent and no answer says what became of it: read before re-sending.
    pub(super) fn outcome_unknown(&mut self) {
        self.sent = false;
        match self.stage {
            Stage::Create => self.maybe_created = true,
            Stage::Patch { .. } => self.maybe_updated = true,
            _ => {}
        }
        if self.is_pending() {
            self.stage = Stage::Lookup;
        }
    }

    /// The user's line in a report. A repeat carries the first occurrence's id when the host
    /// passes it.
    pub fn report(&self, index: usize, first_id: Option<String>) -> UserReport {
        UserReport {
            index,
            user_name: self.user_name.clone(),
            external_id: self.external_id.clone(),
            outcome: self.outcome().unwrap_or(RowOutcome::Pending),
            id: first_id.or_else(|| self.id.clone()),
            status: self.status,
            scim_type: self.scim_type.clone(),
            detail: self
                .detail
                .clone()
                .or_else(|| self.is_pending().then(|| "still pending".to_string())),
            duplicate_of: self.duplicate_of,
        }
    }

    /// For a repeat of an earlier user in the same input: the index of the first occurrence.
    pub fn duplicate_of(&self) -> Option<usize> {
        self.duplicate_of
    }

    /// Whether the row carries a write-ahead mark (its operation was sent, the answer not read).
    pub fn is_sent(&self) -> bool {
        self.sent
    }

    /// The row with the write-ahead mark a host kept apart from it.
    pub fn with_sent(mut self, sent: bool) -> Self {
        self.sent |= sent;
        self
    }

    /// The CXone id, once known.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}
