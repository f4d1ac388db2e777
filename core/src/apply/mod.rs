//! Applying one change to one person: the engine every write to a person goes through, whatever
//! started it (a webhook, a replayed failure, a Graph change).
//!
//! The host (the person's ledger object) takes these steps in this order and decides nothing:
//! 1. [`prepare`]: the event against the role policy and the clock, into the command to run and
//!    the facts the ledger orders it by; a refusal here touches nothing;
//! 2. the ledger's `begin` ([`crate::ledger::decide`]), then [`admit`]: go, or the answer to give
//!    (duplicate, stale, skipped, busy, conflict); while the person is busy, [`BusyWait`] says
//!    how long to wait before asking again;
//! 3. the flow, with the CXone id the ledger knows ([`crate::event::Command::known_as`]);
//! 4. [`settle`]: what to keep (a failure or a conflict record), the ledger's commit, the audit
//!    trail's record, and the answer, typed ([`Settled`]) for a host that acts on it.

mod leaver;
mod records;
mod roles;
#[cfg(test)]
mod tests;

pub use leaver::LeaverRecord;
pub use records::{conflict_detail, ConflictRecord, FailureRecord, FailureSeed};
pub use roles::{admit_roles, refused_draft, settle_roles, RoleChange, RoleSettlement};

use crate::api_error::ApiError;
use crate::audit::{payload_sha256, AuditDraft, Outcome as AuditOutcome, Trigger, Who};
use crate::deprovision::{DeprovisionOutcome, Options, Report};
use crate::event::{Command, LifecycleEvent};
use crate::flows::{Action, Applied, FlowError};
use crate::ledger::{check_event_time, Commit, Decision, Ending, EventFacts, Lease, StoredAnswer};
use crate::policy::{RolePolicy, RoleTarget};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Polling a busy person's ledger: the first pause, the longest.
pub const POLL_FIRST_MS: u64 = 50;
pub const POLL_MAX_MS: u64 = 500;

/// One delivery of a change: a webhook, a replay of a recorded failure, a Graph change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub event_id: String,
    pub body_digest: String,
    /// The event as received, kept in failure and conflict records (and read again by a replay).
    pub event: Value,
    #[serde(default)]
    pub replay: bool,
    /// What the audit trail records as the cause of the write.
    pub trigger: Trigger,
    /// A leaver's options as someone chose them (`POST /deprovision`, a replay); `None`: the
    /// configured defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision: Option<Options>,
    /// The leaver this delivery replays (its id stays the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaver_id: Option<String>,
}

impl Delivery {
    /// How long a busy person may keep this delivery waiting: a Graph pass does not wait (it
    /// comes back to the change later); anything else waits up to `wait_ms`.
    pub fn waits_for_busy(&self, wait_ms: u64) -> u64 {
        if self.trigger == Trigger::Delta {
            0
        } else {
            wait_ms
        }
    }
}

/// A change to one person, as the host hands it to the person's ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Change {
    /// A lifecycle event: a webhook, a replayed failure, a Graph change.
    Event(Delivery),
    /// A role sync the policy passed.
    Roles(RoleChange),
}

impl Change {
    pub fn event_id(&self) -> &str {
        match self {
            Self::Event(d) => &d.event_id,
            Self::Roles(r) => &r.event_id,
        }
    }
}

/// How a change ended, for a host that acts on it (a Graph pass counts and parks by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "action")]
pub enum Settled {
    /// Done, as this action says (stale and skipped included).
    Done(Action),
    /// Answered before; the answer is repeated.
    Duplicate,
    /// Not done yet: the person is busy, or this invocation ran out of requests. Come again.
    Later,
    /// Not done: refused (policy, time, a reused webhook-id) or failed; recorded where it can
    /// be replayed.
    Failed,
}

/// The answer to a delivery: the HTTP answer a sender gets, and what the host's own log line
/// and a Graph pass read off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyAnswer {
    pub status: u16,
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    pub settled: Settled,
    /// For the request's log line.
    pub outcome: AuditOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Subrequests the change took (ledger calls, CXone requests, records).
    #[serde(default)]
    pub used: u32,
}

impl ApplyAnswer {
    pub(crate) fn answered(status: u16, body: Value, settled: Settled, outcome: AuditOutcome) -> Self {
        Self {
            status,
            body,
            retry_after_secs: None,
            settled,
            outcome,
            action: None,
            cxone_id: None,
            detail: None,
            used: 0,
        }
    }

    /// The person is busy with another event: come back after `retry_after_ms`.
    pub fn busy(retry_after_ms: u64) -> Self {
        Self::refused(&ApiError::busy(
            "another event for this person is being applied; deliver again later",
            retry_after_ms,
        ))
    }

    /// A refusal: the SCIM error body, `Later` for a 503 (come again), `Failed` otherwise.
    pub fn refused(e: &ApiError) -> Self {
        let settled = if e.status == 503 {
            Settled::Later
        } else {
            Settled::Failed
        };
        Self {
            retry_after_secs: e.retry_after_secs,
            detail: Some(e.detail.clone()),
            ..Self::answered(
                e.status,
                serde_json::to_value(e.to_scim()).unwrap_or(Value::Null),
                settled,
                AuditOutcome::Rejected,
            )
        }
    }
}

/// A change ready for the person's ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub command: Command,
    /// What the ledger orders the change by.
    pub facts: EventFacts,
    /// Unmapped groups the lenient policy skipped, told to the sender.
    pub skipped_groups: Vec<String>,
}

/// Step 1: the event against the role policy and the clock. A refusal is the answer, and
/// nothing (not even the ledger) has been touched.
pub fn prepare(
    event: &LifecycleEvent,
    delivery: &Delivery,
    policy: &RolePolicy,
    target: &RoleTarget,
    max_future_ms: u64,
    now: UnixMillis,
) -> Result<Prepared, ApplyAnswer> {
    let (command, resolution) = event
        .command(policy, target)
        .map_err(|v| ApplyAnswer::refused(&v.into()))?;
    // A time far ahead would become the person's mark and make every real event after it stale.
    check_event_time(event.occurred_at, now, max_future_ms).map_err(|e| ApplyAnswer::refused(&e.into()))?;
    Ok(Prepared {
        command,
        facts: EventFacts {
            event_id: delivery.event_id.clone(),
            body_digest: delivery.body_digest.clone(),
            operation: event.operation,
            occurred_at: event.occurred_at,
            replay: delivery.replay,
            keeps_status: event.keeps_status(),
        },
        skipped_groups: resolution.map(|r| r.skipped_groups).unwrap_or_default(),
    })
}

/// The ledger said go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Go {
    pub event_time: UnixMillis,
    pub lease: Lease,
    /// The person's CXone account as last written.
    pub known_id: Option<String>,
}

/// What the host does after the ledger's `begin`.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Go(Go),
    /// The person is busy: wait ([`BusyWait`]) and ask again, or answer this.
    Busy {
        retry_after_ms: u64,
        answer: ApplyAnswer,
    },
    /// Ask the ledger the person's events are ordered in, carrying this ledger's marks.
    Forward {
        to: String,
        carried: Option<crate::ledger::PersonState>,
        first_seen: Option<UnixMillis>,
    },
    /// Answered without running anything.
    Answer(ApplyAnswer),
}

/// Step 2: the ledger's decision as the host's next move.
pub fn admit(decision: Decision) -> Admission {
    match decision {
        Decision::Go {
            event_time,
            lease,
            known_id,
        } => Admission::Go(Go {
            event_time,
            lease,
            known_id,
        }),
        Decision::Duplicate { answer } => {
            let mut body = answer.body;
            if let Some(obj) = body.as_object_mut() {
                obj.insert("duplicate".into(), json!(true));
            }
            let settled = if (200..300).contains(&answer.status) {
                Settled::Duplicate
            } else {
                Settled::Failed
            };
            Admission::Answer(ApplyAnswer::answered(
                answer.status,
                body,
                settled,
                AuditOutcome::Duplicate,
            ))
        }
        Decision::Stale { answer } | Decision::Skipped { answer } => {
            let action: Option<Action> = serde_json::from_value(answer.body["action"].clone()).ok();
            let settled = match action {
                Some(a) if answer.status == 200 => Settled::Done(a),
                _ => Settled::Failed,
            };
            Admission::Answer(ApplyAnswer {
                action,
                ..ApplyAnswer::answered(answer.status, answer.body, settled, AuditOutcome::Success)
            })
        }
        Decision::Busy { retry_after_ms } => Admission::Busy {
            retry_after_ms,
            answer: ApplyAnswer::busy(retry_after_ms),
        },
        Decision::Conflict { detail } => {
            Admission::Answer(ApplyAnswer::refused(&ApiError::new(409, Some("uniqueness"), detail)))
        }
        Decision::Forward {
            to,
            carried,
            first_seen,
        } => Admission::Forward {
            to,
            carried,
            first_seen,
        },
    }
}

/// Waiting for a busy person: short pauses, doubling, never past what the delivery may wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyWait {
    started: UnixMillis,
    pause: u64,
    wait_ms: u64,
}

impl BusyWait {
    pub fn new(started: UnixMillis, wait_ms: u64) -> Self {
        Self {
            started,
            pause: POLL_FIRST_MS,
            wait_ms,
        }
    }

    /// How long to pause before asking again, or `None`: give the busy answer now.
    pub fn next(&mut self, retry_after_ms: u64, now: UnixMillis) -> Option<u64> {
        let waited = now.saturating_sub(self.started);
        let next = self.pause.min(retry_after_ms.max(1));
        if waited.saturating_add(next) > self.wait_ms {
            return None;
        }
        self.pause = self.pause.saturating_mul(2).min(POLL_MAX_MS);
        Some(next)
    }
}

/// What the flow did, for [`settle`].
#[derive(Debug, Clone)]
pub struct Ran<'a> {
    pub delivery: &'a Delivery,
    pub event: &'a LifecycleEvent,
    pub go: &'a Go,
    pub result: Result<Applied, FlowError>,
    /// The account's roles before the write, as the flow read them (none when it read none).
    pub roles_before: Option<Vec<String>>,
    /// The roles the command leaves the account with (`None`: as they were).
    pub roles_after: Option<Vec<String>>,
    pub skipped_groups: Vec<String>,
    /// A leaver's report and the options it ran with (`result` is its account's part).
    pub leaver: Option<(Report, Options)>,
    /// A leaver's runs before this one (replays).
    pub runs_before: u32,
    /// When the flow started, and now.
    pub started: UnixMillis,
    pub now: UnixMillis,
}

/// What a change leaves to keep besides the ledger's commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Keep {
    Nothing,
    /// Kept for a person to resolve; the sender is answered for good.
    Conflict(Box<ConflictRecord>),
    /// Kept for replay (with the attempts before it, which the host reads).
    Failure(Box<FailureSeed>),
}

/// Step 4: everything the host stores and answers once the flow stopped. The host keeps
/// `keep` first (a failure it cannot record is not committed: the lease runs out and a
/// redelivery finds the person free), then commits and appends `audit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub keep: Keep,
    pub commit: Commit,
    /// A failure record is kept for this delivery (the ledger clears it once superseded).
    pub failure_recorded: bool,
    /// The audit trail's record: only when CXone may have been written.
    pub audit: Option<AuditDraft>,
    /// A leaver's record, kept for replay and for the auditor.
    pub leaver: Option<LeaverRecord>,
    pub answer: ApplyAnswer,
}

/// The operation as records and log lines name it.
pub fn operation_name(event: &LifecycleEvent) -> String {
    format!("{:?}", event.operation).to_lowercase()
}

pub fn settle(ran: Ran<'_>) -> Settlement {
    let Ran {
        delivery,
        event,
        go,
        result,
        roles_before,
        roles_after,
        skipped_groups,
        leaver,
        runs_before,
        started,
        now,
    } = ran;
    let subject = event.subject_key();
    let before = roles_before.unwrap_or_default();
    let after = roles_after.unwrap_or_else(|| before.clone());
    // Whether CXone may have been written: an applied write, or a failure after requests went
    // out (a budget that ran out before anything was sent wrote nothing).
    // A leaver is recorded whatever its steps did: an auditor asks for the proof of each one.
    let written = match &result {
        Ok(a) => a.action.wrote() || leaver.is_some(),
        Err(e) => !matches!(e, FlowError::BudgetExhausted(_)),
    };
    let audit = written.then(|| AuditDraft {
        at: started,
        who: Who {
            cxone_id: result.as_ref().ok().and_then(|a| a.id.clone()),
            external_id: event.external_id.clone(),
            user_name: Some(event.user_name.clone()).filter(|n| !n.is_empty()),
        },
        action: result.as_ref().ok().map(|a| a.action),
        roles_before: before,
        roles_after: if result.is_ok() { after } else { Vec::new() },
        trigger: delivery.trigger,
        outcome: if result.is_ok() {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        },
        latency_ms: now.saturating_sub(started),
        payload_sha256: payload_sha256(&delivery.event),
        steps: leaver.as_ref().map(|(report, _)| report.steps.clone()),
    });
    let leaver = leaver.map(|(report, options)| {
        let who = Who {
            cxone_id: report.cxone_id.clone(),
            external_id: event.external_id.clone(),
            user_name: report
                .user_name
                .clone()
                .or_else(|| Some(event.user_name.clone()).filter(|n| !n.is_empty())),
        };
        leaver::record_of(delivery, event, go.event_time, options, who, report, runs_before, now)
    });
    let mut commit = Commit {
        event_id: delivery.event_id.clone(),
        lease_token: go.lease.token.clone(),
        event_time: go.event_time,
        operation: event.operation,
        keeps_status: event.keeps_status(),
        ending: Ending::Failed,
        answer: None,
    };
    match result {
        Ok(applied) if applied.action == Action::Conflict => {
            let record = ConflictRecord::new(
                &delivery.event_id,
                &subject,
                &operation_name(event),
                applied.conflict,
                delivery.event.clone(),
                now,
            );
            let mut body = json!({
                "status": "success", "action": Action::Conflict, "eventId": delivery.event_id,
                "conflictId": record.id, "reason": record.reason, "detail": record.detail,
            });
            if let Some(record) = &leaver {
                body["deprovision"] = leaver_body(record);
            }
            commit.ending = Ending::Answered;
            commit.answer = Some(StoredAnswer::ok(body.clone()));
            Settlement {
                keep: Keep::Conflict(Box::new(record)),
                commit,
                failure_recorded: false,
                audit,
                leaver,
                answer: ApplyAnswer {
                    action: Some(Action::Conflict),
                    ..ApplyAnswer::answered(200, body, Settled::Done(Action::Conflict), AuditOutcome::Success)
                },
            }
        }
        Ok(applied) => {
            let mut body = json!({"status": "success", "action": applied.action, "eventId": delivery.event_id});
            if let Some(id) = &applied.id {
                body["id"] = json!(id);
            }
            if let Some(note) = applied.note {
                body["note"] = json!(note);
            }
            if applied.note == Some(crate::flows::Note::Reinstated) {
                body["detail"] = json!(
                    "the account is active again; the agent's live session, skills and groups are not restored automatically"
                );
            }
            if !skipped_groups.is_empty() {
                body["skippedGroups"] = json!(skipped_groups);
            }
            commit.ending = Ending::Applied {
                action: applied.action,
                id: applied.id.clone(),
            };
            // A leaver held for a person, or not yet shown done, is taken (202), never reported
            // done; a held one changed nothing.
            let mut status = 200;
            if let Some(record) = &leaver {
                body["deprovision"] = leaver_body(record);
                let pending = match record.report.outcome {
                    DeprovisionOutcome::Held => Some("held"),
                    DeprovisionOutcome::Unverified => Some("unverified"),
                    _ => None,
                };
                if let Some(word) = pending {
                    body["status"] = json!(word);
                    status = 202;
                }
                if record.report.outcome == DeprovisionOutcome::Held {
                    commit.ending = Ending::Answered;
                }
            }
            commit.answer = Some(StoredAnswer {
                status,
                body: body.clone(),
            });
            Settlement {
                keep: Keep::Nothing,
                commit,
                failure_recorded: false,
                audit,
                leaver,
                answer: ApplyAnswer {
                    action: Some(applied.action),
                    cxone_id: applied.id,
                    ..ApplyAnswer::answered(status, body, Settled::Done(applied.action), AuditOutcome::Success)
                },
            }
        }
        Err(e) => {
            let api = ApiError::from(&e);
            let (permanent, error, detail) = FailureSeed::of(&e);
            if permanent {
                // Final: redeliveries get this answer from the ledger until a replay.
                commit.ending = Ending::Answered;
                commit.answer = Some(StoredAnswer {
                    status: api.status,
                    body: serde_json::to_value(api.to_scim()).unwrap_or(Value::Null),
                });
            }
            let seed = FailureSeed {
                event_id: delivery.event_id.clone(),
                subject,
                operation: operation_name(event),
                event_time: go.event_time,
                body_digest: delivery.body_digest.clone(),
                permanent,
                error,
                detail,
                event: delivery.event.clone(),
            };
            let mut answer = ApplyAnswer::refused(&api);
            answer.outcome = AuditOutcome::Failure;
            Settlement {
                keep: Keep::Failure(Box::new(seed)),
                commit,
                failure_recorded: true,
                audit,
                leaver,
                answer,
            }
        }
    }
}

/// A leaver as its answer shows it: its id and report.
fn leaver_body(record: &LeaverRecord) -> Value {
    let mut body = serde_json::to_value(&record.report).unwrap_or(Value::Null);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("id".into(), json!(record.id));
    }
    body
}
