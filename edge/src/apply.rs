//! The host of core's engine for one change to one person (`cxone_scim_core::apply`). It runs
//! inside the person's ledger object, so the ledger's `begin` and `commit` are local and the
//! change costs its caller one call: the object links the userName's ledger, asks its own
//! tables, sends the flow's requests to CXone, keeps the records core says to keep, commits,
//! and appends the audit record. Every decision is core's.

use crate::config::Config;
use crate::driver::{now_ms, plan_first_write, run_authorized, run_authorized_then, seed, Budget, PlannedRequest};
use crate::kv::State;
use crate::ledger::{self, BeginRequest, CommitRequest, Ledger};
use crate::notices::{notify, tell_hr};
use cxone_scim_core::apply::{
    admit, admit_roles, prepare, settle, settle_roles, Admission, ApplyAnswer, BusyWait, Change, Delivery, Go, Keep,
    Ran, RoleChange,
};
use cxone_scim_core::audit::{AuditEntry, AuditRecord};
use cxone_scim_core::deprovision::{DeprovisionFlow, Options};
use cxone_scim_core::event::{Command, LifecycleEvent, Lookup};
use cxone_scim_core::flows::{LifecycleFlow, RoleSyncFlow};
use cxone_scim_core::ledger::{link_of, Decision, EventFacts, Link, PersonState};
use cxone_scim_core::UnixMillis;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;
use worker::{Delay, Env, Result, SqlStorage};

/// What a caller asks of the person's ledger object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    pub change: Change,
    /// Subrequests the change may take.
    pub allowance: u32,
    /// Set by a userName's ledger that forwards the change to the person's ledger: what it had
    /// ordered before the link, and when it first saw the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<PersonState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<UnixMillis>,
    #[serde(default)]
    pub forwarded: bool,
}

/// The lifecycle flow for `command` against CXone as configured (its SCIM root, what it offers,
/// the retry policy).
pub fn flow_for(config: &Config, command: Command) -> LifecycleFlow {
    LifecycleFlow::new(
        &config.scim_base_url,
        config.profile.capabilities(),
        command,
        config.retry,
        seed(),
    )
}

/// A leaver's flow for `lookup` against CXone and its Admin API as configured.
pub fn deprovision_flow_for(config: &Config, lookup: Lookup, options: Options) -> DeprovisionFlow {
    DeprovisionFlow::new(
        &config.scim_base_url,
        config.profile.capabilities(),
        config.deprovision.admin_api.clone(),
        lookup,
        options,
        config.retry,
        seed(),
        now_ms(),
    )
}

/// The first write `command` would send, after the reads it makes (a dry run): a leaver's
/// after its steps' reads (the account, the agent, its dependencies).
pub async fn plan_change(
    config: &Config,
    command: Command,
    state: &State,
    budget: &mut Budget,
) -> Option<PlannedRequest> {
    match command.as_leaver() {
        Some((lookup, mode)) => {
            let flow = deprovision_flow_for(config, lookup, config.deprovision.options(mode));
            plan_first_write(flow, &config.credentials, config.retry, state, budget).await
        }
        None => {
            plan_first_write(
                flow_for(config, command),
                &config.credentials,
                config.retry,
                state,
                budget,
            )
            .await
        }
    }
}

/// The role sync flow for `change` against CXone as configured.
pub fn roles_flow_for(config: &Config, change: &RoleChange) -> RoleSyncFlow {
    let target = config.roles.target.write(&config.policy, change.roles());
    RoleSyncFlow::new(
        &config.scim_base_url,
        config.profile.capabilities(),
        change.lookup.clone(),
        target,
        config.roles.write,
        config.retry,
        seed(),
    )
    .with_team(config.policy.team_for(&change.groups))
}

/// The Worker's side: asks the person's ledger to apply `event` and fills the request's log
/// line from the answer. The answer's `used` counts this call too.
pub async fn apply(
    env: &Env,
    event: &LifecycleEvent,
    delivery: Delivery,
    audit: &mut AuditRecord,
    allowance: u32,
) -> Result<ApplyAnswer> {
    audit.operation = Some(cxone_scim_core::apply::operation_name(event));
    audit.event_id = Some(delivery.event_id.clone());
    ask(env, event.subject_key(), Change::Event(delivery), audit, allowance).await
}

/// The Worker's side of a role sync the policy passed.
pub async fn apply_roles(
    env: &Env,
    change: RoleChange,
    audit: &mut AuditRecord,
    allowance: u32,
) -> Result<ApplyAnswer> {
    let key = change.lookup.person_key();
    ask(env, key, Change::Roles(change), audit, allowance).await
}

/// Hands `change` to the ledger of the person `key` names, and fills the request's log line.
async fn ask(env: &Env, key: String, change: Change, audit: &mut AuditRecord, allowance: u32) -> Result<ApplyAnswer> {
    let ledger = Ledger::of(env, &key)?;
    audit.subject = Some(key);
    let request = ApplyRequest {
        change,
        allowance: allowance.saturating_sub(1),
        carried: None,
        first_seen: None,
        forwarded: false,
    };
    let mut answer = ledger.apply(request).await?;
    answer.used = answer.used.saturating_add(1);
    audit.outcome = answer.outcome;
    audit.action = answer.action;
    audit.cxone_id = answer.cxone_id.clone();
    audit.detail = answer.detail.clone();
    Ok(answer)
}

/// Inside the ledger object: the whole change, as core's engine lays it out.
pub async fn run(env: &Env, sql: &SqlStorage, req: ApplyRequest) -> Result<ApplyAnswer> {
    let config = Config::shared(env)
        .map_err(|problems| worker::Error::RustError(format!("misconfigured: {}", problems.join("; "))))?;
    let host = Host {
        env,
        sql,
        config,
        req: &req,
    };
    match &req.change {
        Change::Event(delivery) => host.event(delivery).await,
        Change::Roles(change) => host.roles(change).await,
    }
}

/// One change inside the person's ledger object.
struct Host<'a> {
    env: &'a Env,
    sql: &'a SqlStorage,
    config: Rc<Config>,
    req: &'a ApplyRequest,
}

/// The ledger admitted the change, or answered it.
enum Admitted {
    Go { go: Go, asked: u32 },
    Answered(ApplyAnswer),
}

impl Host<'_> {
    /// Steps 1–2 of core's engine for a lifecycle event, then the flow, then step 4.
    async fn event(&self, delivery: &Delivery) -> Result<ApplyAnswer> {
        let config = &self.config;
        let event = match LifecycleEvent::from_json(&serde_json::to_vec(&delivery.event)?) {
            Ok(e) => e,
            Err(e) => return Ok(ApplyAnswer::refused(&e.into())),
        };
        let prepared = match prepare(
            &event,
            delivery,
            &config.policy,
            &config.roles.target,
            config.ledger.max_future_ms,
            now_ms(),
        ) {
            Ok(p) => p,
            Err(refused) => return Ok(refused),
        };
        let link = link_of(event.external_id.as_deref(), &event.user_name);
        let wait_ms = delivery.waits_for_busy(config.ledger.wait_ms);
        let (go, asked) = match self.admit(prepared.facts.clone(), link, wait_ms, admit).await? {
            Admitted::Go { go, asked } => (go, asked),
            Admitted::Answered(answer) => return Ok(answer),
        };
        let state = State::open(self.env)?;
        let roles_after = prepared.command.roles_after();
        let started = now_ms();
        let command = prepared.command.known_as(go.known_id.clone());
        let mut budget = self.budget(asked, &go);
        let given = budget.remaining();
        // A replayed leaver carries on the record it replays (its runs, HR's notice).
        let previous = match &delivery.leaver_id {
            Some(id) => state.leaver(id).await.ok().flatten(),
            None => None,
        };
        let (result, roles_before, leaver) = match command.as_leaver() {
            Some((lookup, mode)) => {
                let options = delivery
                    .deprovision
                    .clone()
                    .unwrap_or_else(|| config.deprovision.options(mode));
                let (ran, roles_before) = run_authorized_then(
                    deprovision_flow_for(config, lookup, options.clone()),
                    &config.credentials,
                    config.retry,
                    &state,
                    &mut budget,
                    |flow: &DeprovisionFlow| flow.roles_before(&config.roles.target),
                )
                .await;
                match ran {
                    Ok(report) => (Ok(report.applied()), roles_before, Some((report, options))),
                    Err(e) => (Err(e), roles_before, None),
                }
            }
            None => {
                let (result, roles_before) = run_authorized_then(
                    flow_for(config, command),
                    &config.credentials,
                    config.retry,
                    &state,
                    &mut budget,
                    |flow: &LifecycleFlow| flow.roles_before(&config.roles.target),
                )
                .await;
                (result, roles_before, None)
            }
        };
        let settlement = settle(Ran {
            delivery,
            event: &event,
            go: &go,
            result,
            roles_before,
            roles_after,
            skipped_groups: prepared.skipped_groups,
            leaver,
            runs_before: previous.as_ref().map_or(0, |p| p.runs),
            started,
            now: now_ms(),
        });
        let mut used = asked + given.saturating_sub(budget.remaining()) + u32::from(settlement.audit.is_some());
        let audit_append = async {
            if let Some(draft) = settlement.audit.clone() {
                // Parked for replay when the trail cannot be reached; never fails the write.
                let _ = crate::audit_trail::record(self.env, config, vec![draft]).await;
            }
        };
        match &settlement.keep {
            Keep::Nothing => {}
            Keep::Conflict(record) => {
                used += 1;
                state.record_conflict(record.as_ref()).await?;
            }
            Keep::Failure(seed) => {
                used += 2;
                let kept = match state.failure_of_event(&delivery.event_id).await {
                    Ok(previous) => {
                        let record = seed.as_ref().clone().record(previous.as_ref(), now_ms());
                        state.record_failure(&record).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(unrecorded) = kept {
                    // No commit: the lease runs out and the sender's redelivery finds the
                    // person free.
                    audit_append.await;
                    return Err(unrecorded);
                }
            }
        }
        let committed = ledger::on_commit(
            self.sql,
            &CommitRequest {
                commit: settlement.commit,
                failure_recorded: settlement.failure_recorded,
            },
            now_ms(),
        )?;
        let superseded = &committed.superseded_failures;
        used += superseded.len() as u32;
        // A record left behind expires with its TTL; clearing is best effort.
        let clearing = join_all(superseded.iter().map(|id| state.clear_failure_of_event(id)));
        let _ = futures_util::future::join(clearing, audit_append).await;
        let mut answer = settlement.answer;
        if let Some(mut record) = settlement.leaver {
            used += 1;
            record.hr = previous.and_then(|p| p.hr);
            if record.tell_hr() {
                used += 1;
                let notice = tell_hr(config, &state, record.notice(now_ms())).await;
                record.hr = Some(json!(notice));
            }
            answer.body["deprovision"]["hr"] = json!(record.hr);
            if record.report.replayable() {
                // A leaver not shown done: parked for `POST /deprovision/{id}/replay`, and said
                // loudly (an agent who may still be working).
                worker::console_error!(
                    "{}",
                    json!({"event": "leaver_unverified", "alert": true, "id": record.id,
                           "subject": record.person_key, "steps": record.report.steps})
                );
            }
            if let Err(e) = state.put_leaver(&record).await {
                // The leaver's steps stand and are in the trail; only its replay record is lost.
                worker::console_error!(
                    "{}",
                    json!({"event": "leaver_record_failed", "id": record.id, "detail": e.to_string()})
                );
            }
        }
        answer.used = used;
        Ok(answer)
    }

    /// A role sync: ordered like any change, written, recorded whatever the outcome, and told
    /// to the IAM system.
    async fn roles(&self, change: &RoleChange) -> Result<ApplyAnswer> {
        let config = &self.config;
        let link = link_of(
            change.lookup.external_id.as_deref(),
            change.lookup.user_name.as_deref().unwrap_or_default(),
        );
        let (go, asked) = match self
            .admit(change.facts(), link, config.ledger.wait_ms, admit_roles)
            .await?
        {
            Admitted::Go { go, asked } => (go, asked),
            Admitted::Answered(answer) => return Ok(answer),
        };
        // The account the person's ledger knows is read first, by its id: where CXone searches
        // by userName alone, a person named by externalId is found only so.
        let mut known = change.clone();
        known.lookup.cxone_id = go.known_id.clone();
        let state = State::open(self.env)?;
        let started = now_ms();
        let mut budget = self.budget(asked, &go);
        let result = run_authorized(
            roles_flow_for(config, &known),
            &config.credentials,
            config.retry,
            &state,
            &mut budget,
        )
        .await;
        let settled = settle_roles(change, &go, result, started, now_ms());
        if let Err(e) = ledger::on_commit(
            self.sql,
            &CommitRequest {
                commit: settled.commit,
                failure_recorded: false,
            },
            now_ms(),
        ) {
            // The lease expires on its own; the write and its record below stand.
            worker::console_error!("{}", json!({"event": "ledger_commit_failed", "detail": e.to_string()}));
        }
        // `None` when the trail cannot be reached: the record is parked for replay, the write
        // has happened, and the answer says what it was.
        let entry: Option<AuditEntry> = crate::audit_trail::record(self.env, config, vec![settled.audit])
            .await
            .and_then(|mut e| e.pop());
        let notice = match &entry {
            Some(entry) => notify(config, &state, entry, settled.reason).await,
            None => crate::notices::Notice::Off,
        };
        let mut answer = settled.answer;
        answer.body["audit"] = json!(entry);
        answer.body["notice"] = json!(notice);
        answer.used = asked + 2;
        Ok(answer)
    }

    /// What the flow may spend: the allowance less the ledger calls made and what the records
    /// need, no request starting unless the lease outlives it.
    fn budget(&self, asked: u32, go: &Go) -> Budget {
        Budget::for_change(
            self.req.allowance,
            asked,
            go.lease.until,
            self.config.ledger.request_timeout_ms,
        )
    }

    /// Step 2: links the userName's ledger (`link`: its key and the person's), asks this
    /// ledger's tables, waits while the person is busy, and follows a forward.
    async fn admit(
        &self,
        facts: EventFacts,
        link: Option<(String, String)>,
        wait_ms: u64,
        judge: fn(Decision) -> Admission,
    ) -> Result<Admitted> {
        let req = self.req;
        let mut begin = BeginRequest {
            facts,
            lease_ms: self.config.ledger.lease_ms,
            lease_token: format!("{:016x}", seed()),
            carried: req.carried.clone(),
        };
        // Ordered where the userName's ledger first saw it, whenever it is redelivered.
        begin.facts.occurred_at = begin.facts.occurred_at.or(req.first_seen);
        let mut waiting = BusyWait::new(now_ms(), wait_ms);
        let mut asked = 0u32;
        loop {
            // The userName's ledger forwards here from now on, handing over what it had ordered.
            let busy = match &link {
                Some((user, target)) => {
                    asked += 1;
                    match Ledger::of(self.env, user)?.link(target).await? {
                        Link::Linked { carried } => {
                            begin.carried = carried;
                            None
                        }
                        Link::Busy { retry_after_ms } => Some((retry_after_ms, ApplyAnswer::busy(retry_after_ms))),
                    }
                }
                None => None,
            };
            let busy = match busy {
                Some(b) => b,
                None => match judge(ledger::on_begin(self.sql, &begin, now_ms())?) {
                    Admission::Go(go) => return Ok(Admitted::Go { go, asked }),
                    Admission::Answer(answer) => return Ok(Admitted::Answered(ApplyAnswer { used: asked, ..answer })),
                    Admission::Busy { retry_after_ms, answer } => (retry_after_ms, answer),
                    Admission::Forward {
                        to,
                        carried,
                        first_seen,
                    } => {
                        return self
                            .forward(&to, carried, first_seen, asked)
                            .await
                            .map(Admitted::Answered)
                    }
                },
            };
            let (retry_after_ms, answer) = busy;
            match waiting.next(retry_after_ms, now_ms()) {
                Some(pause) => Delay::from(Duration::from_millis(pause)).await,
                None => return Ok(Admitted::Answered(ApplyAnswer { used: asked, ..answer })),
            }
        }
    }

    /// The person's events are ordered in another ledger: the change goes there, with what this
    /// ledger had ordered.
    async fn forward(
        &self,
        to: &str,
        carried: Option<PersonState>,
        first_seen: Option<UnixMillis>,
        asked: u32,
    ) -> Result<ApplyAnswer> {
        if self.req.forwarded {
            return Err(worker::Error::RustError(format!(
                "a forwarded change was forwarded again (to {to})"
            )));
        }
        let forward = ApplyRequest {
            change: self.req.change.clone(),
            allowance: self.req.allowance.saturating_sub(asked + 1),
            carried,
            first_seen,
            forwarded: true,
        };
        let mut answer = Ledger::of(self.env, to)?.apply(forward).await?;
        answer.used = answer.used.saturating_add(asked + 1);
        Ok(answer)
    }
}
