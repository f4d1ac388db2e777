//! Microsoft Graph sync: one SQLite-backed Durable Object (`GRAPH_SYNC`, named `graph`) runs the
//! passes, so two passes never both advance the cursor.
//!
//! Tables:
//! - `meta`: small documents by key: `pass` (the pass in progress, checkpointed after every
//!   step), `last` (the last pass's summary), `wanted` (a pass was asked for),
//!   `approve` (held leavers approved), `renew` (subscriptions to check), `subscriptions`;
//! - `people`: one row per Entra user cxone-scim has seen in scope (`in_scope` 1 or 0): who
//!   leaving scope is a leaver, and the population a threshold share is taken of;
//! - `held`: leavers the deletion guard holds until `POST /sync/approve` or `/sync/reject`;
//! - `parked`: changes that failed (each also a failure record in KV, replayable).
//!
//! The delta cursor itself lives in KV (`graph:cursor`), written only here. The object stores
//! and drives; `cxone_scim_core::graph` decides. A slice runs the pass within one invocation's
//! subrequest budget; an alarm continues it with a fresh one.

use crate::apply::{apply, plan_change};
use crate::config::{Config, SYNC_BINDING};
use crate::driver::{now_ms, run_authorized, run_authorized_then, seed, Budget, PlannedRequest};
use crate::kv::State as Kv;
use crate::objects::{meta_get, meta_put, meta_remove, read_call, Running, Schema, Slices, META_TABLE};
use cxone_scim_core::apply::{ApplyAnswer, Delivery};
use cxone_scim_core::audit::{iso8601, AuditRecord};
use cxone_scim_core::digest::sha256_hex;
use cxone_scim_core::event::LifecycleEvent;
use cxone_scim_core::flows::FlowError;
use cxone_scim_core::graph::{
    group_round_due, hold_superseded, next_round, record_of, retry_plan, unseen_leaver, Apply, Change, ChangeOutcome,
    DeltaReader, KnownPerson, Leaver, MemberOfFlow, Plan, PlanRetry, Planner, Position, Record, RoundFacts, Skip,
    Subscription, SubscriptionFlow, Summary, SyncPass, UserReadFlow, Work, APPLY_LANES,
};
use cxone_scim_core::settings::GraphSettings;
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    console_log, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State,
    Stub,
};

/// A burst of notifications within this long starts one pass.
const COALESCE_MS: i64 = 1_000;
/// A slice that has not finished by then is taken to have died; the alarm resumes the pass.
const WATCHDOG_MS: i64 = 120_000;
/// A slice stops starting work after this long, so checkpoints stay frequent.
const SLICE_MS: u64 = 25_000;
/// A person busy with another event is tried again after this long.
const BUSY_RETRY_MS: i64 = 2_000;
/// Most held leavers and parked changes `GET /sync/status` lists.
const STATUS_LIST: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cursor {
    delta_link: String,
    stored_at: u64,
}

const CURSOR_KEY: &str = "graph:cursor";

/// Why a slice ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SliceEnd {
    Finished,
    /// Budget or time ran out: continue right away.
    Paused,
    /// Continue after this many milliseconds.
    Later(i64),
    Busy,
}

#[durable_object]
pub struct SyncRunner(Slices);

impl std::ops::Deref for SyncRunner {
    type Target = Slices;

    fn deref(&self) -> &Slices {
        &self.0
    }
}

const SCHEMA: &[Schema] = &[
    Schema::Create(META_TABLE),
    Schema::Create(
        "CREATE TABLE IF NOT EXISTS people (graph_id TEXT PRIMARY KEY, in_scope INTEGER NOT NULL, \
         external_id TEXT NOT NULL, user_name TEXT, updated_at INTEGER NOT NULL, seen_pass TEXT)",
    ),
    Schema::Create("CREATE TABLE IF NOT EXISTS held (event_id TEXT PRIMARY KEY, doc TEXT NOT NULL, held_at INTEGER NOT NULL)"),
    Schema::AddColumn {
        table: "people",
        column: "seen_pass",
        definition: "TEXT",
    },
    Schema::Create(
        "CREATE TABLE IF NOT EXISTS parked (event_id TEXT PRIMARY KEY, graph_id TEXT NOT NULL, detail TEXT NOT NULL, at INTEGER NOT NULL)",
    ),
];

#[derive(Deserialize)]
struct DocRow {
    doc: String,
}

#[derive(Deserialize)]
struct CountRow {
    n: f64,
}

/// What the Worker asks of the sync object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SyncCall {
    /// Ask for a pass.
    Kick(Kick),
    Status,
    /// Apply the leavers held now.
    Approve,
    /// Drop the leavers held now.
    Reject,
    Held,
    /// What a pass would send, sending nothing.
    DryRun,
}

/// What a kick asks for.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kick {
    /// `cron`, `notification`, `admin`.
    pub reason: String,
    /// Check the subscriptions too.
    #[serde(default)]
    pub renew: bool,
    /// A group changed: its members' groups must be read again, which only a full round does
    /// (membership is not in `/users/delta`).
    #[serde(default)]
    pub full: bool,
}

impl DurableObject for SyncRunner {
    fn new(state: State, env: Env) -> Self {
        Self(Slices::start(state, env, SCHEMA))
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call = match read_call::<SyncCall>(&mut req).await? {
            Ok(call) => call,
            Err(refused) => return Ok(refused),
        };
        match call {
            SyncCall::Kick(kick) => Response::from_json(&self.kick(&kick).await?),
            SyncCall::Status => Response::from_json(&self.status().await?),
            SyncCall::Approve => Response::from_json(&self.approve().await?),
            SyncCall::Reject => Response::from_json(&self.reject()?),
            SyncCall::Held => Response::from_json(&json!({"held": self.held()?})),
            SyncCall::DryRun => Response::from_json(&self.dry_run().await?),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        match self.slice().await? {
            SliceEnd::Finished => {}
            SliceEnd::Paused => self.state.storage().set_alarm(0i64).await?,
            SliceEnd::Later(ms) => self.state.storage().set_alarm(ms).await?,
            SliceEnd::Busy => self.state.storage().set_alarm(WATCHDOG_MS).await?,
        }
        Response::ok("")
    }
}

impl SyncRunner {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        meta_get(&self.sql(), key)
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        meta_put(&self.sql(), key, value)
    }

    fn remove(&self, key: &str) -> Result<()> {
        meta_remove(&self.sql(), key)
    }

    fn count(&self, query: &str) -> Result<usize> {
        let rows: Vec<CountRow> = self.sql().exec(query, None)?.to_array()?;
        Ok(rows.first().map_or(0, |r| r.n as usize))
    }

    fn known(&self, graph_id: &str) -> Result<Option<KnownPerson>> {
        #[derive(Deserialize)]
        struct Row {
            in_scope: f64,
            external_id: String,
            user_name: Option<String>,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT in_scope, external_id, user_name FROM people WHERE graph_id = ?",
                vec![graph_id.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| KnownPerson {
            in_scope: r.in_scope != 0.0,
            external_id: r.external_id,
            user_name: r.user_name,
        }))
    }

    /// Whether the person of a held leaver was recorded in scope again after it was held.
    fn back_since_held(&self, leaver: &Leaver) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            in_scope: f64,
            updated_at: f64,
            held_at: f64,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT p.in_scope AS in_scope, p.updated_at AS updated_at, h.held_at AS held_at \
                 FROM held h JOIN people p ON p.graph_id = ? WHERE h.event_id = ?",
                vec![leaver.graph_id.clone().into(), leaver.event_id.clone().into()],
            )?
            .to_array()?;
        Ok(rows
            .first()
            .is_some_and(|r| hold_superseded(r.in_scope != 0.0, r.updated_at as u64, r.held_at as u64)))
    }

    /// The full round `pass_id` listed the person.
    fn mark_seen(&self, graph_id: &str, pass_id: &str) -> Result<()> {
        self.sql().exec(
            "UPDATE people SET seen_pass = ? WHERE graph_id = ?",
            vec![pass_id.into(), graph_id.into()],
        )?;
        Ok(())
    }

    /// People in scope whom the full round `pass_id` did not list: deleted in Entra while no
    /// cursor was followed (a lost cursor, a periodic full round), so no `@removed` told of
    /// them. Each becomes a disable, by what earlier passes recorded.
    fn unseen(&self, pass_id: &str) -> Result<Vec<(String, LifecycleEvent)>> {
        #[derive(Deserialize)]
        struct Row {
            graph_id: String,
            external_id: String,
            user_name: Option<String>,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT graph_id, external_id, user_name FROM people \
                 WHERE in_scope = 1 AND (seen_pass IS NULL OR seen_pass != ?)",
                vec![pass_id.into()],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| (r.graph_id, unseen_leaver(r.external_id, r.user_name, now_ms())))
            .collect())
    }

    /// Records the person `graph_id` as a change left them (`in_scope`: [`record_of`]).
    fn record_person(&self, graph_id: &str, event: &LifecycleEvent, in_scope: bool, pass_id: &str) -> Result<()> {
        let Some(external_id) = event.external_id.clone() else {
            return Ok(());
        };
        let user_name = Some(event.user_name.clone()).filter(|n| !n.is_empty());
        self.sql().exec(
            "INSERT INTO people (graph_id, in_scope, external_id, user_name, updated_at, seen_pass) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(graph_id) DO UPDATE SET in_scope = excluded.in_scope, external_id = excluded.external_id, \
             user_name = COALESCE(excluded.user_name, people.user_name), updated_at = excluded.updated_at, \
             seen_pass = excluded.seen_pass",
            vec![
                graph_id.into(),
                i64::from(in_scope).into(),
                external_id.into(),
                user_name.map_or(SqlStorageValue::Null, SqlStorageValue::from),
                (now_ms() as i64).into(),
                pass_id.into(),
            ],
        )?;
        Ok(())
    }

    fn held(&self) -> Result<Vec<Leaver>> {
        let rows: Vec<DocRow> = self
            .sql()
            .exec("SELECT doc FROM held ORDER BY held_at, event_id", None)?
            .to_array()?;
        rows.iter().map(|r| Ok(serde_json::from_str(&r.doc)?)).collect()
    }

    /// Asks for a pass: one starts soon, or right after the one running (a burst of asks makes
    /// one pass).
    async fn kick(&self, kick: &Kick) -> Result<Value> {
        if kick.renew {
            self.put("renew", &true)?;
        }
        if kick.full {
            self.put("fullWanted", &true)?;
        }
        // One ask stands for all asks until a pass starts: a burst makes one pass (and one more
        // after a pass that was running when it came).
        self.put("wanted", &kick.reason)?;
        let running = self.get::<SyncPass>("pass")?.is_some();
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(COALESCE_MS).await?;
        }
        Ok(json!({"accepted": true, "running": running}))
    }

    async fn approve(&self) -> Result<Value> {
        let held = self.held()?;
        if held.is_empty() {
            return Ok(json!({"approved": 0}));
        }
        // Exactly the leavers held now: a hold that comes later needs its own approval.
        let ids: Vec<String> = held.iter().map(|l| l.event_id.clone()).collect();
        self.put("approve", &ids)?;
        // The approved leavers run as a pass of their own, after the one running if any.
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(COALESCE_MS).await?;
        }
        Ok(json!({"approved": held.len()}))
    }

    fn reject(&self) -> Result<Value> {
        let held = self.count("SELECT COUNT(*) AS n FROM held")?;
        self.sql().exec("DELETE FROM held", None)?;
        self.remove("approve")?;
        if let Some(mut last) = self.get::<Summary>("last")? {
            *last.counts.entry(ChangeOutcome::Rejected).or_default() += held as u64;
            self.put("last", &last)?;
        }
        Ok(json!({"rejected": held}))
    }

    async fn status(&self) -> Result<Value> {
        let kv = Kv::open(&self.env)?;
        let cursor: Option<Cursor> = kv.get_json(CURSOR_KEY).await?;
        let now = now_ms();
        let pass: Option<SyncPass> = self.get("pass")?;
        let last: Option<Summary> = self.get("last")?;
        let subscriptions: Vec<Subscription> = self.get("subscriptions")?.unwrap_or_default();
        let held = self.held()?;
        #[derive(Deserialize, Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ParkedRow {
            event_id: String,
            graph_id: String,
            detail: String,
            at: f64,
        }
        let parked: Vec<ParkedRow> = self
            .sql()
            .exec(
                "SELECT event_id AS eventId, graph_id AS graphId, detail, at FROM parked ORDER BY at DESC LIMIT ?",
                vec![(STATUS_LIST as i64).into()],
            )?
            .to_array()?;
        let last = last.map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            if let Some(end) = s.finished_at {
                v["durationMs"] = json!(end.saturating_sub(s.started_at));
                v["finishedAt"] = json!(iso8601(end));
            }
            v["startedAt"] = json!(iso8601(s.started_at));
            v
        });
        Ok(json!({
            "cursor": cursor.map(|c| json!({
                "storedAt": iso8601(c.stored_at),
                "ageSeconds": now.saturating_sub(c.stored_at) / 1000,
            })),
            "running": pass.map(|p| p.summary().clone()),
            "lastPass": last,
            "inScope": self.count("SELECT COUNT(*) AS n FROM people WHERE in_scope = 1")?,
            "held": {
                "count": held.len(),
                "leavers": held.iter().take(STATUS_LIST).map(|l| json!({
                    "graphId": l.graph_id, "eventId": l.event_id, "operation": l.event.operation,
                })).collect::<Vec<_>>(),
            },
            "parked": {
                "count": self.count("SELECT COUNT(*) AS n FROM parked")?,
                "changes": parked,
            },
            "subscriptions": subscriptions.iter().map(|s| json!({
                "id": s.id, "resource": s.resource.as_str(), "expiresAt": iso8601(s.expires_at),
            })).collect::<Vec<_>>(),
        }))
    }

    /// The pass to work on: the one in progress, else a new one if one was asked for.
    async fn pass_to_run(&self, graph: &GraphSettings, kv: &Kv) -> Result<Option<SyncPass>> {
        if let Some(pass) = self.get::<SyncPass>("pass")? {
            return Ok(Some(pass));
        }
        let pass_id = format!("pass-{:012x}", seed() >> 16);
        if let Some(ids) = self.get::<Vec<String>>("approve")? {
            self.remove("approve")?;
            let mut approved: Vec<Leaver> = self.held()?.into_iter().filter(|l| ids.contains(&l.event_id)).collect();
            // A person back in scope since their leaver was held (rehired, re-added) is not
            // disabled by the approval: that hold is out of date, and dropped with the rest.
            let superseded = approved
                .iter()
                .filter(|l| self.back_since_held(l).unwrap_or(false))
                .map(|l| l.event_id.clone())
                .collect::<Vec<_>>();
            for l in &approved {
                self.sql()
                    .exec("DELETE FROM held WHERE event_id = ?", vec![l.event_id.clone().into()])?;
            }
            approved.retain(|l| !superseded.contains(&l.event_id));
            if !superseded.is_empty() {
                console_log!(
                    "{}",
                    json!({"at": iso8601(now_ms()), "event": "graph_sync_holds_superseded", "eventIds": superseded})
                );
            }
            return Ok(Some(SyncPass::approved(&pass_id, approved, now_ms())));
        }
        if self.get::<String>("wanted")?.is_none() {
            return Ok(None);
        }
        let stored = kv.get_json::<Cursor>(CURSOR_KEY).await?;
        // Taken once the pass can start (a failed read leaves the ask for the retried alarm).
        self.remove("wanted")?;
        // Membership changes alone do not show in /users/delta: every so often, when a group
        // changed, or owed by one that failed, a pass reads every user again (and their groups).
        let round = next_round(
            RoundFacts {
                now: now_ms(),
                last_full: self.get("fullRoundAt")?,
                groups_changed: self.get::<bool>("fullWanted")?.is_some(),
                owed: self.get::<bool>("fullOwed")?.is_some(),
                full_round_ms: graph.full_round_ms,
                group_round_gap_ms: graph.group_round_gap_ms,
            },
            stored.map(|c| c.delta_link),
        );
        if round.takes_group_ask {
            self.remove("fullWanted")?;
        }
        // Owed to the next pass that comes, not at once: what stopped it may last.
        self.remove("fullOwed")?;
        if round.first {
            self.put("fullRoundAt", &now_ms())?;
        }
        let cursor = round.position;
        let population = self.count("SELECT COUNT(*) AS n FROM people WHERE in_scope = 1")?;
        Ok(Some(SyncPass::delta(
            &pass_id,
            cursor,
            graph.threshold,
            population,
            now_ms(),
        )))
    }

    async fn slice(&self) -> Result<SliceEnd> {
        let Some(_running) = Running::claim(&self.running) else {
            return Ok(SliceEnd::Busy);
        };
        let config = Config::shared(&self.env)
            .map_err(|p| worker::Error::RustError(format!("misconfigured: {}", p.join("; "))))?;
        let Some(graph) = config.graph.clone() else {
            return Ok(SliceEnd::Finished);
        };
        self.state.storage().set_alarm(WATCHDOG_MS).await?;
        let kv = Kv::open(&self.env)?;
        let mut budget = Budget::for_request(config.subrequest_budget);
        if self.get::<bool>("renew")?.is_some() {
            self.renew(&config, &graph, &kv, &mut budget).await?;
        }
        let Some(mut pass) = self.pass_to_run(&graph, &kv).await? else {
            // Nothing to do: the watchdog set above must not keep firing.
            self.state.storage().delete_alarm().await?;
            return Ok(SliceEnd::Finished);
        };
        let started = now_ms();
        pass.began_slice();
        let planner = Planner::of(&config, &graph);
        let select: Vec<&str> = graph.select.iter().map(String::as_str).collect();
        let end = loop {
            self.put("pass", &pass)?;
            if now_ms().saturating_sub(started) > SLICE_MS {
                break SliceEnd::Paused;
            }
            match pass.next_within(now_ms(), APPLY_LANES) {
                Work::Read(position) => {
                    let reader = DeltaReader::new(&graph.base_url, &select, position, config.retry, seed());
                    match run_authorized(reader, &graph.credentials, config.retry, &kv, &mut budget).await {
                        Err(FlowError::BudgetExhausted(_)) => break SliceEnd::Paused,
                        read => pass.on_page(read, now_ms()),
                    }
                }
                Work::Plan { index, change } => {
                    let planned = self
                        .plan_change(
                            &planner,
                            &graph,
                            &config,
                            &kv,
                            &mut budget,
                            &change,
                            pass.page_read_at(),
                        )
                        .await?;
                    // Listed by a full round, unless Graph then said the user is gone: the
                    // round's end disables, through the guard, whom it did not see.
                    let gone = matches!(planned, Planned::Plan(Plan::Ignore(Skip::Gone), _));
                    if pass.summary().full_round && !gone && !matches!(planned, Planned::Paused) {
                        self.mark_seen(&graph_id(&change), &pass.summary().pass_id)?;
                    }
                    match planned {
                        Planned::Plan(plan, requests) => {
                            if self
                                .get::<PlanRetry>("planRetry")?
                                .is_some_and(|r| r.graph_id == graph_id(&change))
                            {
                                self.remove("planRetry")?;
                            }
                            pass.on_plan(index, plan, requests)
                        }
                        Planned::Paused => break SliceEnd::Paused,
                        Planned::Failed(detail, _, true) if self.retry_plan_later(&graph_id(&change))? => {
                            // Graph could not answer for now: the pass stops short of this change
                            // and the cursor stays, so the next pass plans it again.
                            pass.abandon(format!("{}: {detail}", graph_id(&change)), now_ms());
                        }
                        Planned::Failed(detail, requests, _) => {
                            // Not guessed at: the change is parked and the pass goes on; a leaver
                            // pending for the person is withdrawn (in doubt, nothing is written).
                            self.park(&pass, index, &change, &detail)?;
                            pass.on_plan_failed(index, &graph_id(&change), requests);
                        }
                    }
                }
                Work::Apply { slot, event_id, event } => {
                    let one = vec![Apply { slot, event_id, event }];
                    if let Some(end) = self.apply_changes(&mut pass, &mut budget, one).await? {
                        break end;
                    }
                }
                Work::ApplyAll(all) => {
                    if let Some(end) = self.apply_changes(&mut pass, &mut budget, all).await? {
                        break end;
                    }
                }
                Work::Unseen => {
                    let unseen = self.unseen(&pass.summary().pass_id)?;
                    pass.on_unseen(unseen);
                }
                Work::StoreCursor(link) => {
                    let cursor = Cursor {
                        delta_link: link,
                        stored_at: now_ms(),
                    };
                    kv.put_json(CURSOR_KEY, &cursor).await?;
                    pass.on_cursor_stored(now_ms());
                }
                Work::Done(summary) => {
                    self.finish(&mut pass, &summary)?;
                    break SliceEnd::Finished;
                }
            }
        };
        // Asked for while this pass ran: another pass, or approved leavers.
        if end == SliceEnd::Finished
            && (self.get::<String>("wanted")?.is_some() || self.get::<Vec<String>>("approve")?.is_some())
        {
            return Ok(SliceEnd::Paused);
        }
        if end == SliceEnd::Finished {
            self.state.storage().delete_alarm().await?;
        }
        if end == SliceEnd::Finished && self.get::<bool>("fullWanted")?.is_some() {
            // A group changed too soon after the last full round: one more comes when it may.
            let due = group_round_due(self.get("fullRoundAt")?, graph.group_round_gap_ms);
            self.put("wanted", &"groups")?;
            return Ok(SliceEnd::Later(due.saturating_sub(now_ms()).max(1) as i64));
        }
        Ok(end)
    }

    /// Applies changes for different people at once, each through its person's ledger, as many
    /// as the budget pays for (the rest come again); `Some(end)` when the slice stops there: the
    /// budget ran out, or a person is busy with another event (their change waits its turn).
    async fn apply_changes(
        &self,
        pass: &mut SyncPass,
        budget: &mut Budget,
        mut applies: Vec<Apply>,
    ) -> Result<Option<SliceEnd>> {
        // A leaver's steps cost more than a joiner's write: each change gets its share.
        let cost = |a: &Apply| Budget::cost_of(a.event.operation.is_leaver());
        applies.truncate(budget.fits(applies.iter().map(cost)));
        if applies.is_empty() {
            return Ok(Some(SliceEnd::Paused));
        }
        let total: u32 = applies.iter().map(cost).sum();
        let shared = *budget;
        let runs = applies.iter().map(|a| async move {
            let allowance = shared.share(cost(a), total);
            let delivery = Delivery {
                event_id: a.event_id.clone(),
                body_digest: sha256_hex(a.event_id.as_bytes()),
                event: serde_json::to_value(&a.event)?,
                replay: false,
                trigger: cxone_scim_core::audit::Trigger::Delta,
                deprovision: None,
                leaver_id: None,
            };
            let applying = now_ms();
            let mut audit = AuditRecord::new(applying, "SYNC", "/sync/pass");
            audit.event_id = Some(a.event_id.clone());
            let answer = apply(&self.env, &a.event, delivery, &mut audit, allowance).await?;
            audit.status = answer.status;
            audit.latency_ms = now_ms().saturating_sub(applying);
            console_log!("{}", audit.to_json_line());
            Ok::<_, worker::Error>(answer)
        });
        let answers = join_all(runs).await;
        let mut end = None;
        for (a, answered) in applies.into_iter().zip(answers) {
            let answer = answered?;
            budget.spend(answer.used);
            let Some(outcome) = ChangeOutcome::of(answer.settled) else {
                // Not done: the budget ran out (go on in a fresh invocation), or the person is
                // busy with another event (this change waits its turn).
                end = Some(if budget.applies(1) == 0 {
                    SliceEnd::Paused
                } else {
                    SliceEnd::Later(BUSY_RETRY_MS)
                });
                continue;
            };
            let graph_id = pass.graph_id_of(a.slot).unwrap_or_default();
            match record_of(outcome, &a.event) {
                Record::Park => self.park_event(&a.event_id, &graph_id, &answer)?,
                Record::Person { in_scope } => {
                    let pass_id = pass.summary().pass_id.clone();
                    self.record_person(&graph_id, &a.event, in_scope, &pass_id)?;
                }
                Record::Nothing => {}
            }
            pass.on_applied(a.slot, outcome);
        }
        Ok(end)
    }

    /// Plans one change: the person's groups read (and the whole user, for an entry with only
    /// its changed properties), then core's plan.
    #[allow(clippy::too_many_arguments)]
    async fn plan_change(
        &self,
        planner: &Planner<'_>,
        graph: &GraphSettings,
        config: &Config,
        kv: &Kv,
        budget: &mut Budget,
        change: &Change,
        read_at: u64,
    ) -> Result<Planned> {
        let mut requests = 0;
        let mut change = change.clone();
        if let Change::Upsert { user } = &mut change {
            if planner.needs_full_read(user) {
                let select: Vec<&str> = graph.select.iter().map(String::as_str).collect();
                let flow = UserReadFlow::new(&graph.base_url, &user.id, &select, config.retry, seed());
                requests += 1;
                match run_authorized(flow, &graph.credentials, config.retry, kv, budget).await {
                    Ok(Some(full)) => **user = full,
                    Ok(None) => return Ok(Planned::Plan(Plan::Ignore(Skip::Gone), requests)),
                    Err(FlowError::BudgetExhausted(_)) => return Ok(Planned::Paused),
                    Err(e) => return Ok(Planned::Failed(e.to_string(), requests, !e.is_permanent())),
                }
            }
        }
        let membership = match &change {
            Change::Upsert { user } if planner.needs_groups() => {
                let flow = MemberOfFlow::new(&graph.base_url, &user.id, config.retry, seed());
                let (out, n) = run_authorized_then(
                    flow,
                    &graph.credentials,
                    config.retry,
                    kv,
                    budget,
                    MemberOfFlow::requests,
                )
                .await;
                requests += n;
                match out {
                    Ok(m) => Some(m),
                    Err(FlowError::BudgetExhausted(_)) => return Ok(Planned::Paused),
                    Err(e) => return Ok(Planned::Failed(e.to_string(), requests, !e.is_permanent())),
                }
            }
            _ => None,
        };
        let known = self.known(&graph_id(&change))?;
        Ok(
            match planner.plan(&change, membership.as_ref(), known.as_ref(), read_at) {
                Ok(plan) => Planned::Plan(plan, requests),
                Err(e) => Planned::Failed(e.to_string(), requests, false),
            },
        )
    }

    fn finish(&self, pass: &mut SyncPass, summary: &Summary) -> Result<()> {
        let now = now_ms() as i64;
        for leaver in pass.take_held() {
            self.sql().exec(
                "INSERT INTO held (event_id, doc, held_at) VALUES (?, ?, ?) ON CONFLICT(event_id) DO NOTHING",
                vec![
                    leaver.event_id.clone().into(),
                    serde_json::to_string(&leaver)?.into(),
                    now.into(),
                ],
            )?;
        }
        console_log!(
            "{}",
            json!({"at": iso8601(now_ms()), "event": "graph_sync_pass", "summary": summary})
        );
        if summary.full_round && summary.cursor_advanced {
            self.put("fullRoundAt", &summary.started_at)?;
        } else if summary.full_round {
            // Membership changes show only in full rounds: one that failed is owed.
            self.put("fullOwed", &true)?;
        }
        self.put("last", summary)?;
        self.remove("pass")?;
        Ok(())
    }

    /// Whether a pass should stop short of `graph_id`'s change rather than park it
    /// ([`retry_plan`]).
    fn retry_plan_later(&self, graph_id: &str) -> Result<bool> {
        let (later, next) = retry_plan(self.get("planRetry")?, graph_id);
        match next {
            Some(next) => self.put("planRetry", &next)?,
            None => self.remove("planRetry")?,
        }
        Ok(later)
    }

    fn park(&self, pass: &SyncPass, index: usize, change: &Change, detail: &str) -> Result<()> {
        let summary = pass.summary();
        let event_id = format!("{}-p{}-{index}", summary.pass_id, summary.pages);
        self.sql().exec(
            "INSERT INTO parked (event_id, graph_id, detail, at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(event_id) DO UPDATE SET graph_id = excluded.graph_id, detail = excluded.detail, \
             at = excluded.at",
            vec![
                event_id.into(),
                graph_id(change).into(),
                detail.into(),
                (now_ms() as i64).into(),
            ],
        )?;
        Ok(())
    }

    fn park_event(&self, event_id: &str, graph_id: &str, answer: &ApplyAnswer) -> Result<()> {
        let detail = answer.detail.clone().unwrap_or_else(|| "failed".to_string());
        self.sql().exec(
            "INSERT INTO parked (event_id, graph_id, detail, at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(event_id) DO UPDATE SET detail = excluded.detail, at = excluded.at",
            vec![
                event_id.into(),
                graph_id.into(),
                detail.into(),
                (now_ms() as i64).into(),
            ],
        )?;
        Ok(())
    }

    /// Creates or renews the change-notification subscriptions when they near their end.
    async fn renew(&self, config: &Config, graph: &GraphSettings, kv: &Kv, budget: &mut Budget) -> Result<()> {
        self.remove("renew")?;
        let (Some(url), Some(client_state)) = (&graph.notification_url, &graph.client_state) else {
            return Ok(());
        };
        let known: Vec<Subscription> = self.get("subscriptions")?.unwrap_or_default();
        let flow = SubscriptionFlow::new(
            &graph.base_url,
            url,
            client_state.clone(),
            known,
            now_ms(),
            config.retry,
            seed(),
        );
        let (out, current) = run_authorized_then(
            flow,
            &graph.credentials,
            config.retry,
            kv,
            budget,
            SubscriptionFlow::current,
        )
        .await;
        self.put("subscriptions", &current)?;
        if let Err(e) = out {
            // Tried again at the next cron; the passes go on without notifications meanwhile.
            console_log!(
                "{}",
                json!({"at": iso8601(now_ms()), "event": "graph_subscriptions_failed", "detail": e.to_string()})
            );
        }
        Ok(())
    }

    /// A pass that sends nothing that writes: Graph and CXone are read, and the first write each
    /// change would send is listed, with the leavers the guard would hold. No cursor moves.
    async fn dry_run(&self) -> Result<Value> {
        let config = Config::shared(&self.env)
            .map_err(|p| worker::Error::RustError(format!("misconfigured: {}", p.join("; "))))?;
        let Some(graph) = config.graph.clone() else {
            return Ok(json!({"dryRun": true, "configured": false}));
        };
        let kv = Kv::open(&self.env)?;
        let cursor = kv
            .get_json::<Cursor>(CURSOR_KEY)
            .await?
            .map_or(Position::Start, |c| Position::Round(c.delta_link));
        let population = self.count("SELECT COUNT(*) AS n FROM people WHERE in_scope = 1")?;
        let mut pass = SyncPass::delta("dry-run", cursor, graph.threshold, population, now_ms());
        let planner = Planner::of(&config, &graph);
        let select: Vec<&str> = graph.select.iter().map(String::as_str).collect();
        let mut budget = Budget::for_request(config.subrequest_budget);
        let mut requests: Vec<Value> = Vec::new();
        let mut complete = true;
        loop {
            match pass.next(now_ms()) {
                Work::Read(position) => {
                    let reader = DeltaReader::new(&graph.base_url, &select, position, config.retry, seed());
                    match run_authorized(reader, &graph.credentials, config.retry, &kv, &mut budget).await {
                        Err(FlowError::BudgetExhausted(_)) => {
                            complete = false;
                            break;
                        }
                        read => pass.on_page(read, now_ms()),
                    }
                }
                Work::Plan { index, change } => {
                    match self
                        .plan_change(&planner, &graph, &config, &kv, &mut budget, &change, now_ms())
                        .await?
                    {
                        Planned::Plan(plan, n) => pass.on_plan(index, plan, n),
                        Planned::Paused => {
                            complete = false;
                            break;
                        }
                        Planned::Failed(detail, n, _) => {
                            requests.push(json!({"graphId": graph_id(&change), "error": detail}));
                            pass.on_plan(index, Plan::Ignore(Skip::Gone), n);
                        }
                    }
                }
                Work::Apply { slot, event, .. } => {
                    let Some(mut sub) = budget.carve_plan(event.operation.is_leaver()) else {
                        complete = false;
                        break;
                    };
                    let command = match event.command(&config.policy, &config.roles.target) {
                        Ok((c, _)) => c,
                        Err(v) => {
                            requests.push(json!({"externalId": event.external_id, "refused": v.to_string()}));
                            pass.on_applied(slot, ChangeOutcome::Failed);
                            continue;
                        }
                    };
                    let planned: Option<PlannedRequest> = plan_change(&config, command, &kv, &mut sub).await;
                    budget.settle(&sub);
                    if let Some(p) = planned {
                        requests.push(json!({"externalId": event.external_id, "request": p}));
                    }
                    pass.on_applied(slot, ChangeOutcome::Unchanged);
                }
                // One at a time here (`next`): never several.
                Work::ApplyAll(_) => {
                    complete = false;
                    break;
                }
                // Who a full round no longer lists is known only from a real pass's marks.
                Work::Unseen => pass.on_unseen(Vec::new()),
                Work::StoreCursor(_) | Work::Done(_) => break,
            }
        }
        let held: Vec<Value> = pass
            .take_held()
            .iter()
            .map(|l| json!({"graphId": l.graph_id, "operation": l.event.operation}))
            .collect();
        Ok(json!({
            "dryRun": true,
            "complete": complete,
            "requests": requests,
            "wouldHold": held,
            "changes": pass.summary().changes,
            "pages": pass.summary().pages,
        }))
    }
}

/// How planning one change ended.
enum Planned {
    /// The plan, and the Graph requests it took.
    Plan(Plan, u32),
    /// The budget ran out first.
    Paused,
    /// Graph could not tell enough (or the entry cannot be mapped): parked. `true`: Graph's
    /// failure may pass (5xx, 429, no answer), worth another pass before parking.
    Failed(String, u32, bool),
}

fn graph_id(change: &Change) -> String {
    match change {
        Change::Upsert { user } => user.id.clone(),
        Change::Removed { id, .. } => id.clone(),
    }
}

/// The Worker's side: the one sync object.
pub struct GraphSync {
    stub: Stub,
}

impl GraphSync {
    pub fn open(env: &Env) -> Result<Self> {
        let namespace = env.durable_object(SYNC_BINDING)?;
        Ok(Self {
            stub: namespace.id_from_name("graph")?.get_stub()?,
        })
    }

    pub async fn call(&self, call: &SyncCall) -> Result<Value> {
        crate::objects::call(&self.stub, "sync", call).await
    }

    pub async fn kick(&self, reason: &str, renew: bool) -> Result<Value> {
        self.kick_for(reason, renew, false).await
    }

    /// [`GraphSync::kick`], the pass a full round when `full` (a group changed).
    pub async fn kick_for(&self, reason: &str, renew: bool, full: bool) -> Result<Value> {
        self.call(&SyncCall::Kick(Kick {
            reason: reason.to_string(),
            renew,
            full,
        }))
        .await
    }
}
