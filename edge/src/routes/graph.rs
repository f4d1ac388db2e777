//! Microsoft Graph sync endpoints: `POST /graph/notifications` (change notifications and the
//! validation handshake), and the admin's `GET /sync/status`, `POST /sync/run`,
//! `POST /sync/approve`, `POST /sync/reject`. The passes themselves run in the sync object.

use crate::config::Config;
use crate::reply;
use crate::sync::{GraphSync, SyncCall};
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::AuditRecord;
use cxone_scim_core::graph::{
    notification_post, read_notifications, sync_off, NotificationPost, Notifications, Watched, VALIDATION_HEADERS,
};
use serde_json::{json, Value};
use worker::{Env, Headers, Request, Response, Result};

/// Largest notification batch accepted (Graph sends at most a few hundred small items).
const MAX_NOTIFICATION_BODY: usize = 1024 * 1024;

fn not_configured() -> Result<Response> {
    reply::api_error(&ApiError::unavailable(
        "Graph sync is not configured (GRAPH_CLIENT_ID, GRAPH_TOKEN_URL, GRAPH_CLIENT_SECRET)",
    ))
}

/// The validation handshake (`?validationToken=`: answered with the token as plain text), or a
/// batch of notifications: every item's clientState checked, then a pass asked for (coalesced),
/// and 202 within Graph's 3 s. Without Graph sync, 404 ([`notification_post`]).
pub async fn notifications(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let token = req.url().ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    });
    match notification_post(config.graph.is_some(), token.as_deref()) {
        Err(e) => return reply::api_error(&e),
        Ok(NotificationPost::Validation(token)) => {
            let headers = Headers::new();
            for (name, value) in VALIDATION_HEADERS {
                headers.set(name, value)?;
            }
            return Ok(Response::ok(token)?.with_headers(headers));
        }
        Ok(NotificationPost::Batch) => {}
    }
    let Some(graph) = &config.graph else {
        return reply::api_error(&sync_off());
    };
    let Some(client_state) = &graph.client_state else {
        return reply::api_error(&ApiError::unavailable("GRAPH_CLIENT_STATE is not set"));
    };
    let Some(body) = reply::body_within(&mut req, MAX_NOTIFICATION_BODY).await? else {
        return reply::api_error(&ApiError::too_large(MAX_NOTIFICATION_BODY));
    };
    let batch: Notifications = match read_notifications(&body, client_state) {
        Ok(n) => n,
        Err(e) => {
            let api = ApiError::from(&e);
            audit.detail = Some(api.detail.clone());
            return reply::api_error(&api);
        }
    };
    if batch.wants_pass() || batch.wants_renewal() {
        let groups = batch.touches(Watched::Groups);
        GraphSync::open(env)?
            .kick_for("notification", batch.wants_renewal(), groups)
            .await?;
    }
    audit.detail = Some(format!(
        "{} change notification(s), {} lifecycle notification(s)",
        batch.changes.len(),
        batch.lifecycle.len()
    ));
    Ok(Response::empty()?.with_status(202))
}

pub async fn status(env: &Env, config: &Config) -> Result<Response> {
    if config.graph.is_none() {
        return not_configured();
    }
    let mut status = GraphSync::open(env)?.call(&SyncCall::Status).await?;
    status["configured"] = json!(true);
    reply::json(200, &status)
}

/// `POST /sync/run`: a pass now (202), or with `dryRun` the requests it would send (200).
pub async fn run(env: &Env, config: &Config, dry_run: bool) -> Result<Response> {
    if config.graph.is_none() {
        return not_configured();
    }
    let sync = GraphSync::open(env)?;
    if dry_run {
        return reply::json(200, &sync.call(&SyncCall::DryRun).await?);
    }
    let kicked = sync.kick("admin", false).await?;
    reply::json(202, &json!({"status": "accepted", "running": kicked["running"]}))
}

/// `POST /sync/approve` and `/sync/reject`: what the deletion guard holds. `dryRun` lists the
/// leavers it would apply or drop.
pub async fn decide(env: &Env, config: &Config, approve: bool, dry_run: bool) -> Result<Response> {
    if config.graph.is_none() {
        return not_configured();
    }
    let sync = GraphSync::open(env)?;
    if dry_run {
        let held = sync.call(&SyncCall::Held).await?;
        let leavers: Vec<Value> = held["held"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|l| json!({"graphId": l["graphId"], "operation": l["event"]["operation"]}))
                    .collect()
            })
            .unwrap_or_default();
        let key = if approve { "wouldApply" } else { "wouldDrop" };
        return reply::json(200, &json!({"dryRun": true, key: leavers}));
    }
    let answer = sync
        .call(if approve { &SyncCall::Approve } else { &SyncCall::Reject })
        .await?;
    reply::json(200, &answer)
}
