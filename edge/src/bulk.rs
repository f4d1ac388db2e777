//! Bulk runs: one SQLite-backed Durable Object per run, named by its runId.
//!
//! Tables:
//! - `meta`: one row, the run's small state ([`BulkRun`]: limits, counts, pacing) and its
//!   identity (runId, input digest, times, last error);
//! - `rows`: one row per input user ([`Entry`]), with a `pending` flag indexed for the window;
//! - `drafts`: the audit records of rows written, kept with the rows until the trail has them
//!   (appended at the end of each slice, and at the start of the next if a slice died first).
//!
//! The object stores and drives; `cxone_scim_core::bulk` decides. A slice runs the core run
//! within one invocation's subrequest budget (SQLite costs none), writing each row before
//! its operation is sent and after each answer; an alarm continues the run with a fresh
//! budget. Only one slice runs at a time; a watchdog alarm resumes a slice that died.

use crate::config::{Config, BULK_BINDING};
use crate::driver::{authorized, keep_token, now_ms, seed, send_all, Budget};
use crate::kv::State as Kv;
use crate::leaver_batches::{BatchCall, LeaverBatches};
use crate::ledger::{begin_for, BeginRequest, CommitRequest, Ledger};
use crate::objects::{migrate, Running, Schema, Slices};
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::{iso8601, AuditDraft};
use cxone_scim_core::bulk::{
    input_digest, BulkConfig, BulkRun, BulkUser, Entry, HoldAnswer, HoldAsk, Intake, RowRequest,
};
use cxone_scim_core::deprovision::{BatchRow, BatchState, DeprovisionRequest, Mode};
use cxone_scim_core::flows::{Flow, Step};
use cxone_scim_core::ledger::Decision;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, SqlStorage, SqlStorageValue,
    State, Stub,
};

/// Rows per INSERT (SQLite in a Durable Object binds at most 100 values per statement).
const INSERT_ROWS: usize = 30;
/// Users listed per page of a run's report.
pub const REPORT_PAGE: usize = 1000;
/// Runs of at most this many users are answered with their report; larger ones with 202.
const ANSWER_INLINE_UP_TO: usize = 100;
/// A wait longer than this ends the slice; an alarm resumes the run when it is over.
const MAX_INLINE_WAIT_MS: u64 = 2_000;
/// A slice that has not finished by then is taken to have died, and the alarm resumes the run.
const WATCHDOG_MS: i64 = 120_000;
/// A finished run is kept this long, then deleted.
const KEEP_FINISHED_MS: i64 = 30 * 24 * 3600 * 1000;

/// The body of `POST /provision/bulk`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkBody {
    pub users: Vec<BulkUser>,
    // Read by the Worker before the body reaches the run; accepted here.
    #[serde(default)]
    #[allow(dead_code)]
    run_id: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    dry_run: Option<cxone_scim_core::dry_run::DryRunField>,
}

/// Reads a bulk request body (the whole of it, or the part a caller needs); the error names the
/// JSON path at fault, for a 400 `invalidSyntax`.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes))
        .map_err(|e| format!("invalid bulk request at {}: {}", e.path(), e.inner()))
}

pub fn bulk_config(config: &Config) -> BulkConfig {
    BulkConfig {
        batch_size: config.bulk.batch_size,
        precheck: config.bulk.precheck,
        fail_on_errors: config.bulk.fail_on_errors,
        retry: config.retry,
        role_target: config.roles.target.clone(),
        hold_rows: true,
        caps: config.profile.capabilities(),
        ..BulkConfig::new(&config.scim_base_url)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunMeta {
    run_id: String,
    input_digest: String,
    created_at: String,
    updated_at: String,
    /// Why the run cannot go on (CXone refused our credentials, say); cleared on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// The batch its leavers (`active:false` rows) were handed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leaver_batch: Option<String>,
    run: BulkRun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SliceEnd {
    Finished,
    /// The budget ran out; an alarm continues right away.
    Paused,
    /// The server asked for a pause; an alarm continues then.
    Sleeping(u64),
    /// Another slice is running.
    Busy,
    /// The run cannot continue until something outside changes.
    Failed(String),
}

#[durable_object]
pub struct BulkRunner(Slices);

impl std::ops::Deref for BulkRunner {
    type Target = Slices;

    fn deref(&self) -> &Slices {
        &self.0
    }
}

impl DurableObject for BulkRunner {
    fn new(state: State, env: Env) -> Self {
        Self(Slices::start(state, env, SCHEMA))
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let number = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .map(|n| n as usize)
        };
        let cursor = number("cursor").unwrap_or(0);
        let limit = number("limit").unwrap_or(REPORT_PAGE).min(REPORT_PAGE);
        match url.path() {
            "/start" => {
                let run_id = req.headers().get("x-run-id")?.unwrap_or_default();
                let bytes = req.bytes().await?;
                self.start(&run_id, &bytes).await
            }
            "/status" => match self.meta()? {
                Some(meta) => Response::from_json(&self.answer(&meta, cursor, limit)?),
                None => crate::reply::api_error(&ApiError::not_found("no such bulk run")),
            },
            other => crate::reply::api_error(&ApiError::not_found(format!("no bulk route {other}"))),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let Some(meta) = self.meta()? else {
            return Response::ok("");
        };
        if meta.run.is_finished() && !self.running.get() {
            let finished_at = cxone_scim_core::time::parse_rfc3339(&meta.updated_at).unwrap_or(0);
            let keep_until = finished_at.saturating_add(KEEP_FINISHED_MS as u64);
            if now_ms() >= keep_until {
                // Kept for its report until now; gone after (the tables come back empty).
                self.state.storage().delete_all().await?;
                tables(&self.sql());
            } else {
                let offset = keep_until.saturating_sub(now_ms()).min(KEEP_FINISHED_MS as u64);
                self.state.storage().set_alarm(offset as i64).await?;
            }
            return Response::ok("");
        }
        let end = self.slice().await?;
        if end == SliceEnd::Busy {
            self.state.storage().set_alarm(WATCHDOG_MS).await?;
        }
        Response::ok("")
    }
}

impl BulkRunner {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn meta(&self) -> Result<Option<RunMeta>> {
        #[derive(Deserialize)]
        struct Row {
            doc: String,
        }
        let rows: Vec<Row> = self.sql().exec("SELECT doc FROM meta WHERE k = 0", None)?.to_array()?;
        match rows.first() {
            Some(r) => Ok(Some(serde_json::from_str(&r.doc)?)),
            None => Ok(None),
        }
    }

    /// Saves `meta` with `run` in place of its own copy (no clone of the run's window).
    fn save_run(&self, meta: &RunMeta, run: &BulkRun) -> Result<()> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            run_id: &'a str,
            input_digest: &'a str,
            created_at: &'a str,
            updated_at: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            last_error: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            leaver_batch: Option<&'a str>,
            run: &'a BulkRun,
        }
        let doc = Doc {
            run_id: &meta.run_id,
            input_digest: &meta.input_digest,
            created_at: &meta.created_at,
            updated_at: &meta.updated_at,
            last_error: meta.last_error.as_deref(),
            leaver_batch: meta.leaver_batch.as_deref(),
            run,
        };
        self.sql().exec(
            "INSERT INTO meta (k, doc) VALUES (0, ?) ON CONFLICT(k) DO UPDATE SET doc = excluded.doc",
            vec![serde_json::to_string(&doc)?.into()],
        )?;
        Ok(())
    }

    fn save_meta(&self, meta: &RunMeta) -> Result<()> {
        self.save_run(meta, &meta.run)
    }

    async fn start(&self, run_id: &str, bytes: &[u8]) -> Result<Response> {
        let body: BulkBody = match parse_body(bytes) {
            Ok(b) => b,
            Err(detail) => return crate::reply::api_error(&ApiError::bad_request("invalidSyntax", detail)),
        };
        let config = match Config::shared(&self.env) {
            Ok(c) => c,
            Err(p) => {
                return crate::reply::api_error(&ApiError::unavailable(format!("misconfigured: {}", p.join("; "))))
            }
        };
        let digest = input_digest(&body.users);
        match self.meta()? {
            Some(existing) if existing.input_digest != digest => {
                return crate::reply::api_error(&ApiError::conflict(
                    Some("uniqueness"),
                    format!("runId {run_id} was used for a different input"),
                ));
            }
            Some(mut existing) => {
                // A resume: whatever stopped it may have been fixed.
                existing.last_error = None;
                self.save_meta(&existing)?;
            }
            None => {
                let bulk = bulk_config(&config);
                let mut intake = Intake::new(&config.policy, &config.roles.target, bulk.precheck);
                let sql = self.sql();
                let mut leavers = Vec::new();
                for (chunk_no, chunk) in body.users.chunks(INSERT_ROWS).enumerate() {
                    let first = chunk_no * INSERT_ROWS;
                    let mut values = Vec::with_capacity(chunk.len() * 3);
                    for (k, u) in chunk.iter().enumerate() {
                        let entry = intake.take(u);
                        if let Some(lookup) = entry.leaver() {
                            leavers.push(DeprovisionRequest {
                                lookup,
                                options: config.deprovision.options(Mode::Deactivate),
                            });
                        }
                        values.push(SqlStorageValue::from((first + k) as i64));
                        values.push(SqlStorageValue::from(i64::from(entry.is_pending())));
                        values.push(serde_json::to_string(&entry)?.into());
                    }
                    let marks = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                    sql.exec(&format!("INSERT INTO rows (idx, pending, row) VALUES {marks}"), values)?;
                }
                let now = iso8601(now_ms());
                let run = BulkRun::new(bulk, body.users.len(), intake.counts(), seed());
                // Leavers take every leaver's steps in a batch of their own, under the deletion
                // guard like any batch of leavers.
                let leaver_batch = if leavers.is_empty() {
                    None
                } else {
                    let id = format!("lb_{run_id}");
                    let state = BatchState::start(leavers.len(), &config.deprovision.threshold);
                    LeaverBatches::of(&self.env, &id)?
                        .call(&BatchCall::Start {
                            id: id.clone(),
                            rows: leavers.iter().map(BatchRow::of).collect(),
                            state,
                            at: now_ms(),
                        })
                        .await?;
                    Some(id)
                };
                self.save_meta(&RunMeta {
                    run_id: run_id.to_string(),
                    input_digest: digest,
                    created_at: now.clone(),
                    updated_at: now,
                    last_error: None,
                    leaver_batch,
                    run,
                })?;
            }
        }
        let total = body.users.len();
        drop(body);
        let finished = self.meta()?.is_some_and(|m| m.run.is_finished());
        if total > ANSWER_INLINE_UP_TO && !finished {
            // A large run goes on in the background; the answer does not wait for it.
            self.state.storage().set_alarm(0i64).await?;
            let meta = self
                .meta()?
                .ok_or_else(|| worker::Error::RustError("bulk run vanished".into()))?;
            return Ok(Response::from_json(&self.answer(&meta, 0, REPORT_PAGE)?)?.with_status(202));
        }
        let end = self.slice().await?;
        let meta = self
            .meta()?
            .ok_or_else(|| worker::Error::RustError("bulk run vanished".into()))?;
        let answer = self.answer(&meta, 0, REPORT_PAGE)?;
        match end {
            SliceEnd::Finished => Response::from_json(&answer),
            SliceEnd::Failed(e) => crate::reply::api_error(&ApiError::upstream(format!(
                "bulk run {run_id} stopped: {e}; post it again to resume"
            ))),
            SliceEnd::Paused | SliceEnd::Sleeping(_) | SliceEnd::Busy => {
                Ok(Response::from_json(&answer)?.with_status(202))
            }
        }
    }

    /// Runs as much of the run as one invocation's budget allows, then hands the rest to an
    /// alarm.
    async fn slice(&self) -> Result<SliceEnd> {
        let Some(_running) = Running::claim(&self.running) else {
            return Ok(SliceEnd::Busy);
        };
        let Some(mut meta) = self.meta()? else {
            return Ok(SliceEnd::Finished);
        };
        if meta.run.is_finished() {
            return Ok(SliceEnd::Finished);
        }
        let config = Config::shared(&self.env)
            .map_err(|p| worker::Error::RustError(format!("misconfigured: {}", p.join("; "))))?;
        let storage = self.state.storage();
        storage.set_alarm(WATCHDOG_MS).await?;
        let kv = Kv::open(&self.env)?;
        // The token read from KV is one subrequest, the slice's audit records one more.
        let mut budget = Budget::for_request(config.subrequest_budget);
        let sql = self.sql();
        // Records a slice that died left behind go first (one more call to the trail).
        if self.flush_drafts(&config, &meta.run_id).await? {
            budget.spend(1);
        }
        // Stored beside the rows they describe, in the same transaction.
        let audit_of = |writes: &[(usize, Entry)], at: u64| -> Result<()> {
            let latency = now_ms().saturating_sub(at);
            let drafts: Vec<AuditDraft> = writes.iter().filter_map(|(_, e)| e.audit_draft(at, latency)).collect();
            keep_drafts(&sql, &drafts)
        };
        let mut flow = authorized(meta.run.clone(), &config.credentials, config.retry, &kv).await;
        let timeout = Duration::from_millis(flow.inner().config().request_timeout_ms);
        let prefix = format!("bulk:{}", meta.run_id);
        let end = loop {
            feed(&sql, flow.inner_mut())?;
            // Every row's person is held in their ledger before a request that writes to them.
            let asks = flow.inner_mut().holds_wanted(now_ms(), &prefix);
            if !asks.is_empty() {
                let answers = self.hold(&asks, &mut budget).await?;
                if answers.is_empty() {
                    break SliceEnd::Paused;
                }
                flow.inner_mut().on_holds(answers, &asks, now_ms());
                // Kept with the rows: a hold is renewed under its token after a restart.
                let writes = flow.inner_mut().take_writes();
                audit_of(&writes, now_ms())?;
                store(&sql, writes)?;
                self.save_run(&meta, flow.inner())?;
            }
            // As many single-user requests at once as the budget still pays for.
            flow.inner_mut().allow_lanes(budget.steps_left() as usize);
            // One request, or several the run asks for at once (one per user, without Bulk).
            let (reqs, at_once) = match flow.next_step(now_ms()) {
                Step::Send(req) => (vec![req], false),
                Step::SendAll(reqs) => (reqs, true),
                Step::Wait { until } => {
                    let wait = until.saturating_sub(now_ms());
                    if wait > MAX_INLINE_WAIT_MS {
                        break SliceEnd::Sleeping(until);
                    }
                    worker::Delay::from(Duration::from_millis(wait)).await;
                    continue;
                }
                Step::Done(Ok(_)) => break SliceEnd::Finished,
                Step::Done(Err(e)) => break SliceEnd::Failed(e.to_string()),
            };
            if !budget.take_steps(reqs.len() as u32, now_ms()) {
                flow.inner_mut().unsend();
                self.release(flow.inner_mut()).await;
                break SliceEnd::Paused;
            }
            // Write-ahead: the rows of these requests are marked sent before they go.
            // (A token request that goes first carries no rows.)
            let run = flow.inner_mut();
            let sending = if reqs.first().is_some_and(|r| r.url == config.credentials.token_url) {
                Vec::new()
            } else {
                run.sending().to_vec()
            };
            let writes = run.take_writes();
            audit_of(&writes, now_ms())?;
            mark_sent(&sql, &sending)?;
            store(&sql, writes.into_iter().filter(|(i, _)| !sending.contains(i)).collect())?;
            // The counts go with the rows, so they never disagree after a restart.
            self.save_run(&meta, flow.inner())?;
            let sent_at = now_ms();
            let mut answers = send_all(&reqs, timeout).await;
            match answers.pop() {
                Some(Ok(resp)) if !at_once => flow.on_response(resp, now_ms()),
                Some(Err(e)) if !at_once => flow.on_transport_error(e, now_ms()),
                last => {
                    answers.extend(last);
                    flow.on_answers(answers, now_ms());
                }
            }
            self.release(flow.inner_mut()).await;
            let writes = flow.inner_mut().take_writes();
            audit_of(&writes, sent_at)?;
            store(&sql, writes)?;
            meta.updated_at = iso8601(now_ms());
            self.save_run(&meta, flow.inner())?;
        };
        keep_token(&flow, &config.credentials, &kv).await;
        // Nobody stays held while the run waits for its next slice.
        flow.inner_mut().release_held();
        self.release(flow.inner_mut()).await;
        let writes = flow.inner_mut().take_writes();
        audit_of(&writes, now_ms())?;
        store(&sql, writes)?;
        // One record per user the slice wrote (or failed to), in one call to the trail.
        self.flush_drafts(&config, &meta.run_id).await?;
        meta.updated_at = iso8601(now_ms());
        if let SliceEnd::Failed(e) = &end {
            meta.last_error = Some(e.clone());
        }
        self.save_run(&meta, flow.inner())?;
        match &end {
            SliceEnd::Finished => storage.set_alarm(KEEP_FINISHED_MS).await?,
            SliceEnd::Paused => storage.set_alarm(0i64).await?,
            SliceEnd::Sleeping(until) => {
                // However far the server asks to wait, the watchdog looks in at least that often.
                let offset = until.saturating_sub(now_ms()).min(WATCHDOG_MS as u64);
                storage.set_alarm(offset as i64).await?;
            }
            SliceEnd::Failed(_) => storage.delete_alarm().await?,
            SliceEnd::Busy => {}
        }
        Ok(end)
    }

    /// Asks the ledgers of the rows' people for holds, all at once, as far as the budget goes
    /// (each hold's commit is counted now). Empty when the budget allows none.
    async fn hold(&self, asks: &[HoldAsk], budget: &mut Budget) -> Result<Vec<HoldAnswer>> {
        // One step is left for the request the holds are for.
        let affordable = budget.holds();
        let asking = &asks[..asks.len().min(affordable)];
        budget.spend(cxone_scim_core::budget::HOLD_CALLS * asking.len() as u32);
        let answers = asking.iter().map(|ask| async move {
            let mut begin = BeginRequest {
                facts: ask.facts.clone(),
                lease_ms: ask.lease_ms,
                lease_token: ask.lease_token.clone(),
                carried: None,
            };
            match begin_for(&self.env, ask.external_id.as_deref(), &ask.user_name, &mut begin).await {
                Ok((ledger, decision, _)) => HoldAnswer {
                    index: ask.index,
                    ledger: ledger.key().to_string(),
                    decision,
                },
                // A ledger out of reach holds nothing: the row asks again shortly.
                Err(e) => {
                    worker::console_log!("bulk: a ledger did not answer: {e}");
                    HoldAnswer {
                        index: ask.index,
                        ledger: ask.key.clone(),
                        decision: Decision::Busy { retry_after_ms: 1_000 },
                    }
                }
            }
        });
        Ok(futures_util::future::join_all(answers).await)
    }

    /// Gives back the holds the run is done with, before the rows are stored: a row stored with
    /// its hold after a lost commit is read again and meets its own answer in the ledger. A
    /// commit that fails leaves the lease to run out.
    async fn release(&self, run: &mut BulkRun) {
        let releases = run.take_releases();
        let commits = releases.into_iter().map(|r| async move {
            let request = CommitRequest {
                commit: r.commit,
                failure_recorded: false,
            };
            match Ledger::of(&self.env, &r.ledger) {
                Ok(ledger) => ledger.commit(&request).await.map(|_| ()),
                Err(e) => Err(e),
            }
        });
        for failed in futures_util::future::join_all(commits)
            .await
            .into_iter()
            .filter_map(|r| r.err())
        {
            worker::console_log!("bulk: a hold was not given back (its lease runs out): {failed}");
        }
    }

    /// Hands the kept audit drafts to the trail (or, when it cannot be reached, to its parked
    /// records) and drops them. The batch is named by the run and its drafts' seqs, so a flush
    /// repeated after a lost answer is taken once. `true` when there were any.
    async fn flush_drafts(&self, config: &Config, run_id: &str) -> Result<bool> {
        #[derive(Deserialize)]
        struct DraftRow {
            seq: f64,
            doc: String,
        }
        let rows: Vec<DraftRow> = self
            .sql()
            .exec("SELECT seq, doc FROM drafts ORDER BY seq", None)?
            .to_array()?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(false);
        };
        let (first, last) = (first.seq as i64, last.seq as i64);
        let drafts = rows
            .iter()
            .map(|r| serde_json::from_str::<AuditDraft>(&r.doc))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let batch = format!("bulk-{run_id}-{first}-{last}");
        crate::audit_trail::record_batch(&self.env, config, drafts, Some(batch)).await;
        self.sql()
            .exec("DELETE FROM drafts WHERE seq <= ?", vec![last.into()])?;
        Ok(true)
    }

    /// The run's state and one page of its users' outcomes (`limit` 0: the state alone).
    fn answer(&self, meta: &RunMeta, cursor: usize, limit: usize) -> Result<Value> {
        let progress = meta.run.progress();
        let finished = progress.finished;
        let mut answer = json!({
            "runId": meta.run_id,
            "status": if finished { "finished" } else if meta.last_error.is_some() { "stalled" } else { "running" },
            "createdAt": meta.created_at,
            "updatedAt": meta.updated_at,
        });
        if let Some(e) = &meta.last_error {
            answer["lastError"] = json!(e);
        }
        if let Some(id) = &meta.leaver_batch {
            answer["leaverBatch"] = json!(id);
        }
        if let (Some(obj), Value::Object(p)) = (answer.as_object_mut(), serde_json::to_value(&progress)?) {
            obj.extend(p);
        }
        if !meta.run.errors().is_empty() {
            answer["errors"] = json!(meta.run.errors());
        }
        if limit == 0 {
            return Ok(answer);
        }
        let sql = self.sql();
        let rows = rows_from(
            &sql,
            "SELECT idx, sent, row FROM rows WHERE idx >= ? ORDER BY idx LIMIT ?",
            cursor,
            limit + 1,
        )?;
        let more = rows.len() > limit;
        let mut users = Vec::with_capacity(rows.len().min(limit));
        for (i, e) in rows.into_iter().take(limit) {
            // A repeat carries its first occurrence's CXone id.
            let first_id = match e.duplicate_of() {
                Some(f) => rows_from(&sql, "SELECT idx, sent, row FROM rows WHERE idx = ? LIMIT ?", f, 1)?
                    .into_iter()
                    .next()
                    .and_then(|(_, first)| first.id().map(str::to_string)),
                None => None,
            };
            users.push(e.report(i, first_id));
        }
        answer["users"] = serde_json::to_value(&users)?;
        if more {
            answer["nextCursor"] = json!((cursor + limit).to_string());
        }
        Ok(answer)
    }
}

#[derive(Deserialize)]
struct RowText {
    idx: f64,
    sent: f64,
    row: String,
}

/// `query` selects `idx, sent, row` with two parameters (from, limit).
fn rows_from(sql: &SqlStorage, query: &str, from: usize, limit: usize) -> Result<Vec<(usize, Entry)>> {
    let rows: Vec<RowText> = sql
        .exec(query, vec![(from as i64).into(), (limit as i64).into()])?
        .to_array()?;
    rows.into_iter()
        .map(|r| {
            let entry: Entry = serde_json::from_str(&r.row)?;
            Ok((r.idx as usize, entry.with_sent(r.sent != 0.0)))
        })
        .collect()
}

/// The write-ahead marks of the rows about to be sent: one statement, no row rewritten.
fn mark_sent(sql: &SqlStorage, rows: &[usize]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS * 3) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let values: Vec<SqlStorageValue> = chunk.iter().map(|&i| (i as i64).into()).collect();
        sql.exec(&format!("UPDATE rows SET sent = 1 WHERE idx IN ({marks})"), values)?;
    }
    Ok(())
}

/// Loads the rows the run asks for.
fn feed(sql: &SqlStorage, run: &mut BulkRun) -> Result<()> {
    if let Some(want) = run.rows_wanted() {
        let rows = rows_from(
            sql,
            "SELECT idx, sent, row FROM rows WHERE pending = 1 AND idx >= ? ORDER BY idx LIMIT ?",
            want.from,
            want.limit,
        )?;
        run.load(rows, RowRequest { ..want });
    }
    Ok(())
}

/// Writes rows back, up to [`INSERT_ROWS`] per statement.
fn store(sql: &SqlStorage, rows: Vec<(usize, Entry)>) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for (i, e) in chunk {
            values.push(SqlStorageValue::from(*i as i64));
            values.push(SqlStorageValue::from(i64::from(e.is_pending())));
            values.push(serde_json::to_string(e)?.into());
        }
        let marks = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        // The mark stays in the row's JSON when it is set there (an answer said nothing certain).
        sql.exec(
            &format!(
                "INSERT INTO rows (idx, pending, row) VALUES {marks} ON CONFLICT(idx) DO UPDATE SET \
                 pending = excluded.pending, row = excluded.row, sent = 0"
            ),
            values,
        )?;
    }
    Ok(())
}

/// Keeps audit drafts until the trail has them.
fn keep_drafts(sql: &SqlStorage, drafts: &[AuditDraft]) -> Result<()> {
    for chunk in drafts.chunks(INSERT_ROWS * 3) {
        let marks = vec!["(?)"; chunk.len()].join(", ");
        let values = chunk
            .iter()
            .map(|d| serde_json::to_string(d).map(SqlStorageValue::from))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        sql.exec(&format!("INSERT INTO drafts (doc) VALUES {marks}"), values)?;
    }
    Ok(())
}

/// The tables (a new object, or one whose finished run was deleted).
const SCHEMA: &[Schema] = &[
    Schema::Create("CREATE TABLE IF NOT EXISTS meta (k INTEGER PRIMARY KEY, doc TEXT NOT NULL)"),
    Schema::Create(
        "CREATE TABLE IF NOT EXISTS rows (idx INTEGER PRIMARY KEY, pending INTEGER NOT NULL, \
         sent INTEGER NOT NULL DEFAULT 0, row TEXT NOT NULL)",
    ),
    Schema::AddColumn {
        table: "rows",
        column: "sent",
        definition: "INTEGER NOT NULL DEFAULT 0",
    },
    Schema::Create("CREATE INDEX IF NOT EXISTS rows_pending ON rows (pending, idx)"),
    Schema::Create("CREATE TABLE IF NOT EXISTS drafts (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL)"),
];

fn tables(sql: &SqlStorage) {
    migrate(sql, SCHEMA);
}

/// The Worker's side: the Durable Object of one run.
pub struct Runner {
    stub: Stub,
}

impl Runner {
    pub fn of(env: &Env, run_id: &str) -> Result<Self> {
        let namespace = env.durable_object(BULK_BINDING)?;
        Ok(Self {
            stub: namespace.id_from_name(run_id)?.get_stub()?,
        })
    }

    /// Starts (or resumes) the run with the request body as received.
    pub async fn start(&self, run_id: &str, body: &[u8]) -> Result<Response> {
        let mut init = RequestInit::new();
        let headers = worker::Headers::new();
        headers.set("x-run-id", run_id)?;
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(js_sys::Uint8Array::from(body).into()));
        self.stub
            .fetch_with_request(Request::new_with_init("https://bulk/start", &init)?)
            .await
    }

    /// `query` holds only `cursor` and `limit`, encoded by the caller.
    pub async fn status(&self, query: Option<&str>) -> Result<Response> {
        let url = match query {
            Some(q) => format!("https://bulk/status?{q}"),
            None => "https://bulk/status".to_string(),
        };
        self.stub.fetch_with_str(&url).await
    }
}
