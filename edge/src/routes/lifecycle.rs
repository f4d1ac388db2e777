//! `POST /webhooks/lifecycle`: verify, ask the person's ledger, drive CXone, record.
//! Every decision is core's: the ledger's (`ledger::decide`), the flow's (matching), the
//! mapping of errors to answers (`ApiError`).

use crate::config::Config;
use crate::driver::{now_ms, run_authorized_then, seed, Budget};
use crate::kv::{ConflictRecord, FailureRecord, State};
use crate::ledger::{begin_for, BeginRequest, CommitRequest, Ledger};
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::{iso8601, payload_sha256, AuditDraft, AuditRecord, Outcome, Trigger, Who};
use cxone_scim_core::digest::{key_of, sha256_hex};
use cxone_scim_core::event::{Command, LifecycleEvent};
use cxone_scim_core::flows::{Action, Applied, Conflict, ConflictReason, FlowError, LifecycleFlow};
use cxone_scim_core::ledger::{check_event_time, Commit, Decision, Ending, EventFacts, StoredAnswer};
use cxone_scim_core::webhook::{verify, SignatureHeaders};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::time::Duration;
use worker::{Delay, Env, Request, Response, Result};

/// Largest accepted event body.
pub const MAX_BODY: usize = 256 * 1024;
/// Subrequests kept back from the flow: the ledger's commit, failure and conflict records.
const RESERVED_SUBREQUESTS: u32 = 6;
/// Polling a busy ledger: first pause, longest pause.
const POLL_FIRST_MS: u64 = 50;
const POLL_MAX_MS: u64 = 500;

/// A delivery to apply: a webhook, or a replay of a recorded failure.
pub struct Delivery {
    pub event_id: String,
    pub body_digest: String,
    /// The event as received, kept in failure and conflict records.
    pub event: Value,
    pub replay: bool,
    /// What the audit trail records as the cause of the write.
    pub trigger: Trigger,
}

pub async fn handle(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let Some(body) = reply::body_within(&mut req, MAX_BODY).await? else {
        return reply::api_error(&ApiError::too_large(MAX_BODY));
    };
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (id, ts, sig) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let headers = SignatureHeaders {
        id: id.as_deref(),
        timestamp: ts.as_deref(),
        signature: sig.as_deref(),
    };
    let verified = match verify(&config.webhook_secrets, headers, &body, (now_ms() / 1000) as i64) {
        Ok(v) => v,
        Err(e) => return refuse(audit, e.into()),
    };
    audit.event_id = Some(verified.id.clone());
    let event = match LifecycleEvent::from_json(&body) {
        Ok(e) => e,
        Err(e) => return refuse(audit, e.into()),
    };
    let delivery = Delivery {
        event_id: verified.id,
        body_digest: sha256_hex(&body),
        event: serde_json::from_slice(&body).unwrap_or(Value::Null),
        replay: false,
        trigger: Trigger::Webhook,
    };
    apply(env, config, &event, delivery, audit).await
}

fn refuse(audit: &mut AuditRecord, e: ApiError) -> Result<Response> {
    audit.detail = Some(e.detail.clone());
    reply::api_error(&e)
}

/// The answer to a delivery, before it becomes an HTTP response.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after_secs: Option<u64>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self::of(200, body)
    }

    fn of(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after_secs: None,
        }
    }

    fn refused(audit: &mut AuditRecord, e: &ApiError) -> Self {
        audit.detail = Some(e.detail.clone());
        Self {
            status: e.status,
            body: serde_json::to_value(e.to_scim()).unwrap_or(Value::Null),
            retry_after_secs: e.retry_after_secs,
        }
    }

    pub fn into_response(self) -> Result<Response> {
        let resp = reply::json(self.status, &self.body)?;
        if let Some(secs) = self.retry_after_secs {
            resp.headers().set("Retry-After", &secs.to_string())?;
        }
        Ok(resp)
    }
}

/// Asks the person's ledger, and when it says go, brings CXone to the event's state.
pub async fn apply(
    env: &Env,
    config: &Config,
    event: &LifecycleEvent,
    delivery: Delivery,
    audit: &mut AuditRecord,
) -> Result<Response> {
    let (answer, _) = apply_within(env, config, event, delivery, audit, config.subrequest_budget).await?;
    answer.into_response()
}

/// [`apply`] within `allowance` subrequests; returns the answer and the subrequests it took.
/// The lifecycle flow for `command` against CXone as configured (its SCIM root, what it offers,
/// the retry policy).
pub fn flow_for(config: &Config, command: Command) -> LifecycleFlow {
    LifecycleFlow::new(
        &config.scim_base_url,
        config.profile.capabilities(),
        command,
        config.retry,
        seed(),
    )
}

pub async fn apply_within(
    env: &Env,
    config: &Config,
    event: &LifecycleEvent,
    delivery: Delivery,
    audit: &mut AuditRecord,
    allowance: u32,
) -> Result<(Answer, u32)> {
    let subject = event.subject_key();
    audit.operation = Some(format!("{:?}", event.operation).to_lowercase());
    audit.subject = Some(subject.clone());
    let (command, resolution) = match event.command(&config.policy, &config.roles.target) {
        Ok(c) => c,
        Err(v) => return Ok((Answer::refused(audit, &v.into()), 0)),
    };
    // A time far ahead would become the person's mark and make every real event after it stale.
    if let Err(e) = check_event_time(event.occurred_at, now_ms(), config.ledger.max_future_ms) {
        return Ok((Answer::refused(audit, &e.into()), 0));
    }
    let mut begin = BeginRequest {
        facts: EventFacts {
            event_id: delivery.event_id.clone(),
            body_digest: delivery.body_digest.clone(),
            operation: event.operation,
            occurred_at: event.occurred_at,
            replay: delivery.replay,
            keeps_status: event.keeps_status(),
        },
        lease_ms: config.ledger.lease_ms,
        lease_token: format!("{:016x}", seed()),
        carried: None,
    };
    // A Graph pass does not wait for a busy person: it comes back to the change later.
    let wait_ms = if delivery.trigger == Trigger::Delta {
        0
    } else {
        config.ledger.wait_ms
    };
    let (ledger, decision, asked) = ask(env, event, &mut begin, wait_ms).await?;
    let (event_time, lease, known_id) = match decision {
        Decision::Go {
            event_time,
            lease,
            known_id,
        } => (event_time, lease, known_id),
        Decision::Duplicate { answer } => {
            audit.outcome = Outcome::Duplicate;
            let mut body = answer.body;
            if let Some(obj) = body.as_object_mut() {
                obj.insert("duplicate".into(), json!(true));
            }
            return Ok((Answer::of(answer.status, body), asked));
        }
        Decision::Stale { answer } | Decision::Skipped { answer } => {
            audit.action = serde_json::from_value(answer.body["action"].clone()).ok();
            return Ok((Answer::of(answer.status, answer.body), asked));
        }
        Decision::Busy { retry_after_ms } => {
            let busy = ApiError::busy(
                "another event for this person is being applied; deliver again later",
                retry_after_ms,
            );
            return Ok((Answer::refused(audit, &busy), asked));
        }
        Decision::Conflict { detail } => {
            let refused = ApiError::new(409, Some("uniqueness"), detail);
            return Ok((Answer::refused(audit, &refused), asked));
        }
        Decision::Forward { to, .. } => {
            return Err(worker::Error::RustError(format!("the ledger forwarded to {to} twice")));
        }
    };
    let command = command.known_as(known_id);
    let state = State::open(env)?;
    let roles_after = command.roles_after();
    let started = now_ms();
    let flow = flow_for(config, command);
    let given = allowance.saturating_sub(asked + RESERVED_SUBREQUESTS);
    let mut budget = Budget::new(given, 1).within_lease(lease.until, config.ledger.request_timeout_ms);
    let (result, roles_before) = run_authorized_then(
        flow,
        &config.credentials,
        config.retry,
        &state,
        &mut budget,
        |flow: &LifecycleFlow| flow.roles_before(&config.roles.target),
    )
    .await;
    let before = roles_before.unwrap_or_default();
    let after = roles_after.unwrap_or_else(|| before.clone());
    let written = match &result {
        Ok(a) => a.action.wrote(),
        Err(e) => !matches!(e, FlowError::BudgetExhausted(_)),
    };
    let draft = written.then(|| AuditDraft {
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
            Outcome::Success
        } else {
            Outcome::Failure
        },
        latency_ms: now_ms().saturating_sub(started),
        payload_sha256: payload_sha256(&delivery.event),
    });
    // The trail's append goes beside the ledger's commit (two objects, no order between them).
    let audit_append = async move {
        if let Some(draft) = draft {
            // Parked for replay when the trail cannot be reached; never fails the write.
            let _ = crate::audit_trail::record(env, config, vec![draft]).await;
        }
    };
    // The ledger's calls and the flow's sends, then the commit and the token cache; a failure or
    // conflict record takes more (see RESERVED_SUBREQUESTS).
    let sent = asked + given.saturating_sub(budget.remaining()) + u32::from(written);
    let mut commit = Commit {
        event_id: delivery.event_id.clone(),
        lease_token: lease.token.clone(),
        event_time,
        operation: event.operation,
        keeps_status: event.keeps_status(),
        ending: Ending::Failed,
        answer: None,
    };
    let answer = match result {
        Ok(applied) if applied.action == Action::Conflict => {
            audit.action = Some(Action::Conflict);
            let answer = conflict_answer(&state, &delivery, event, &applied, &subject).await?;
            commit.ending = Ending::Answered;
            answer
        }
        Ok(applied) => {
            audit.action = Some(applied.action);
            audit.cxone_id = applied.id.clone();
            let mut answer = json!({"status": "success", "action": applied.action, "eventId": delivery.event_id});
            if let Some(id) = &applied.id {
                answer["id"] = json!(id);
            }
            if let Some(note) = applied.note {
                answer["note"] = json!(note);
            }
            if let Some(skipped) = resolution.map(|r| r.skipped_groups).filter(|s| !s.is_empty()) {
                answer["skippedGroups"] = json!(skipped);
            }
            commit.ending = Ending::Applied {
                action: applied.action,
                id: applied.id,
            };
            answer
        }
        Err(e) => {
            audit.outcome = Outcome::Failure;
            audit.detail = Some(e.to_string());
            if let Err(unrecorded) = record_failure(&state, &delivery, event, &subject, event_time, &e).await {
                // No commit: the lease runs out and the sender's redelivery finds the person free.
                audit_append.await;
                return Err(unrecorded);
            }
            let api = ApiError::from(&e);
            if e.is_permanent() {
                // Final: redeliveries get this answer from the ledger until a replay.
                commit.ending = Ending::Answered;
                commit.answer = Some(StoredAnswer {
                    status: api.status,
                    body: serde_json::to_value(api.to_scim())?,
                });
            }
            finish(&ledger, &state, commit, true, audit_append).await?;
            return Ok((Answer::refused(audit, &api), sent + RESERVED_SUBREQUESTS));
        }
    };
    commit.answer = Some(StoredAnswer::ok(answer.clone()));
    finish(&ledger, &state, commit, false, audit_append).await?;
    let used = if audit.action == Some(Action::Conflict) {
        sent + RESERVED_SUBREQUESTS
    } else {
        sent + 2
    };
    Ok((Answer::ok(answer), used))
}

/// Commits the outcome to the ledger and drops the failure records it supersedes, while
/// `audit_append` runs.
async fn finish(
    ledger: &Ledger,
    state: &State,
    commit: Commit,
    failure_recorded: bool,
    audit_append: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let request = CommitRequest {
        commit,
        failure_recorded,
    };
    let (committed, ()) = futures_util::future::join(ledger.commit(&request), audit_append).await;
    clear_failures(state, &committed?.superseded_failures).await;
    Ok(())
}

/// `begin` on the person's ledger, waiting a little while the person is busy (the lease ends
/// soon, or the holder commits). Returns the ledger, its decision and how many calls it took.
async fn ask(
    env: &Env,
    event: &LifecycleEvent,
    begin: &mut BeginRequest,
    wait_ms: u64,
) -> Result<(Ledger, Decision, u32)> {
    let started = now_ms();
    let mut pause = POLL_FIRST_MS;
    let mut calls = 0;
    loop {
        let (ledger, decision, took) = begin_for(env, event.external_id.as_deref(), &event.user_name, begin).await?;
        calls += took;
        let Decision::Busy { retry_after_ms } = decision else {
            return Ok((ledger, decision, calls));
        };
        let waited = now_ms().saturating_sub(started);
        let next = pause.min(retry_after_ms.max(1));
        if waited + next > wait_ms {
            return Ok((ledger, decision, calls));
        }
        Delay::from(Duration::from_millis(next)).await;
        pause = (pause * 2).min(POLL_MAX_MS);
    }
}

async fn clear_failures(state: &State, event_ids: &[String]) {
    // A record left behind expires with its TTL; clearing is best effort.
    let _ = join_all(event_ids.iter().map(|id| state.clear_failure_of_event(id))).await;
}

async fn record_failure(
    state: &State,
    delivery: &Delivery,
    event: &LifecycleEvent,
    subject: &str,
    event_time: u64,
    e: &FlowError,
) -> Result<()> {
    let previous = state.failure_of_event(&delivery.event_id).await?;
    let at = iso8601(now_ms());
    let record = FailureRecord {
        id: key_of(&delivery.event_id),
        event_id: delivery.event_id.clone(),
        subject: subject.to_string(),
        operation: format!("{:?}", event.operation).to_lowercase(),
        event_time: iso8601(event_time),
        body_digest: delivery.body_digest.clone(),
        first_failed_at: previous
            .as_ref()
            .map_or_else(|| at.clone(), |p| p.first_failed_at.clone()),
        last_failed_at: at,
        attempts: previous.map_or(1, |p| p.attempts + 1),
        permanent: e.is_permanent(),
        error: serde_json::to_value(e)?,
        detail: e.to_string(),
        event: delivery.event.clone(),
    };
    state.record_failure(&record).await
}

/// Keeps the conflict for a person to resolve and gives the sender its final answer.
async fn conflict_answer(
    state: &State,
    delivery: &Delivery,
    event: &LifecycleEvent,
    applied: &Applied,
    subject: &str,
) -> Result<Value> {
    let Conflict {
        reason,
        filter,
        accounts,
    } = applied.conflict.clone().unwrap_or_else(|| Conflict {
        reason: ConflictReason::SeveralMatches,
        filter: String::new(),
        accounts: Vec::new(),
    });
    let detail = match reason {
        ConflictReason::OtherExternalId => {
            "the CXone account with this userName belongs to another externalId; nothing written"
        }
        ConflictReason::SeveralMatches => "several CXone accounts match this person; nothing written",
        ConflictReason::IncompleteAnswer => {
            "CXone counted a matching account its lookup answer did not list; nothing written"
        }
        ConflictReason::FilterIgnored => {
            "CXone answered the lookup with accounts its filter does not match; nothing written"
        }
    };
    let mut accounts = accounts.into_iter();
    let record = ConflictRecord {
        id: key_of(&delivery.event_id),
        event_id: delivery.event_id.clone(),
        subject: subject.to_string(),
        operation: format!("{:?}", event.operation).to_lowercase(),
        reason: serde_json::to_value(reason)?,
        detail: detail.to_string(),
        filter,
        detected_at: iso8601(now_ms()),
        event: delivery.event.clone(),
        account: accounts.next(),
        other_accounts: accounts.collect(),
    };
    state.record_conflict(&record).await?;
    Ok(json!({
        "status": "success", "action": Action::Conflict, "eventId": delivery.event_id,
        "conflictId": record.id, "reason": record.reason, "detail": detail,
    }))
}
