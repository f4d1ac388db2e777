//! `POST /roles/sync` (admin): one person's CXone role set from their groups, checked against the
//! least-privilege policy, written in one atomic write, told to the IAM system, and recorded in
//! the audit trail. Body: `{"externalId"|"userName", "groups"?: [...], "roles"?: [...], "dryRun"?}`.
//!
//! The verdict is core's (`RolePolicy::verdict`); a refused one is answered 403 with the verdict
//! and CXone is not touched. The write goes through the person's ledger like any other.

use crate::apply::{apply_roles, roles_flow_for};
use crate::config::Config;
use crate::driver::{now_ms, plan_first_write, seed, Budget};
use crate::kv::State;
use crate::ledger::Ledger;
use crate::notices::notify;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::apply::{refused_draft, RoleChange};
use cxone_scim_core::audit::{payload_sha256, AuditRecord};
use cxone_scim_core::dry_run::{self, DryRunField};
use cxone_scim_core::event::Lookup;
use cxone_scim_core::policy::{GroupInput, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Request, Response, Result};

const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    /// The person's groups (what grants roles).
    #[serde(default)]
    groups: Option<Vec<GroupInput>>,
    /// Roles asked for explicitly: each must be covered by what the groups grant.
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<DryRunField>,
}

fn invalid(detail: impl Into<String>) -> Result<Response> {
    reply::api_error(&ApiError::bad_request("invalidValue", detail.into()))
}

pub async fn sync(mut req: Request, env: &Env, config: &Config, audit: &mut AuditRecord) -> Result<Response> {
    let (query_dry_run, bytes) = match super::typed_body(&mut req, MAX_BODY).await? {
        Ok(read) => read,
        Err(e) => return reply::api_error(&e),
    };
    let body: Body = match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes)) {
        Ok(b) => b,
        Err(e) => {
            return reply::api_error(&ApiError::bad_request(
                "invalidSyntax",
                format!("invalid role sync request at {}: {}", e.path(), e.inner()),
            ))
        }
    };
    let dry_run = match dry_run::agree(query_dry_run, body.dry_run.map(|f| f.0)) {
        Ok(d) => d.unwrap_or(false),
        Err(e) => return reply::api_error(&e.into()),
    };
    let lookup = Lookup {
        external_id: body.external_id.clone().filter(|s| !s.trim().is_empty()),
        user_name: body
            .user_name
            .clone()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        cxone_id: None,
    };
    if lookup.external_id.is_none() && lookup.user_name.is_none() {
        return invalid("externalId or userName is required");
    }
    let Some(groups) = body.groups.clone() else {
        // Without groups nothing is granted: every requested role would be refused, and an empty
        // set would take every role away. Both are refused as a request that says too little.
        return invalid("groups is required: roles are granted by the person's groups");
    };
    audit.operation = Some("role_sync".into());
    audit.subject = Some(lookup.person_key());
    let started = now_ms();
    let request_digest = payload_sha256(&serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null));
    let verdict = config.policy.verdict(&groups, body.roles.as_deref());
    if !matches!(verdict, Verdict::Pass { .. }) {
        audit.detail = Some("role sync refused by the policy".into());
        if !dry_run {
            let draft = refused_draft(&lookup, &request_digest, started, now_ms());
            let reason = serde_json::to_string(&verdict).unwrap_or_default();
            if let Some(entry) = crate::audit_trail::record(env, config, vec![draft])
                .await
                .and_then(|mut e| e.pop())
            {
                let _ = notify(config, &State::open(env)?, &entry, Some(reason)).await;
            }
        }
        return refuse(&verdict);
    }
    let change = RoleChange {
        event_id: format!("roles-{:016x}", seed()),
        lookup,
        groups,
        verdict,
        request_digest,
        at: started,
    };
    if dry_run {
        // The account the person's ledger knows is read first, by its id, as the sync would.
        let mut known = change.clone();
        known.lookup.cxone_id = Ledger::of(env, &change.lookup.person_key())?
            .inspect()
            .await?
            .person
            .cxone_id;
        let state = State::open(env)?;
        let mut budget = Budget::for_request(config.subrequest_budget);
        let flow = roles_flow_for(config, &known);
        let planned = plan_first_write(flow, &config.credentials, config.retry, &state, &mut budget).await;
        return reply::json(
            200,
            &json!({"dryRun": true, "verdict": change.verdict, "requests": planned.into_iter().collect::<Vec<_>>()}),
        );
    }
    // The write is one of the person's changes: serialised with webhooks and Graph changes.
    reply::answer(apply_roles(env, change, audit, config.subrequest_budget).await?)
}

/// 403 with the verdict beside the SCIM error fields.
fn refuse(verdict: &Verdict) -> Result<Response> {
    let detail = match verdict {
        Verdict::EscalationDetected { role, .. } => {
            format!("escalation detected: {role} is not covered by what the person's groups grant")
        }
        Verdict::Fail { reason } => format!("the role policy refuses this person's roles: {reason}"),
        Verdict::Pass { .. } => "refused".to_string(),
    };
    let refused = ApiError::forbidden(detail);
    let mut body = serde_json::to_value(refused.to_scim())?;
    body["verdict"] = serde_json::to_value(verdict)?;
    reply::json(refused.status, &body)
}
