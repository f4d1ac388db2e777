//! `POST /provision/bulk` and `GET /provision/bulk/{runId}` (admin). A dry run is planned
//! here; a real run goes to its own Durable Object (`crate::bulk`).

use crate::bulk::{bulk_config, parse_body, BulkBody, Runner};
use crate::config::Config;
use crate::driver::seed;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::AuditRecord;
use cxone_scim_core::bulk::InMemoryRun;
use cxone_scim_core::dry_run::{self, DryRunField};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response, Result};

/// Largest accepted bulk body.
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// What the Worker reads of the body itself; the run's object reads the users.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Head {
    #[allow(dead_code)]
    users: IgnoredAny,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    dry_run: Option<DryRunField>,
}

fn valid_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn invalid(detail: String) -> Result<Response> {
    reply::api_error(&ApiError::bad_request("invalidSyntax", detail))
}

pub async fn post(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let (query_dry_run, bytes) = match super::typed_body(&mut req, MAX_BODY).await? {
        Ok(read) => read,
        Err(e) => return reply::api_error(&e),
    };
    let head: Head = match parse_body(&bytes) {
        Ok(h) => h,
        Err(e) => return invalid(e),
    };
    let run_id = head.run_id.clone().unwrap_or_else(|| format!("run-{:016x}", seed()));
    if !valid_run_id(&run_id) {
        return reply::api_error(&ApiError::bad_request(
            "invalidValue",
            "runId must be 1-64 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    audit.subject = Some(format!("run:{run_id}"));
    audit.operation = Some("bulk".into());
    let dry_run = match dry_run::agree(query_dry_run, head.dry_run.map(|f| f.0)) {
        Ok(d) => d.unwrap_or(false),
        Err(e) => return reply::api_error(&e.into()),
    };
    if dry_run {
        let body: BulkBody = match parse_body(&bytes) {
            Ok(b) => b,
            Err(e) => return invalid(e),
        };
        let flow = InMemoryRun::new(&body.users, &config.policy, bulk_config(config), seed());
        let mut answer = serde_json::to_value(flow.dry_run())?;
        answer["runId"] = json!(run_id);
        return reply::json(200, &answer);
    }
    let resp = Runner::of(env, &run_id)?.start(&run_id, &bytes).await?;
    audit.detail = Some(format!("bulk run answered {}", resp.status_code()));
    Ok(resp)
}

pub async fn get(req: &Request, env: &Env, run_id: &str) -> Result<Response> {
    if !valid_run_id(run_id) {
        return reply::api_error(&ApiError::bad_request("invalidValue", "malformed runId"));
    }
    // Only the paging parameters reach the run's object, re-encoded.
    let url = req.url()?;
    let query: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "cursor" || k == "limit")
        .map(|(k, v)| format!("{k}={}", cxone_scim_core::http::encode_component(&v)))
        .collect();
    let query = query.join("&");
    Runner::of(env, run_id)?
        .status(Some(query.as_str()).filter(|q| !q.is_empty()))
        .await
}
