//! `POST /provision/bulk` and `GET /provision/bulk/{runId}` (admin).

use crate::bulk::{continue_later, new_record, run_slice, SliceEnd};
use crate::config::Config;
use crate::driver::{seed, Budget};
use crate::kv::{RunRecord, State};
use crate::reply;
use cxone_scim_core::audit::AuditRecord;
use cxone_scim_core::bulk::{input_digest, BulkConfig, BulkRun, BulkUser};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Request, Response, Result};

/// Largest accepted bulk body.
pub const MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkBody {
    users: Vec<BulkUser>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
}

fn valid_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn bulk_config(config: &Config) -> BulkConfig {
    BulkConfig {
        batch_size: config.bulk.batch_size,
        precheck: config.bulk.precheck,
        fail_on_errors: config.bulk.fail_on_errors,
        retry: config.retry,
        ..BulkConfig::new(&config.scim_base_url)
    }
}

/// `?dryRun=true` (or `1`), as the conventions allow it on every admin POST.
pub fn dry_run_query(req: &Request) -> bool {
    req.url()
        .map(|u| u.query_pairs().any(|(k, v)| k == "dryRun" && (v == "true" || v == "1")))
        .unwrap_or(false)
}

fn run_answer(record: &RunRecord) -> Value {
    let finished = record.flow.is_finished();
    let mut answer = json!({
        "runId": record.run_id,
        "status": if finished { "finished" } else if record.last_error.is_some() { "stalled" } else { "running" },
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
    });
    if let Some(e) = &record.last_error {
        answer["lastError"] = json!(e);
    }
    if let (Some(obj), Ok(Value::Object(report))) = (answer.as_object_mut(), serde_json::to_value(record.flow.report()))
    {
        obj.extend(report);
    }
    answer
}

pub async fn post(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let query_dry_run = dry_run_query(&req);
    let Some(bytes) = reply::body_within(&mut req, MAX_BODY).await? else {
        return reply::api_error(&cxone_scim_core::api_error::ApiError::too_large(MAX_BODY));
    };
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let body: BulkBody = match serde_path_to_error::deserialize(de) {
        Ok(b) => b,
        Err(e) => {
            let detail = format!("invalid bulk request at {}: {}", e.path(), e.inner());
            return reply::error(400, Some("invalidSyntax"), detail);
        }
    };
    let run_id = body.run_id.clone().unwrap_or_else(|| format!("run-{:016x}", seed()));
    if !valid_run_id(&run_id) {
        return reply::error(
            400,
            Some("invalidValue"),
            "runId must be 1-64 characters of A-Z a-z 0-9 . _ -",
        );
    }
    audit.subject = Some(format!("run:{run_id}"));
    audit.operation = Some("bulk".into());
    let flow = BulkRun::new(&body.users, &config.policy, bulk_config(config), seed());
    if query_dry_run || body.dry_run == Some(true) {
        let mut answer = serde_json::to_value(flow.dry_run())?;
        answer["runId"] = json!(run_id);
        return reply::json(200, &answer);
    }
    let state = State::open(env)?;
    let mut budget = Budget::new(config.subrequest_budget, 1);
    budget.take(1);
    let digest = input_digest(&body.users);
    let mut record = match state.run(&run_id).await? {
        Some(existing) if existing.input_digest != digest => {
            return reply::error(
                409,
                Some("uniqueness"),
                format!("runId {run_id} was used for a different input"),
            );
        }
        Some(existing) => existing,
        None => new_record(&run_id, digest, flow),
    };
    let end = run_slice(config, &state, &mut record, &mut budget).await?;
    audit.detail = Some(format!("{end:?}"));
    match end {
        SliceEnd::Finished => reply::json(200, &run_answer(&record)),
        SliceEnd::Failed(e) => reply::error(
            502,
            None,
            format!("bulk run {run_id} stopped: {e}; post it again to resume"),
        ),
        SliceEnd::Paused | SliceEnd::Busy { .. } => {
            continue_later(env, &run_id).await?;
            reply::json(202, &run_answer(&record))
        }
    }
}

pub async fn get(env: &Env, run_id: &str) -> Result<Response> {
    if !valid_run_id(run_id) {
        return reply::error(400, Some("invalidValue"), "malformed runId");
    }
    match State::open(env)?.run(run_id).await? {
        Some(record) => reply::json(200, &run_answer(&record)),
        None => reply::error(404, None, format!("no bulk run {run_id}")),
    }
}
