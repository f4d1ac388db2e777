//! Leavers for an admin:
//! - `POST /deprovision`: one leaver (`externalId|userName`, `mode`, `endSessions`,
//!   `blockOnDependencies`, `reason`, `dryRun`), through the person's ledger like every write;
//!   `dryRun` reads what the leaver's steps would find and lists the writes they would send.
//!   `{"requests":[…]}` (up to 1,000) is a batch, run by its own object
//!   (`crate::leaver_batches`) and held for approval above `DELETION_THRESHOLD`: `202` with its
//!   progress; `GET /deprovision/batches/{id}`, `POST /deprovision/batches/{id}/approve|reject`.
//! - `GET /deprovision` (paged) and `GET /deprovision/{id}`: leavers' records, with each step.
//! - `POST /deprovision/{id}/replay` (`dryRun`): a leaver whose steps did not all settle, again,
//!   ordered where it was (a later joiner is never undone by it).

use super::admin::{page, paging};
use crate::apply::{apply, deprovision_flow_for};
use crate::config::Config;
use crate::driver::{now_ms, plan_first_write_then, seed, Budget, PlannedRequest};
use crate::kv::State;
use crate::leaver_batches::{BatchCall, LeaverBatches};
use crate::ledger::Ledger;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::apply::LeaverRecord;
use cxone_scim_core::audit::{AuditRecord, Trigger};
use cxone_scim_core::deprovision::{BatchRow, BatchState, DeprovisionBatch, DeprovisionRequest, Plan};
use cxone_scim_core::dry_run;
use cxone_scim_core::event::LifecycleEvent;
use serde_json::{json, Value};
use worker::{Env, Request, Response, Result};

/// A batch of 1,000 leavers, each with a reason, fits well within this.
const MAX_BODY: usize = 1024 * 1024;

pub async fn post(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let (query_dry_run, bytes) = match super::typed_body(&mut req, MAX_BODY).await? {
        Ok(read) => read,
        Err(e) => return reply::api_error(&e),
    };
    let batch = match DeprovisionBatch::parse(&bytes) {
        Ok(b) => b,
        Err(e) => return reply::api_error(&e),
    };
    let dry_run = match dry_run::agree(query_dry_run, batch.dry_run) {
        Ok(d) => d.unwrap_or(false),
        Err(e) => return reply::api_error(&e.into()),
    };
    if batch.batch {
        return start_batch(env, config, batch, dry_run, audit).await;
    }
    let Some(one) = batch.requests.into_iter().next() else {
        return reply::api_error(&ApiError::bad_request("invalidValue", "no leaver"));
    };
    audit.operation = Some("deprovision".into());
    audit.subject = Some(one.lookup.person_key());
    if dry_run {
        return reply::json(200, &plan(env, config, &one).await?);
    }
    let (event, delivery) = one.delivery(format!("deprovision-{:016x}", seed()), now_ms(), Trigger::Admin);
    reply::answer(apply(env, &event, delivery, audit, config.subrequest_budget).await?)
}

/// What a leaver's steps would find and send: the reads are made, no write is sent.
async fn plan(env: &Env, config: &Config, one: &DeprovisionRequest) -> Result<Value> {
    let mut lookup = one.lookup.clone();
    // The account the person's ledger knows is read first, as the real run does.
    lookup.cxone_id = Ledger::of(env, &lookup.person_key())?.inspect().await?.person.cxone_id;
    let state = State::open(env)?;
    let mut budget = Budget::for_request(config.subrequest_budget);
    let flow = deprovision_flow_for(config, lookup, one.options.clone());
    let (_, plan) = plan_first_write_then(flow, &config.credentials, config.retry, &state, &mut budget, |flow| {
        flow.plan()
    })
    .await;
    Ok(plan_body(plan, &one.options))
}

fn plan_body(plan: Plan, options: &cxone_scim_core::deprovision::Options) -> Value {
    let would_send: Vec<PlannedRequest> = plan.would_send.iter().map(PlannedRequest::of).collect();
    let mut body = json!({
        "dryRun": true, "options": options, "wouldSend": would_send, "steps": plan.steps,
        "cxoneId": plan.cxone_id, "agentId": plan.agent_id, "dependencies": plan.dependencies,
        "licence": "not_managed",
    });
    match plan.finished {
        Some(Ok(report)) => body["finished"] = json!(report),
        Some(Err(e)) => body["error"] = json!(e),
        None => {}
    }
    body
}

/// A batch: checked whole (done by the parser), held when the deletion guard says so, then run
/// by its own object. `dryRun`: what would happen, nothing run.
async fn start_batch(
    env: &Env,
    config: &Config,
    batch: DeprovisionBatch,
    dry_run: bool,
    audit: &mut AuditRecord,
) -> Result<Response> {
    let state = BatchState::start(batch.requests.len(), &config.deprovision.threshold);
    let rows: Vec<BatchRow> = batch.requests.iter().map(BatchRow::of).collect();
    audit.operation = Some("deprovision_batch".into());
    if dry_run {
        return reply::json(
            200,
            &json!({"dryRun": true, "total": rows.len(), "state": state, "requests": rows,
                    "threshold": config.deprovision.threshold}),
        );
    }
    let id = format!("lb_{:016x}", seed());
    let progress = LeaverBatches::of(env, &id)?
        .call(&BatchCall::Start {
            id: id.clone(),
            rows,
            state,
            at: now_ms(),
        })
        .await?;
    audit.subject = Some(id);
    reply::json(202, &progress)
}

/// `GET /deprovision/batches/{id}?after=&limit=`: progress and one page of rows.
pub async fn batch(req: &Request, env: &Env, id: &str) -> Result<Response> {
    let mut after = None;
    let mut limit = 100usize;
    if let Ok(url) = req.url() {
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "after" => after = v.parse().ok(),
                "limit" => limit = v.parse().unwrap_or(limit).clamp(0, 1_000),
                _ => {}
            }
        }
    }
    match LeaverBatches::of(env, id)?
        .call_existing(&BatchCall::Status { after, limit })
        .await?
    {
        Some(answer) => reply::json(200, &answer),
        None => no_batch(id),
    }
}

fn no_batch(id: &str) -> Result<Response> {
    reply::api_error(&ApiError::not_found(format!("no batch {id}")))
}

/// `POST /deprovision/batches/{id}/approve|reject`: a held batch runs, or is dropped.
pub async fn decide(env: &Env, id: &str, approve: bool, dry_run: bool) -> Result<Response> {
    let batches = LeaverBatches::of(env, id)?;
    if dry_run {
        let Some(answer) = batches
            .call_existing(&BatchCall::Status { after: None, limit: 0 })
            .await?
        else {
            return no_batch(id);
        };
        return reply::json(
            200,
            &json!({"dryRun": true, "approve": approve, "progress": answer["progress"]}),
        );
    }
    let call = if approve { BatchCall::Approve } else { BatchCall::Reject };
    let Some(answer) = batches.call_existing(&call).await? else {
        return no_batch(id);
    };
    if answer["changed"] == json!(false) {
        return reply::api_error(&ApiError::conflict(None, format!("batch {id} is not held")));
    }
    reply::json(200, &answer["progress"])
}

pub async fn list(req: &Request, env: &Env) -> Result<Response> {
    let (cursor, limit) = paging(req);
    let (leavers, next) = State::open(env)?.leavers(cursor, limit).await?;
    page("leavers", &leavers, next)
}

pub async fn show(env: &Env, id: &str) -> Result<Response> {
    match State::open(env)?.leaver(id).await? {
        Some(record) => reply::json(200, &record),
        None => reply::api_error(&ApiError::not_found(format!("no leaver {id}"))),
    }
}

pub async fn replay(env: &Env, config: &Config, id: &str, dry_run: bool, audit: &mut AuditRecord) -> Result<Response> {
    let Some(record): Option<LeaverRecord> = State::open(env)?.leaver(id).await? else {
        return reply::api_error(&ApiError::not_found(format!("no leaver {id}")));
    };
    if !record.report.replayable() {
        return reply::api_error(&ApiError::conflict(
            None,
            format!(
                "leaver {id} has nothing to replay: it ended {}",
                serde_json::to_value(record.report.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        ));
    }
    let event = match LifecycleEvent::from_json(&serde_json::to_vec(&record.event)?) {
        Ok(e) => e,
        Err(e) => return reply::api_error(&e.into()),
    };
    audit.operation = Some("deprovision_replay".into());
    if dry_run {
        let one = DeprovisionRequest {
            lookup: cxone_scim_core::event::Lookup {
                user_name: Some(event.user_name.clone()).filter(|n| !n.is_empty()),
                external_id: event.external_id.clone(),
                cxone_id: None,
            },
            options: record.options.clone(),
        };
        return reply::json(200, &plan(env, config, &one).await?);
    }
    let delivery = record.replay_delivery();
    reply::answer(apply(env, &event, delivery, audit, config.subrequest_budget).await?)
}
