//! A role sync as one of the person's changes: ordered in their ledger with their other events
//! (without moving the person's event time: it is not an event from the source), written by
//! [`crate::flows::RoleSyncFlow`], recorded in the audit trail whatever the outcome, and told
//! to the IAM system.

use super::{admit, Admission, ApplyAnswer, Go, Settled};
use crate::api_error::ApiError;
use crate::audit::{payload_sha256, AuditDraft, Outcome as AuditOutcome, Trigger, Who};
use crate::event::{Lookup, Operation};
use crate::flows::{Action, FlowError, RoleSynced};
use crate::ledger::{Commit, Decision, Ending, EventFacts};
use crate::policy::{GroupInput, Verdict};
use crate::scim::Role;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A role sync the policy passed, for the person's ledger to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleChange {
    pub event_id: String,
    pub lookup: Lookup,
    /// The person's groups (the team follows them).
    pub groups: Vec<GroupInput>,
    /// The policy's verdict (a pass), told back with the answer.
    pub verdict: Verdict,
    /// [`payload_sha256`] of the request.
    pub request_digest: String,
    /// When the request arrived: the sync is ordered at this time.
    pub at: UnixMillis,
}

impl RoleChange {
    /// The roles the verdict grants.
    pub fn roles(&self) -> &[Role] {
        match &self.verdict {
            Verdict::Pass { roles } => roles,
            _ => &[],
        }
    }

    /// What the ledger orders it by: an update that leaves `active` alone.
    pub fn facts(&self) -> EventFacts {
        EventFacts {
            event_id: self.event_id.clone(),
            body_digest: self.request_digest.clone(),
            operation: Operation::Update,
            occurred_at: Some(self.at),
            replay: false,
            keeps_status: true,
        }
    }

    fn who(&self, cxone_id: Option<String>) -> Who {
        Who {
            cxone_id,
            external_id: self.lookup.external_id.clone(),
            user_name: self.lookup.user_name.clone(),
        }
    }
}

/// The audit record of a role sync the policy refused (nothing reached CXone or the ledger).
pub fn refused_draft(lookup: &Lookup, request_digest: &str, started: UnixMillis, now: UnixMillis) -> AuditDraft {
    AuditDraft {
        at: started,
        who: Who {
            cxone_id: None,
            external_id: lookup.external_id.clone(),
            user_name: lookup.user_name.clone(),
        },
        action: None,
        roles_before: Vec::new(),
        roles_after: Vec::new(),
        trigger: Trigger::RoleSync,
        outcome: AuditOutcome::Rejected,
        latency_ms: now.saturating_sub(started),
        payload_sha256: request_digest.to_string(),
        steps: None,
    }
}

/// The ledger's decision for a role sync: go, or the answer (busy: come back; a deleted person
/// gets no roles; anything else the ledger says is a refusal).
pub fn admit_roles(decision: Decision) -> Admission {
    match decision {
        Decision::Skipped { .. } => Admission::Answer(ApplyAnswer::refused(&ApiError::new(
            409,
            None,
            "the person was deleted; roles not written",
        ))),
        Decision::Duplicate { .. } | Decision::Stale { .. } | Decision::Conflict { .. } => {
            let detail = format!("the person's ledger refused the role sync: {decision:?}");
            Admission::Answer(ApplyAnswer::refused(&ApiError::new(409, None, detail)))
        }
        other => admit(other),
    }
}

/// Everything a role sync leaves once its flow stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSettlement {
    /// Releases the lease; the person's event time stays where it was.
    pub commit: Commit,
    /// Recorded whatever the outcome (a failure, a conflict: the auditor sees the attempt).
    pub audit: AuditDraft,
    /// Why the sync did not write, for the IAM notice.
    pub reason: Option<String>,
    /// The answer without its `audit` and `notice` (the host adds them once it has them).
    pub answer: ApplyAnswer,
}

pub fn settle_roles(
    change: &RoleChange,
    go: &Go,
    result: Result<RoleSynced, FlowError>,
    started: UnixMillis,
    now: UnixMillis,
) -> RoleSettlement {
    let commit = Commit {
        event_id: change.event_id.clone(),
        lease_token: go.lease.token.clone(),
        event_time: go.event_time,
        operation: Operation::Update,
        keeps_status: true,
        ending: Ending::Answered,
        answer: None,
    };
    let synced = result.as_ref().ok();
    let audit = AuditDraft {
        at: started,
        who: change.who(synced.and_then(|s| s.id.clone())),
        action: synced.map(|s| s.action),
        roles_before: synced.map(|s| s.roles_before.clone()).unwrap_or_default(),
        roles_after: synced.map(|s| s.roles_after.clone()).unwrap_or_default(),
        trigger: Trigger::RoleSync,
        outcome: match &result {
            Ok(s) if s.action == Action::Conflict => AuditOutcome::Rejected,
            Ok(_) => AuditOutcome::Success,
            Err(_) => AuditOutcome::Failure,
        },
        latency_ms: now.saturating_sub(started),
        payload_sha256: synced
            .and_then(|s| s.payload.as_ref())
            .map_or_else(|| change.request_digest.clone(), payload_sha256),
        steps: None,
    };
    match result {
        Ok(s) => {
            let conflict = s.action == Action::Conflict;
            let body = json!({
                "status": if conflict { "conflict" } else { "success" },
                "verdict": change.verdict, "action": s.action, "id": s.id,
                "rolesBefore": s.roles_before, "rolesAfter": s.roles_after,
                "retriedAfter412": s.retried_after_412, "conflict": s.conflict,
            });
            let (status, settled, outcome) = if conflict {
                (409, Settled::Failed, AuditOutcome::Rejected)
            } else {
                (200, Settled::Done(s.action), AuditOutcome::Success)
            };
            RoleSettlement {
                commit,
                audit,
                reason: conflict
                    .then(|| "the CXone account is not provably this person's; nothing written".to_string()),
                answer: ApplyAnswer {
                    action: Some(s.action),
                    cxone_id: s.id,
                    ..ApplyAnswer::answered(status, body, settled, outcome)
                },
            }
        }
        Err(e) => RoleSettlement {
            commit,
            audit,
            reason: Some(e.to_string()),
            answer: ApplyAnswer::refused(&ApiError::from(&e)),
        },
    }
}
