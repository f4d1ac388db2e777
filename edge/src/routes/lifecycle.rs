//! `POST /webhooks/lifecycle`: verify, deduplicate, order, apply the policy, drive CXone.

use crate::config::Config;
use crate::driver::{now_ms, run_authorized, seed};
use crate::kv::{FailureRecord, OrderMark, State};
use crate::reply;
use cxone_scim_core::audit::{iso8601, AuditRecord, Outcome};
use cxone_scim_core::event::LifecycleEvent;
use cxone_scim_core::flows::{Action, Applied, LifecycleFlow};
use cxone_scim_core::webhook::{verify, SignatureHeaders};
use futures_util::future::join;
use serde_json::{json, Value};
use worker::{Env, Request, Response, Result};

/// Largest accepted event body.
pub const MAX_BODY: usize = 256 * 1024;

pub async fn handle(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let Some(body) = reply::body_within(&mut req, MAX_BODY).await? else {
        return reply::too_large(MAX_BODY);
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
    let now = now_ms();
    let verified = match verify(&config.webhook_secrets, headers, &body, (now / 1000) as i64) {
        Ok(v) => v,
        Err(e) => {
            audit.detail = Some(e.to_string());
            return reply::error(401, None, format!("webhook signature rejected: {e}"));
        }
    };
    audit.event_id = Some(verified.id.clone());
    // Parsed before the duplicate check so both KV reads can go out together; a body that does
    // not parse was never applied, so no earlier answer exists for it.
    let event = match LifecycleEvent::from_json(&body) {
        Ok(e) => e,
        Err(e) => {
            audit.detail = Some(e.to_string());
            return reply::error(400, Some("invalidSyntax"), e.to_string());
        }
    };
    let subject = event.subject_key();
    audit.operation = Some(format!("{:?}", event.operation).to_lowercase());
    audit.subject = Some(subject.clone());
    let state = State::open(env)?;
    let (answered, last) = join(state.answered(&verified.id), state.last_applied(&subject)).await;
    if let Some(mut first) = answered? {
        audit.outcome = Outcome::Duplicate;
        first["duplicate"] = json!(true);
        return reply::json(200, &first);
    }
    if let Some(last) = last?.filter(|m| verified.timestamp < m.timestamp) {
        let answer = json!({
            "status": "success", "action": Action::Stale, "eventId": verified.id,
            "supersededBy": last.event_id,
        });
        audit.action = Some(Action::Stale);
        state.remember_answer(&verified.id, &answer).await?;
        return reply::json(200, &answer);
    }
    let (command, resolution) = match event.command(&config.policy) {
        Ok(c) => c,
        Err(v) => {
            audit.detail = Some(v.to_string());
            return reply::error(400, Some("invalidValue"), v.to_string());
        }
    };
    let flow = LifecycleFlow::new(&config.scim_base_url, command, config.retry, seed());
    // KV reads and writes around the flow take up to ten of the invocation's subrequests.
    let budget = config.subrequest_budget.saturating_sub(10);
    match run_authorized(flow, &config.credentials, config.retry, &state, budget).await {
        Ok(applied) => {
            let Applied { action, id, note } = applied;
            audit.action = Some(action);
            audit.cxone_id = id.clone();
            let mut answer = json!({"status": "success", "action": action, "eventId": verified.id});
            if let Some(id) = id {
                answer["id"] = json!(id);
            }
            if let Some(note) = note {
                answer["note"] = json!(note);
            }
            if let Some(skipped) = resolution.map(|r| r.skipped_groups).filter(|s| !s.is_empty()) {
                answer["skippedGroups"] = json!(skipped);
            }
            // Order mark first: a crash before the answer is stored replays an idempotent event,
            // and never leaves an applied event without its ordering mark.
            let mark = OrderMark {
                timestamp: verified.timestamp,
                event_id: verified.id.clone(),
            };
            state.mark_applied(&subject, &mark).await?;
            let (remembered, cleared) = join(
                state.remember_answer(&verified.id, &answer),
                state.clear_failure(&verified.id),
            )
            .await;
            remembered?;
            cleared?;
            reply::json(200, &answer)
        }
        Err(e) => {
            audit.outcome = Outcome::Failure;
            audit.detail = Some(e.to_string());
            let previous = state.failure(&verified.id).await?;
            let at = iso8601(now);
            let record = FailureRecord {
                event_id: verified.id.clone(),
                webhook_timestamp: verified.timestamp,
                first_failed_at: previous
                    .as_ref()
                    .map_or_else(|| at.clone(), |p| p.first_failed_at.clone()),
                last_failed_at: at,
                attempts: previous.map_or(1, |p| p.attempts + 1),
                operation: audit.operation.clone().unwrap_or_default(),
                subject,
                error: serde_json::to_value(&e)?,
                detail: e.to_string(),
                event: serde_json::from_slice(&body).unwrap_or(Value::Null),
            };
            state.record_failure(&record).await?;
            reply::error(
                502,
                None,
                format!("CXone did not accept the change; recorded for replay: {e}"),
            )
        }
    }
}
