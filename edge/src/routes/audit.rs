//! `GET /audit` and `GET /audit/verify` (admin): the audit trail as JSON lines, by time range,
//! person and trigger, and the check of its hash chain.

use crate::audit_trail::{time_param, Query, Trail};
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use worker::{Env, Headers, Request, Response, Result};

/// The query `?from=&to=&externalId=&trigger=&cursor=&limit=`, or what is wrong with it.
fn query_of(req: &Request) -> std::result::Result<Query, ApiError> {
    let mut q = Query::default();
    let url = req
        .url()
        .map_err(|e| ApiError::bad_request("invalidSyntax", e.to_string()))?;
    for (k, v) in url.query_pairs() {
        let bad = |what: &str| ApiError::bad_request("invalidValue", format!("{k}: {what}, not {v:?}"));
        match k.as_ref() {
            "from" => q.from = Some(time_param(&v).ok_or_else(|| bad("an RFC 3339 time or a date"))?),
            "to" => q.to = Some(time_param(&v).ok_or_else(|| bad("an RFC 3339 time or a date"))?),
            "externalId" if !v.is_empty() => q.external_id = Some(v.into_owned()),
            "trigger" if !v.is_empty() => q.trigger = Some(v.into_owned()),
            "cursor" if !v.is_empty() => q.after = Some(v.parse().map_err(|_| bad("a cursor from a previous page"))?),
            "limit" => q.limit = Some(v.parse().map_err(|_| bad("a whole number"))?),
            _ => {}
        }
    }
    Ok(q)
}

/// One page of entries, one JSON object per line (`application/x-ndjson`), oldest first; the
/// `Next-Cursor` header is there when more follow.
pub async fn list(req: &Request, env: &Env) -> Result<Response> {
    let q = match query_of(req) {
        Ok(q) => q,
        Err(e) => return reply::api_error(&e),
    };
    let page = Trail::open(env)?.query(&q).await?;
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
    reply::json(200, &Trail::open(env)?.verify(&q).await?)
}
