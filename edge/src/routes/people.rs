//! One person's ledger, for an admin: `GET /people/{key}` (its marks, lease and recent
//! deliveries) and `POST /people/{key}/reset-marks` (`dryRun`; recorded in the audit trail).
//! `{key}` is `ext:<externalId>` or `user:<userName>`, percent-encoded as a path segment.

use crate::config::Config;
use crate::driver::now_ms;
use crate::ledger::Ledger;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::AuditRecord;
use cxone_scim_core::ledger::{parse_person_key, reset_record};
use serde_json::json;
use worker::{Env, Response, Result};

/// The ledger key in a path segment, or the 400 to answer.
fn key_of(segment: &str) -> std::result::Result<String, ApiError> {
    let decoded = js_sys::decode_uri_component(segment)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| ApiError::bad_request("invalidValue", "the person key is not valid percent-encoding"))?;
    parse_person_key(&decoded)
        .ok_or_else(|| ApiError::bad_request("invalidValue", "a person key is ext:<externalId> or user:<userName>"))
}

pub async fn show(env: &Env, segment: &str) -> Result<Response> {
    let key = match key_of(segment) {
        Ok(k) => k,
        Err(e) => return reply::api_error(&e),
    };
    let seen = Ledger::of(env, &key)?.inspect().await?;
    reply::json(
        200,
        &json!({"key": key, "person": seen.person, "deliveries": seen.deliveries}),
    )
}

pub async fn reset_marks(
    env: &Env,
    config: &Config,
    segment: &str,
    dry_run: bool,
    audit: &mut AuditRecord,
) -> Result<Response> {
    let key = match key_of(segment) {
        Ok(k) => k,
        Err(e) => return reply::api_error(&e),
    };
    audit.subject = Some(key.clone());
    audit.operation = Some("reset_marks".into());
    let reset = Ledger::of(env, &key)?.reset_marks(dry_run).await?;
    let mut recorded = false;
    if !dry_run {
        let draft = reset_record(&key, &reset.before, &reset.after, now_ms());
        // Parked for replay when the trail cannot be reached, as every other record.
        recorded = crate::audit_trail::record(env, config, vec![draft]).await.is_some();
    }
    reply::json(
        200,
        &json!({
            "key": key, "dryRun": dry_run, "before": reset.before, "after": reset.after,
            "auditRecorded": recorded,
        }),
    )
}
