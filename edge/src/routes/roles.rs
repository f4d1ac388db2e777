//! `POST /roles/sync` (admin): one person's CXone role set from their groups, checked against the
//! least-privilege policy, written in one atomic write, told to the IAM system, and recorded in
//! the audit trail. Body: `{"externalId"|"userName", "groups"?: [...], "roles"?: [...], "dryRun"?}`.
//!
//! The verdict is core's (`RolePolicy::verdict`); a refused one is answered 403 with the verdict
//! and CXone is not touched. The write goes through the person's ledger like any other.

use crate::config::Config;
use crate::driver::{now_ms, plan_first_write, run_authorized, seed, Budget};
use crate::kv::State;
use crate::ledger::{begin_for, BeginRequest, CommitRequest, Ledger};
use crate::notices::{notify, Notice};
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::{payload_sha256, AuditDraft, AuditEntry, AuditRecord, Outcome, Trigger, Who};
use cxone_scim_core::dry_run::{self, DryRunField};
use cxone_scim_core::event::{Lookup, Operation};
use cxone_scim_core::flows::{Action, RoleSyncFlow, RoleSynced};
use cxone_scim_core::ledger::{person_key, Commit, Decision, Ending, EventFacts};
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
    let query_dry_run = match super::dry_run_query(&req)? {
        Ok(d) => d,
        Err(e) => return reply::api_error(&e),
    };
    let Some(bytes) = reply::body_within(&mut req, MAX_BODY).await? else {
        return reply::api_error(&ApiError::too_large(MAX_BODY));
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
    let subject = person_key(
        lookup.external_id.as_deref(),
        lookup.user_name.as_deref().unwrap_or_default(),
    );
    audit.operation = Some("role_sync".into());
    audit.subject = Some(subject.clone());
    // The account the person's ledger knows is read first, by its id: where CXone searches by
    // userName alone, a person named by externalId is found only so.
    let mut lookup = lookup;
    lookup.cxone_id = Ledger::of(env, &subject)?.inspect().await?.person.cxone_id;
    let started = now_ms();
    let who = Who {
        cxone_id: None,
        external_id: lookup.external_id.clone(),
        user_name: lookup.user_name.clone(),
    };
    let request_digest = payload_sha256(&serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null));
    let verdict = config.policy.verdict(&groups, body.roles.as_deref());
    let roles = match &verdict {
        Verdict::Pass { roles } => roles.clone(),
        refused => {
            audit.detail = Some("role sync refused by the policy".into());
            if dry_run {
                return refuse(refused);
            }
            let draft = AuditDraft {
                at: started,
                who,
                action: None,
                roles_before: Vec::new(),
                roles_after: Vec::new(),
                trigger: Trigger::RoleSync,
                outcome: Outcome::Rejected,
                latency_ms: now_ms().saturating_sub(started),
                payload_sha256: request_digest,
            };
            let reason = serde_json::to_string(refused).unwrap_or_default();
            if let Some(entry) = append(env, config, draft).await {
                let _ = notify(config, &State::open(env)?, &entry, Some(reason)).await;
            }
            return refuse(refused);
        }
    };
    let target = config.roles.target.write(&config.policy, &roles);
    let flow = RoleSyncFlow::new(
        &config.scim_base_url,
        config.profile.capabilities(),
        lookup.clone(),
        target,
        config.roles.write,
        config.retry,
        seed(),
    )
    .with_team(config.policy.team_for(&groups));
    let state = State::open(env)?;
    if dry_run {
        let mut budget = Budget::new(config.subrequest_budget.saturating_sub(2), 1);
        let planned = plan_first_write(flow, &config.credentials, config.retry, &state, &mut budget).await;
        return reply::json(
            200,
            &json!({"dryRun": true, "verdict": verdict, "requests": planned.into_iter().collect::<Vec<_>>()}),
        );
    }
    // The write is one of the person's events: serialised with webhooks and Graph changes.
    let event_id = format!("roles-{:016x}", seed());
    let mut begin = BeginRequest {
        facts: EventFacts {
            event_id: event_id.clone(),
            body_digest: request_digest.clone(),
            operation: Operation::Update,
            occurred_at: Some(started),
            replay: false,
            keeps_status: true,
        },
        lease_ms: config.ledger.lease_ms,
        lease_token: format!("{:016x}", seed()),
        carried: None,
    };
    let user_name = lookup.user_name.clone().unwrap_or_default();
    let (ledger, decision, _) = begin_for(env, lookup.external_id.as_deref(), &user_name, &mut begin).await?;
    let (event_time, lease) = match decision {
        Decision::Go { event_time, lease, .. } => (event_time, lease),
        Decision::Busy { retry_after_ms } => {
            return reply::api_error(&ApiError::busy(
                "another event for this person is being applied; try again later",
                retry_after_ms,
            ))
        }
        Decision::Skipped { .. } => {
            return reply::api_error(&ApiError::new(409, None, "the person was deleted; roles not written"))
        }
        other => {
            return reply::api_error(&ApiError::new(
                409,
                None,
                format!("the person's ledger refused the role sync: {other:?}"),
            ))
        }
    };
    let mut budget = Budget::new(config.subrequest_budget.saturating_sub(8), 1)
        .within_lease(lease.until, config.ledger.request_timeout_ms);
    let result = run_authorized(flow, &config.credentials, config.retry, &state, &mut budget).await;
    let (outcome, synced): (Outcome, Option<RoleSynced>) = match &result {
        Ok(s) if s.action == Action::Conflict => (Outcome::Rejected, Some(s.clone())),
        Ok(s) => (Outcome::Success, Some(s.clone())),
        Err(_) => (Outcome::Failure, None),
    };
    // The lease is released without moving the person's event time: a role sync is not an
    // event from the source, and a leaver that happened before it must still apply after it.
    let commit = Commit {
        event_id: event_id.clone(),
        lease_token: lease.token,
        event_time,
        operation: Operation::Update,
        keeps_status: true,
        ending: Ending::Answered,
        answer: None,
    };
    if let Err(e) = ledger
        .commit(&CommitRequest {
            commit,
            failure_recorded: false,
        })
        .await
    {
        // The lease expires on its own; the write and its record below stand.
        worker::console_error!("{}", json!({"event": "ledger_commit_failed", "detail": e.to_string()}));
    }
    let draft = AuditDraft {
        at: started,
        who: Who {
            cxone_id: synced.as_ref().and_then(|s| s.id.clone()),
            ..who
        },
        action: synced.as_ref().map(|s| s.action),
        roles_before: synced.as_ref().map(|s| s.roles_before.clone()).unwrap_or_default(),
        roles_after: synced.as_ref().map(|s| s.roles_after.clone()).unwrap_or_default(),
        trigger: Trigger::RoleSync,
        outcome,
        latency_ms: now_ms().saturating_sub(started),
        payload_sha256: synced
            .as_ref()
            .and_then(|s| s.payload.as_ref())
            .map_or(request_digest, payload_sha256),
    };
    let entry = append(env, config, draft).await;
    let reason = match &result {
        Ok(s) if s.action == Action::Conflict => {
            Some("the CXone account is not provably this person's; nothing written".to_string())
        }
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    let notice = match &entry {
        Some(entry) => notify(config, &state, entry, reason).await,
        None => Notice::Off,
    };
    audit.cxone_id = synced.as_ref().and_then(|s| s.id.clone());
    match result {
        Ok(s) => {
            audit.action = Some(s.action);
            let status = if s.action == Action::Conflict { 409 } else { 200 };
            let body = json!({
                "status": if status == 200 { "success" } else { "conflict" },
                "verdict": verdict, "action": s.action, "id": s.id,
                "rolesBefore": s.roles_before, "rolesAfter": s.roles_after,
                "retriedAfter412": s.retried_after_412, "conflict": s.conflict,
                "audit": entry, "notice": notice,
            });
            reply::json(status, &body)
        }
        Err(e) => {
            let api = ApiError::from(&e);
            audit.detail = Some(api.detail.clone());
            let mut body = serde_json::to_value(api.to_scim())?;
            body["audit"] = json!(entry);
            body["notice"] = json!(notice);
            reply::json(api.status, &body)
        }
    }
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
    let mut body = serde_json::to_value(ApiError::new(403, None, detail).to_scim())?;
    body["verdict"] = serde_json::to_value(verdict)?;
    reply::json(403, &body)
}

/// The audit entry of the sync (`None` when the trail cannot be reached: the record is parked
/// for replay, the write has happened, and the answer says what it was).
async fn append(env: &Env, config: &Config, draft: AuditDraft) -> Option<AuditEntry> {
    crate::audit_trail::record(env, config, vec![draft]).await?.pop()
}
