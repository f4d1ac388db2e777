//! `POST /webhooks/lifecycle`: verify the signature, read the event, and hand it to the
//! person's ledger, which applies it (`crate::apply`). Every decision is core's.

use crate::apply::apply;
use crate::config::Config;
use crate::driver::now_ms;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::apply::Delivery;
use cxone_scim_core::audit::{AuditRecord, Trigger};
use cxone_scim_core::digest::sha256_hex;
use cxone_scim_core::event::LifecycleEvent;
use cxone_scim_core::webhook::{verify, SignatureHeaders};
use serde_json::Value;
use worker::{Env, Request, Response, Result};

/// Largest accepted event body.
pub const MAX_BODY: usize = 256 * 1024;

pub async fn handle(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let Some(body) = reply::body_within(&mut req, MAX_BODY).await? else {
        return reply::api_error(&ApiError::too_large(MAX_BODY));
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
    let verified = match verify(&config.webhook_secrets, headers, &body, (now_ms() / 1000) as i64) {
        Ok(v) => v,
        Err(e) => return refuse(audit, e.into()),
    };
    audit.event_id = Some(verified.id.clone());
    let event = match LifecycleEvent::from_json(&body) {
        Ok(e) => e,
        Err(e) => return refuse(audit, e.into()),
    };
    let delivery = Delivery {
        event_id: verified.id,
        body_digest: sha256_hex(&body),
        event: serde_json::from_slice(&body).unwrap_or(Value::Null),
        replay: false,
        trigger: Trigger::Webhook,
        deprovision: None,
        leaver_id: None,
    };
    reply::answer(apply(env, &event, delivery, audit, config.subrequest_budget).await?)
}

fn refuse(audit: &mut AuditRecord, e: ApiError) -> Result<Response> {
    audit.detail = Some(e.detail.clone());
    reply::api_error(&e)
}
