//! `GET /audit` and `GET /audit/verify` (admin): the audit trail as JSON lines, by time range,
//! person and trigger, and the check of its hash chain. `POST /audit/parked/replay` (admin):
//! appending the records the trail could not take when their write happened (listed by
//! `GET /audit/parked`, beside the other parked things in `super::admin`).

use crate::audit_trail::{replay_parked as replay, Query, Trail};
use crate::config::Config;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::TimeRange;
use serde_json::Value;
use worker::{Env, Headers, Request, Response, Result};

/// Batches one replay appends at most (the rest wait for the next one, or the cron): each costs
/// three subrequests (read, append, drop), well inside the Free plan's 50.
const REPLAY_BATCHES: usize = 10;

/// The trail's answer, or a 503 that says it cannot be reached (it is one object; a
/// deployment or an overload can keep it away for a moment).
async fn from_trail(answer: impl std::future::Future<Output = Result<Value>>) -> std::result::Result<Value, ApiError> {
    answer
        .await
        .map_err(|e| ApiError::unavailable(format!("the audit trail cannot be reached: {e}")))
}

/// The query `?from=&to=&externalId=&trigger=&cursor=&limit=`, or what is wrong with it. A
/// date in `from`/`to` covers its whole day ([`TimeRange`]).
fn query_of(req: &Request) -> std::result::Result<Query, ApiError> {
    let mut q = Query::default();
    let url = req
        .url()
        .map_err(|e| ApiError::bad_request("invalidSyntax", e.to_string()))?;
    let (mut from, mut to) = (None, None);
    for (k, v) in url.query_pairs() {
        let bad = |what: &str| ApiError::bad_request("invalidValue", format!("{k}: {what}, not {v:?}"));
        match k.as_ref() {
            "from" => from = Some(v.into_owned()),
            "to" => to = Some(v.into_owned()),
            "externalId" if !v.is_empty() => q.external_id = Some(v.into_owned()),
            "trigger" if !v.is_empty() => q.trigger = Some(v.into_owned()),
            "cursor" if !v.is_empty() => q.after = Some(v.parse().map_err(|_| bad("a cursor from a previous page"))?),
            "limit" => q.limit = Some(v.parse().map_err(|_| bad("a whole number"))?),
            _ => {}
        }
    }
    let range = TimeRange::parse(from.as_deref(), to.as_deref())
        .map_err(|e| ApiError::bad_request("invalidValue", e.to_string()))?;
    (q.from, q.to) = (range.from, range.to);
    Ok(q)
}

/// One page of entries, one JSON object per line (`application/x-ndjson`), oldest first; the
/// `Next-Cursor` header is there when more follow.
pub async fn list(req: &Request, env: &Env) -> Result<Response> {
    let q = match query_of(req) {
        Ok(q) => q,
        Err(e) => return reply::api_error(&e),
    };
    let page = match from_trail(Trail::open(env)?.query(&q)).await {
        Ok(p) => p,
        Err(e) => return reply::api_error(&e),
    };
    let mut body = String::new();
    for entry in page["entries"].as_array().into_iter().flatten() {
        body.push_str(&entry.to_string());
        body.push('\n');
    }
    let headers = Headers::new();
    headers.set("Content-Type", "application/x-ndjson")?;
    headers.set("Cache-Control", "no-store")?;
    if let Some(next) = page["cursor"].as_str() {
        headers.set("Next-Cursor", next)?;
    }
    Ok(Response::ok(body)?.with_headers(headers))
}

/// `{"ok", "checked", "firstSeq", "lastSeq", "headHash"}`, or `"ok": false` with the record
/// where the chain breaks.
pub async fn verify(req: &Request, env: &Env) -> Result<Response> {
    let q = match query_of(req) {
        Ok(q) => q,
        Err(e) => return reply::api_error(&e),
    };
    match from_trail(Trail::open(env)?.verify(&q)).await {
        Ok(answer) => reply::json(200, &answer),
        Err(e) => reply::api_error(&e),
    }
}

/// Appends parked batches to the trail, oldest first (`dryRun`: which it would append).
/// `{"dryRun", "batches": [ids], "records", "more", "error"?}`; 503 when the trail still
/// cannot be reached and nothing was appended.
pub async fn replay_parked(env: &Env, config: &Config, dry_run: bool) -> Result<Response> {
    let replayed = replay(env, config, REPLAY_BATCHES, dry_run).await?;
    let status = if replayed.error.is_some() && replayed.batches.is_empty() {
        503
    } else {
        200
    };
    reply::json(status, &replayed)
}
