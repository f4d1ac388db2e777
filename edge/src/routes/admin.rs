//! Admin endpoints over what the Worker keeps for people to resolve:
//! `GET /failures`, `POST /failures/{id}/replay`, `GET /conflicts`, `DELETE /conflicts/{id}`;
//! and `GET /metrics`: the isolate's wasm linear memory, for leak checks.

use crate::apply::{apply, plan_change};
use crate::config::Config;
use crate::driver::Budget;
use crate::kv::State;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::apply::Delivery;
use cxone_scim_core::audit::AuditRecord;
use cxone_scim_core::event::LifecycleEvent;
use serde_json::json;
use worker::{Env, Request, Response, Result};

/// `?cursor=` and `?limit=` of a listing.
pub(crate) fn paging(req: &Request) -> (Option<String>, usize) {
    let mut cursor = None;
    let mut limit = crate::kv::MAX_PAGE;
    if let Ok(url) = req.url() {
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "cursor" if !v.is_empty() => cursor = Some(v.into_owned()),
                "limit" => limit = v.parse().unwrap_or(limit),
                _ => {}
            }
        }
    }
    (cursor, limit)
}

/// `{"count", "<name>": [...], "cursor"?}`: one page of a listing.
pub(crate) fn page<T: serde::Serialize>(name: &str, items: &[T], next: Option<String>) -> Result<Response> {
    let mut body = json!({"count": items.len(), name: items});
    if let Some(next) = next {
        body["cursor"] = json!(next);
    }
    reply::json(200, &body)
}

pub async fn failures(req: &Request, env: &Env) -> Result<Response> {
    let (cursor, limit) = paging(req);
    let (failures, next) = State::open(env)?.failures(cursor, limit).await?;
    page("failures", &failures, next)
}

pub async fn conflicts(req: &Request, env: &Env) -> Result<Response> {
    let (cursor, limit) = paging(req);
    let (conflicts, next) = State::open(env)?.conflicts(cursor, limit).await?;
    page("conflicts", &conflicts, next)
}

pub async fn dismiss_conflict(env: &Env, id: &str) -> Result<Response> {
    let state = State::open(env)?;
    if state.conflict(id).await?.is_none() {
        return reply::api_error(&ApiError::not_found(format!("no conflict {id}")));
    }
    state.dismiss_conflict(id).await?;
    reply::json(200, &json!({"status": "dismissed", "id": id}))
}

/// Re-runs a recorded failure through the ledger, as if the sender had redelivered it, but
/// past a permanent answer. `dryRun` reads CXone and returns the first write it would send.
pub async fn replay(env: &Env, config: &Config, id: &str, dry_run: bool, audit: &mut AuditRecord) -> Result<Response> {
    let state = State::open(env)?;
    let Some(record) = state.failure(id).await? else {
        return reply::api_error(&ApiError::not_found(format!("no failure {id}")));
    };
    audit.event_id = Some(record.event_id.clone());
    let body = serde_json::to_vec(&record.event)?;
    let event = match LifecycleEvent::from_json(&body) {
        Ok(e) => e,
        Err(e) => return reply::api_error(&e.into()),
    };
    if dry_run {
        let command = match event.command(&config.policy, &config.roles.target) {
            Ok((c, _)) => c,
            Err(v) => return reply::api_error(&v.into()),
        };
        let mut budget = Budget::for_request(config.subrequest_budget);
        let planned = plan_change(config, command, &state, &mut budget).await;
        return reply::json(
            200,
            &json!({"dryRun": true, "eventId": record.event_id, "requests": planned.into_iter().collect::<Vec<_>>()}),
        );
    }
    let delivery = Delivery {
        event_id: record.event_id,
        body_digest: record.body_digest,
        event: record.event,
        replay: true,
        trigger: cxone_scim_core::audit::Trigger::Admin,
        deprovision: None,
        leaver_id: None,
    };
    reply::answer(apply(env, &event, delivery, audit, config.subrequest_budget).await?)
}

pub async fn notices(req: &Request, env: &Env) -> Result<Response> {
    let (cursor, limit) = paging(req);
    let (notices, next) = State::open(env)?.notices(cursor, limit).await?;
    page("notices", &notices, next)
}

/// `{"count", "parked": [{id, drafts, parkedAt, attempts, error}], "cursor"?}`: the audit
/// records waiting for the trail, oldest first.
pub async fn parked_audits(req: &Request, env: &Env) -> Result<Response> {
    let (cursor, limit) = paging(req);
    let (parked, next) = State::open(env)?.parked_audits(cursor, limit).await?;
    page("parked", &parked, next)
}

/// Sends a parked IAM notice again (signed anew); delivered, it is no longer kept. `dryRun`:
/// the notice it would send, nothing sent.
pub async fn replay_notice(env: &Env, config: &Config, id: &str, dry_run: bool) -> Result<Response> {
    let state = State::open(env)?;
    let Some(parked) = state.notice(id).await? else {
        return reply::api_error(&ApiError::not_found(format!("no parked notice {id}")));
    };
    if crate::notices::receiver(config, &parked.notice).is_none() {
        let name = match parked.notice {
            cxone_scim_core::audit::Outbound::RoleSync(_) => "IAM_WEBHOOK_URL",
            cxone_scim_core::audit::Outbound::Leaver(_) => "HR_WEBHOOK_URL",
        };
        return reply::api_error(&ApiError::unavailable(format!("{name} is not set")));
    }
    if dry_run {
        return reply::json(200, &json!({"dryRun": true, "notice": parked}));
    }
    let delivered = crate::notices::replay(config, &state, parked).await;
    reply::json(200, &delivered)
}

/// WebAssembly pages are 64 KiB.
const WASM_PAGE: usize = 65_536;

pub fn metrics() -> Result<Response> {
    #[cfg(target_arch = "wasm32")]
    let bytes = core::arch::wasm32::memory_size(0) * WASM_PAGE;
    #[cfg(not(target_arch = "wasm32"))]
    let bytes = 0usize;
    reply::json(200, &json!({"wasmMemoryBytes": bytes}))
}
