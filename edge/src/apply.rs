//! The host of core's engine for one change to one person (`cxone_scim_core::apply`). It runs
//! inside the person's ledger object, so the ledger's `begin` and `commit` are local and the
//! change costs its caller one call: the object links the userName's ledger, asks its own
//! tables, sends the flow's requests to CXone, keeps the records core says to keep, commits,
//! and appends the audit record. Every decision is core's.

use crate::config::Config;
use crate::driver::{now_ms, run_authorized_then, seed, Budget};
use crate::kv::State;
use crate::ledger::{self, BeginRequest, CommitRequest, Ledger};
use cxone_scim_core::apply::{admit, prepare, settle, Admission, ApplyAnswer, BusyWait, Delivery, Keep, Ran};
use cxone_scim_core::audit::AuditRecord;
use cxone_scim_core::event::{Command, LifecycleEvent};
use cxone_scim_core::flows::LifecycleFlow;
use cxone_scim_core::ledger::{link_of, Link, PersonState};
use cxone_scim_core::UnixMillis;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use worker::{Delay, Env, Result, SqlStorage};

/// Subrequests kept back from the flow: the audit record, and a failure or conflict record.
const RESERVED_SUBREQUESTS: u32 = 6;

/// What a caller asks of the person's ledger object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    pub delivery: Delivery,
    /// Subrequests the change may take.
    pub allowance: u32,
    /// Set by a userName's ledger that forwards the change to the person's ledger: what it had
    /// ordered before the link, and when it first saw the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<PersonState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<UnixMillis>,
    #[serde(default)]
    pub forwarded: bool,
}

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

/// The Worker's side: asks the person's ledger to apply `event` and fills the request's log
/// line from the answer. The answer's `used` counts this call too.
pub async fn apply(
    env: &Env,
    event: &LifecycleEvent,
    delivery: Delivery,
    audit: &mut AuditRecord,
    allowance: u32,
) -> Result<ApplyAnswer> {
    audit.operation = Some(cxone_scim_core::apply::operation_name(event));
    audit.subject = Some(event.subject_key());
    audit.event_id = Some(delivery.event_id.clone());
    let request = ApplyRequest {
        delivery,
        allowance: allowance.saturating_sub(1),
        carried: None,
        first_seen: None,
        forwarded: false,
    };
    let mut answer = Ledger::of(env, &event.subject_key())?.apply(&request).await?;
    answer.used = answer.used.saturating_add(1);
    audit.outcome = answer.outcome;
    audit.action = answer.action;
    audit.cxone_id = answer.cxone_id.clone();
    audit.detail = answer.detail.clone();
    Ok(answer)
}

/// Inside the ledger object: the whole change, as core's engine lays it out.
pub async fn run(env: &Env, sql: &SqlStorage, req: ApplyRequest) -> Result<ApplyAnswer> {
    let config = match Config::shared(env) {
        Ok(c) => c,
        Err(problems) => {
            return Err(worker::Error::RustError(format!(
                "misconfigured: {}",
                problems.join("; ")
            )))
        }
    };
    let event = match LifecycleEvent::from_json(&serde_json::to_vec(&req.delivery.event)?) {
        Ok(e) => e,
        Err(e) => return Ok(ApplyAnswer::refused(&e.into())),
    };
    let prepared = match prepare(
        &event,
        &req.delivery,
        &config.policy,
        &config.roles.target,
        config.ledger.max_future_ms,
        now_ms(),
    ) {
        Ok(p) => p,
        Err(refused) => return Ok(refused),
    };
    let mut begin = BeginRequest {
        facts: prepared.facts.clone(),
        lease_ms: config.ledger.lease_ms,
        lease_token: format!("{:016x}", seed()),
        carried: req.carried.clone(),
    };
    // Ordered where the userName's ledger first saw it, whenever it is redelivered.
    begin.facts.occurred_at = begin.facts.occurred_at.or(req.first_seen);
    let mut waiting = BusyWait::new(now_ms(), req.delivery.waits_for_busy(config.ledger.wait_ms));
    let mut asked = 0u32;
    let go = loop {
        // The userName's ledger forwards here from now on, handing over what it had ordered.
        if let Some((user, target)) = link_of(event.external_id.as_deref(), &event.user_name) {
            asked += 1;
            match Ledger::of(env, &user)?.link(&target).await? {
                Link::Linked { carried } => begin.carried = carried,
                Link::Busy { retry_after_ms } => match waiting.next(retry_after_ms, now_ms()) {
                    Some(pause) => {
                        Delay::from(Duration::from_millis(pause)).await;
                        continue;
                    }
                    None => {
                        let mut answer = ApplyAnswer::busy(retry_after_ms);
                        answer.used = asked;
                        return Ok(answer);
                    }
                },
            }
        }
        match admit(ledger::on_begin(sql, &begin, now_ms())?) {
            Admission::Go(go) => break go,
            Admission::Answer(mut answer) => {
                answer.used = asked;
                return Ok(answer);
            }
            Admission::Busy {
                retry_after_ms,
                mut answer,
            } => match waiting.next(retry_after_ms, now_ms()) {
                Some(pause) => Delay::from(Duration::from_millis(pause)).await,
                None => {
                    answer.used = asked;
                    return Ok(answer);
                }
            },
            Admission::Forward {
                to,
                carried,
                first_seen,
            } => {
                if req.forwarded {
                    return Err(worker::Error::RustError(format!(
                        "a forwarded change was forwarded again (to {to})"
                    )));
                }
                let forward = ApplyRequest {
                    delivery: req.delivery.clone(),
                    allowance: req.allowance.saturating_sub(asked + 1),
                    carried,
                    first_seen,
                    forwarded: true,
                };
                let mut answer = Ledger::of(env, &to)?.apply(&forward).await?;
                answer.used = answer.used.saturating_add(asked + 1);
                return Ok(answer);
            }
        }
    };
    let state = State::open(env)?;
    let roles_after = prepared.command.roles_after();
    let started = now_ms();
    let flow = flow_for(&config, prepared.command.known_as(go.known_id.clone()));
    let given = req.allowance.saturating_sub(asked + RESERVED_SUBREQUESTS);
    let mut budget = Budget::new(given, 1).within_lease(go.lease.until, config.ledger.request_timeout_ms);
    let (result, roles_before) = run_authorized_then(
        flow,
        &config.credentials,
        config.retry,
        &state,
        &mut budget,
        |flow: &LifecycleFlow| flow.roles_before(&config.roles.target),
    )
    .await;
    let settlement = settle(Ran {
        delivery: &req.delivery,
        event: &event,
        go: &go,
        result,
        roles_before,
        roles_after,
        skipped_groups: prepared.skipped_groups,
        started,
        now: now_ms(),
    });
    let mut used = asked + given.saturating_sub(budget.remaining()) + u32::from(settlement.audit.is_some());
    let audit_append = async {
        if let Some(draft) = settlement.audit.clone() {
            // Parked for replay when the trail cannot be reached; never fails the write.
            let _ = crate::audit_trail::record(env, &config, vec![draft]).await;
        }
    };
    match &settlement.keep {
        Keep::Nothing => {}
        Keep::Conflict(record) => {
            used += 1;
            state.record_conflict(record.as_ref()).await?;
        }
        Keep::Failure(seed) => {
            used += 2;
            let kept = match state.failure_of_event(&req.delivery.event_id).await {
                Ok(previous) => {
                    let record = seed.as_ref().clone().record(previous.as_ref(), now_ms());
                    state.record_failure(&record).await
                }
                Err(e) => Err(e),
            };
            if let Err(unrecorded) = kept {
                // No commit: the lease runs out and the sender's redelivery finds the person free.
                audit_append.await;
                return Err(unrecorded);
            }
        }
    }
    let committed = ledger::on_commit(
        sql,
        &CommitRequest {
            commit: settlement.commit,
            failure_recorded: settlement.failure_recorded,
        },
        now_ms(),
    )?;
    let superseded = &committed.superseded_failures;
    used += superseded.len() as u32;
    // A record left behind expires with its TTL; clearing is best effort.
    let clearing = join_all(superseded.iter().map(|id| state.clear_failure_of_event(id)));
    let _ = futures_util::future::join(clearing, audit_append).await;
    let mut answer = settlement.answer;
    answer.used = used;
    Ok(answer)
}
