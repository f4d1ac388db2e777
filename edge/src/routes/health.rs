//! `GET /healthz` (open; details for admins) and `GET /test/validate` (admin).

use crate::config::Config;
use crate::driver::{now_ms, run_authorized, seed, Budget};
use crate::kv::State;
use crate::reply;
use cxone_scim_core::flows::{probe_user_name, ConnectionCheckFlow};
use serde_json::json;
use worker::{Env, Response, Result};

/// `{"status":"ok"}`, or 503 `{"status":"misconfigured"}` with the `problems` only when
/// `show_problems` (the caller presented an admin token): they describe the deployment.
pub fn healthz(env: &Env, show_problems: bool) -> Result<Response> {
    match Config::load(env) {
        Ok(_) => reply::json(200, &json!({"status": "ok"})),
        Err(problems) if show_problems => reply::json(503, &json!({"status": "misconfigured", "problems": problems})),
        Err(_) => reply::json(503, &json!({"status": "misconfigured"})),
    }
}

/// A token, a search for a userName nobody has (or the first page where the server lists
/// without a filter) and the schemas, through the real token and SCIM path.
pub async fn validate(env: &Env, config: &Config) -> Result<Response> {
    let started = now_ms();
    let state = State::open(env)?;
    let probe = probe_user_name(seed(), seed());
    let flow = ConnectionCheckFlow::new(
        &config.scim_base_url,
        config.profile.capabilities(),
        &probe,
        config.retry,
        seed(),
    );
    let result = run_authorized(
        flow,
        &config.credentials,
        config.retry,
        &state,
        &mut Budget::for_request(config.subrequest_budget),
    )
    .await;
    let latency_ms = now_ms().saturating_sub(started);
    match result {
        Ok(check) => reply::json(
            200,
            &json!({"status": "healthy", "profile": config.profile, "search": check.search,
                "usersFetched": check.users_fetched, "totalResults": check.total_results,
                "schemas": check.schemas, "latencyMs": latency_ms}),
        ),
        Err(e) => reply::json(
            503,
            &json!({"status": "unhealthy", "reason": e.to_string(), "latencyMs": latency_ms}),
        ),
    }
}
