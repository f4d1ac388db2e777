//! The bulk-run state machine.
//!
//! 1. Read `/ServiceProviderConfig` for the server's Bulk limits (defaults if it cannot say).
//! 2. Pre-check (optional, on by default): look the users up by `userName eq` in OR-ed chunks,
//!    paged. Users already in CXone are not created: they are PATCHed when they differ
//!    (`updated`) or left alone (`exists`). The pre-check also records who did *not* exist
//!    before the run, so a 409 for one of them later (a batch sent before a restart whose answer
//!    was lost) is known to be this run's own creation and reported `created`.
//! 3. Send `POST /Bulk` batches (creates and PATCHes), at most `batch_size` operations and the
//!    payload limit each; correlate results by bulkId; retry only retryable or unanswered
//!    operations, with full-jitter backoff honouring Retry-After, within an attempt budget.
//! 4. 409s are looked up and resolved like pre-checked users.
//!
//! Repeats inside the input (same userName) are sent once and reported `exists`, pointing at
//! the first occurrence. Invalid users and policy violations fail alone, never the batch.

use super::input::BulkUser;
use super::report::{BulkReport, Counts, Outcome, Progress, UserReport};
use super::response::{correlate, BulkResponseError, OpResult, SentOp};
use crate::flows::exchange::Exchange;
use crate::flows::{FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::policy::RolePolicy;
use crate::retry::{is_retryable_status, retry_after_ms, Jitter, Pacer, RetryPolicy};
use crate::scim::build::{create_payload, patch_to, DesiredUser};
use crate::scim::bulk::{BulkOperation, BulkRequest, BULK_REQUEST_SCHEMA};
use crate::scim::{filter, ListResponse, PatchOp, ServiceProviderConfig, User};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

pub const DEFAULT_BATCH_SIZE: usize = crate::settings::defaults::BULK_BATCH_SIZE;
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// Room left in a payload for the envelope around the operations.
const ENVELOPE_BYTES: usize = 256;
const MAX_ERRORS_KEPT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkConfig {
    /// CXone's SCIM root, `/scim/v2` included.
    pub base_url: String,
    /// Operations per Bulk request; lowered to the server's `maxOperations` when it says.
    pub batch_size: usize,
    /// Bytes per Bulk request; lowered to the server's `maxPayloadSize` when it says.
    pub max_payload_bytes: usize,
    /// Sent as `failOnErrors` when set; absent lets the server process every operation.
    pub fail_on_errors: Option<u32>,
    /// Look users up first (skips existing ones; makes restarts exact).
    pub precheck: bool,
    pub retry: RetryPolicy,
}

impl BulkConfig {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            batch_size: DEFAULT_BATCH_SIZE,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD,
            fail_on_errors: None,
            precheck: crate::settings::defaults::BULK_PRECHECK,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "stage")]
enum Stage {
    /// To be looked up by userName (pre-check, or after a 409).
    Lookup,
    Create,
    Patch {
        id: String,
        patch: PatchOp,
    },
    Done {
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    desired: Option<DesiredUser>,
    stage: Stage,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    not_before: UnixMillis,
    /// From the pre-check: whether CXone had this user before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    existed_before: Option<bool>,
    /// A create of this user answered 409.
    #[serde(default)]
    conflicted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scim_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duplicate_of: Option<usize>,
}

impl Entry {
    fn fail(&mut self, status: u16, scim_type: Option<String>, detail: impl Into<String>) {
        self.stage = Stage::Done {
            outcome: Outcome::Failed,
        };
        self.status = Some(status);
        self.scim_type = scim_type;
        self.detail = Some(detail.into());
    }

    fn finish(&mut self, outcome: Outcome, id: Option<String>) {
        self.stage = Stage::Done { outcome };
        if id.is_some() {
            self.id = id;
        }
    }

    /// This run created the user, even if CXone now answers 409 for it.
    fn ours(&self) -> bool {
        self.conflicted && self.existed_before == Some(false)
    }

    fn outcome(&self) -> Option<Outcome> {
        match self.stage {
            Stage::Done { outcome } => Some(outcome),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
enum InFlight {
    Discover,
    Lookup {
        indexes: Vec<usize>,
        start_index: u64,
        found: Vec<usize>,
    },
    Bulk {
        indexes: Vec<usize>,
    },
}

/// What a dry run answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub dry_run: bool,
    pub requests: Vec<PlannedRequest>,
    pub rejected: Vec<UserReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRequest {
    pub method: Method,
    pub url: String,
    pub body: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRun {
    config: BulkConfig,
    entries: Vec<Entry>,
    discovered: bool,
    in_flight: Option<InFlight>,
    exchange: Exchange,
    jitter: Jitter,
    bulk_requests: u32,
    lookups: u32,
    errors: Vec<String>,
    #[serde(default)]
    pacer: Pacer,
}

impl BulkRun {
    /// Plans a run: validates every user, applies the role policy, folds repeats.
    pub fn new(users: &[BulkUser], policy: &RolePolicy, config: BulkConfig, seed: u64) -> Self {
        let mut first_by_name: HashMap<String, usize> = HashMap::new();
        let entries = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let mut e = Entry {
                    user_name: u.user_name.trim().to_string(),
                    external_id: u.external_id.clone(),
                    desired: None,
                    stage: if config.precheck { Stage::Lookup } else { Stage::Create },
                    attempts: 0,
                    not_before: 0,
                    existed_before: None,
                    conflicted: false,
                    id: None,
                    status: None,
                    scim_type: None,
                    detail: None,
                    duplicate_of: None,
                };
                let event = u.as_event();
                if let Err(err) = event.validate() {
                    e.fail(400, Some("invalidValue".into()), err.to_string());
                    return e;
                }
                match event.command(policy) {
                    Ok((crate::event::Command::Upsert { desired, .. }, _)) => e.desired = Some(desired),
                    Ok(_) => e.fail(400, Some("invalidValue".into()), "not a provisioning request"),
                    Err(v) => {
                        e.fail(400, Some("invalidValue".into()), v.to_string());
                        return e;
                    }
                }
                match first_by_name.get(&e.user_name.to_lowercase()) {
                    Some(&first) => {
                        e.duplicate_of = Some(first);
                        e.stage = Stage::Done {
                            outcome: Outcome::Exists,
                        };
                    }
                    None => {
                        first_by_name.insert(e.user_name.to_lowercase(), i);
                    }
                }
                e
            })
            .collect();
        let exchange = Exchange::new(config.retry, seed);
        Self {
            config,
            entries,
            discovered: false,
            in_flight: None,
            exchange,
            jitter: Jitter::new(seed ^ 0xb01c),
            bulk_requests: 0,
            lookups: 0,
            errors: Vec::new(),
            pacer: Pacer::default(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.entries.iter().all(|e| e.outcome().is_some())
    }

    fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for e in &self.entries {
            c.add(e.outcome());
        }
        c
    }

    pub fn progress(&self) -> Progress {
        let counts = self.counts();
        Progress {
            total: self.entries.len(),
            done: self.entries.len() - counts.pending,
            counts,
            bulk_requests: self.bulk_requests,
            lookups: self.lookups,
            finished: self.is_finished(),
        }
    }

    pub fn report(&self) -> BulkReport {
        let users = self
            .entries
            .iter()
            .enumerate()
            .map(|(index, e)| {
                // A repeat shares the first occurrence's CXone id.
                let id = e
                    .duplicate_of
                    .and_then(|f| self.entries.get(f))
                    .map_or(e.id.clone(), |f| f.id.clone());
                UserReport {
                    index,
                    user_name: e.user_name.clone(),
                    external_id: e.external_id.clone(),
                    outcome: e.outcome().unwrap_or(Outcome::Pending),
                    id,
                    status: e.status,
                    scim_type: e.scim_type.clone(),
                    detail: e
                        .detail
                        .clone()
                        .or_else(|| e.outcome().is_none().then(|| "still pending".to_string())),
                    duplicate_of: e.duplicate_of,
                }
            })
            .collect();
        BulkReport {
            progress: self.progress(),
            users,
            errors: self.errors.clone(),
        }
    }

    /// The dry run: the Bulk requests this input needs if CXone holds none of the users, and the
    /// users refused before anything is sent.
    pub fn dry_run(&self) -> DryRun {
        let requests = self
            .planned_requests()
            .into_iter()
            .map(|r| PlannedRequest {
                body: r
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null),
                method: r.method,
                url: r.url,
            })
            .collect();
        let rejected = self
            .report()
            .users
            .into_iter()
            .filter(|u| u.outcome == Outcome::Failed)
            .collect();
        DryRun {
            dry_run: true,
            requests,
            rejected,
        }
    }

    /// The Bulk requests this input would need if CXone held none of the users.
    pub fn planned_requests(&self) -> Vec<HttpRequest> {
        let mut plan = self.clone();
        for e in &mut plan.entries {
            if e.stage == Stage::Lookup {
                e.stage = Stage::Create;
            }
        }
        let mut out = Vec::new();
        while let Some((req, indexes)) = plan.build_bulk(0) {
            for i in indexes {
                plan.entries[i].stage = Stage::Done {
                    outcome: Outcome::Created,
                };
            }
            out.push(req);
        }
        out
    }

    // ---- building requests -------------------------------------------------------------

    fn bulk_id(index: usize) -> String {
        format!("u-{index}")
    }

    /// The method and path of the operation a stage sends, if any.
    fn target(stage: &Stage) -> Option<(Method, String)> {
        match stage {
            Stage::Create => Some((Method::Post, "/Users".to_string())),
            Stage::Patch { id, .. } => Some((Method::Patch, format!("/Users/{}", crate::http::encode_component(id)))),
            _ => None,
        }
    }

    fn operation(&self, index: usize) -> Option<BulkOperation> {
        let e = &self.entries[index];
        let (method, path) = Self::target(&e.stage)?;
        let data = match &e.stage {
            Stage::Create => serde_json::to_string(&create_payload(e.desired.as_ref()?)),
            Stage::Patch { patch, .. } => serde_json::to_string(patch),
            _ => return None,
        };
        let data = serde_json::value::RawValue::from_string(data.ok()?).ok()?;
        Some(BulkOperation {
            method,
            path,
            bulk_id: Some(Self::bulk_id(index)),
            version: None,
            data: Some(data),
        })
    }

    /// The next batch of ready operations within the count and payload limits.
    fn build_bulk(&mut self, now: UnixMillis) -> Option<(HttpRequest, Vec<usize>)> {
        let budget = self.config.max_payload_bytes.saturating_sub(ENVELOPE_BYTES);
        let mut ops = Vec::new();
        let mut indexes = Vec::new();
        let mut bytes = 0;
        for i in 0..self.entries.len() {
            if ops.len() >= self.config.batch_size.max(1) {
                break;
            }
            let e = &self.entries[i];
            if !matches!(e.stage, Stage::Create | Stage::Patch { .. }) || e.not_before > now {
                continue;
            }
            let Some(op) = self.operation(i) else { continue };
            // The payload dominates; the rest of the operation is a short, bounded envelope.
            let size = op.data.as_ref().map_or(0, |d| d.get().len()) + op.path.len() + 64;
            if size > budget {
                self.entries[i].fail(
                    413,
                    Some("tooLarge".into()),
                    format!("operation of {size} bytes exceeds the Bulk payload limit"),
                );
                continue;
            }
            if bytes + size > budget {
                break;
            }
            bytes += size;
            ops.push(op);
            indexes.push(i);
        }
        if ops.is_empty() {
            return None;
        }
        let body = BulkRequest {
            schemas: vec![BULK_REQUEST_SCHEMA.into()],
            fail_on_errors: self.config.fail_on_errors,
            operations: ops,
        };
        Some((
            HttpRequest::scim_json(Method::Post, format!("{}/Bulk", self.config.base_url), &body),
            indexes,
        ))
    }

    fn lookup_request(&self, indexes: &[usize], start_index: u64) -> HttpRequest {
        let clauses: Vec<String> = indexes
            .iter()
            .map(|&i| filter::eq("userName", &self.entries[i].user_name))
            .collect();
        let url = format!(
            "{}&startIndex={start_index}&count={}",
            filter::users_filter_url(&self.config.base_url, &clauses.join(" or ")),
            indexes.len()
        );
        HttpRequest::scim(Method::Get, url)
    }

    fn start(&mut self, in_flight: InFlight, req: HttpRequest, now: UnixMillis) -> Step<Result<BulkReport, FlowError>> {
        self.exchange.start(req);
        self.in_flight = Some(in_flight);
        self.send_step(now).unwrap_or(Step::Wait { until: now + 1 })
    }

    /// The in-flight request's next step; a send is noted by the pacer.
    fn send_step(&mut self, now: UnixMillis) -> Option<Step<Result<BulkReport, FlowError>>> {
        let step = self.exchange.step(now)?;
        if matches!(step, Step::Send(_)) {
            self.pacer.started(now);
        }
        Some(step)
    }

    // ---- handling answers --------------------------------------------------------------

    /// One more try for each operation, or a final failure when its budget is spent. The
    /// operations of one answer share one backoff, so they travel together again.
    fn retry_entries(&mut self, retries: &[(usize, Option<u16>)], why: &str, now: UnixMillis) {
        let worst = retries
            .iter()
            .map(|&(i, _)| self.entries[i].attempts + 1)
            .max()
            .unwrap_or(1);
        let at = now + self.config.retry.full_jitter(worst, &mut self.jitter);
        for &(i, status) in retries {
            let attempts = self.entries[i].attempts + 1;
            self.entries[i].attempts = attempts;
            if attempts >= self.config.retry.max_attempts {
                let detail = format!("gave up after {attempts} attempts: {why}");
                self.entries[i].fail(status.unwrap_or(503), None, detail);
            } else {
                self.entries[i].not_before = at;
            }
        }
    }

    fn note_error(&mut self, e: impl ToString) {
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(e.to_string());
        }
    }

    fn on_discovered(&mut self, resp: &HttpResponse) {
        self.discovered = true;
        if resp.status != 200 {
            return;
        }
        let Ok(doc) = ServiceProviderConfig::parse(&resp.body) else {
            return;
        };
        if doc.bulk_supported() == Some(false) {
            for e in self.entries.iter_mut().filter(|e| e.outcome().is_none()) {
                e.fail(501, None, "CXone's ServiceProviderConfig says Bulk is not supported");
            }
            return;
        }
        let limits = doc.bulk_limits();
        if let Some(max) = limits.max_operations {
            self.config.batch_size = self.config.batch_size.min(max);
        }
        if let Some(max) = limits.max_payload_bytes {
            self.config.max_payload_bytes = self.config.max_payload_bytes.min(max);
        }
    }

    /// A lookup found (or did not find) the user at `i`.
    fn on_found(&mut self, i: usize, found: Option<User>) {
        let e = &mut self.entries[i];
        let Some(user) = found else {
            if e.conflicted {
                e.fail(
                    409,
                    Some("uniqueness".into()),
                    "CXone reports a conflict but no user has this userName",
                );
            } else {
                e.existed_before = Some(false);
                e.stage = Stage::Create;
            }
            return;
        };
        if user.external_id.is_some() && user.external_id != e.external_id {
            e.id = user.id.clone();
            e.finish(Outcome::Conflict, None);
            e.detail = Some(format!(
                "CXone account {} has userName {:?} for another externalId; nothing written",
                user.id.as_deref().unwrap_or("?"),
                user.user_name
            ));
            return;
        }
        if !e.conflicted {
            e.existed_before = Some(true);
        }
        let (Some(id), Some(desired)) = (user.id.clone(), e.desired.as_ref()) else {
            e.fail(502, None, "CXone listed the user without an id");
            return;
        };
        e.id = Some(id.clone());
        match patch_to(&user, desired) {
            Some(patch) => e.stage = Stage::Patch { id, patch },
            None => {
                let outcome = if e.ours() { Outcome::Created } else { Outcome::Exists };
                e.finish(outcome, None);
            }
        }
    }

    fn on_lookup(
        &mut self,
        resp: &HttpResponse,
        indexes: Vec<usize>,
        start_index: u64,
        mut found: Vec<usize>,
        now: UnixMillis,
    ) {
        if resp.status != 200 {
            let err = self.exchange.rejected(resp);
            for i in indexes {
                self.entries[i].fail(resp.status, None, format!("lookup failed: {err}"));
            }
            return;
        }
        let list: ListResponse<User> = match serde_json::from_str(&resp.body) {
            Ok(l) => l,
            Err(e) => {
                self.note_error(FlowError::unreadable(
                    self.exchange.describe(),
                    resp.status,
                    e,
                    &resp.body,
                ));
                let retries: Vec<_> = indexes.into_iter().map(|i| (i, Some(resp.status))).collect();
                self.retry_entries(&retries, "unreadable lookup answer", now);
                return;
            }
        };
        let page_len = list.resources.len() as u64;
        for user in list.resources {
            let hit = indexes
                .iter()
                .copied()
                .find(|&i| self.entries[i].user_name.eq_ignore_ascii_case(&user.user_name));
            if let Some(i) = hit.filter(|i| !found.contains(i)) {
                found.push(i);
                self.on_found(i, Some(user));
            }
        }
        let seen = start_index - 1 + page_len;
        if page_len > 0 && seen < list.total_results && found.len() < indexes.len() {
            let req = self.lookup_request(&indexes, seen + 1);
            self.lookups += 1;
            self.exchange.start(req);
            self.in_flight = Some(InFlight::Lookup {
                indexes,
                start_index: seen + 1,
                found,
            });
            return;
        }
        for i in indexes {
            if !found.contains(&i) {
                self.on_found(i, None);
            }
        }
    }

    fn on_bulk(&mut self, resp: &HttpResponse, indexes: Vec<usize>, now: UnixMillis) {
        // The stages of a batch in flight are the ones it was built from.
        let sent: Vec<SentOp> = indexes
            .iter()
            .map(|&i| {
                let (method, path) = Self::target(&self.entries[i].stage).unwrap_or((Method::Post, String::new()));
                SentOp {
                    bulk_id: Self::bulk_id(i),
                    method,
                    path,
                }
            })
            .collect();
        match correlate(resp, &sent) {
            Ok(results) => {
                let mut retries = Vec::new();
                for (i, result) in indexes.into_iter().zip(results) {
                    let creating = self.entries[i].stage == Stage::Create;
                    match result {
                        OpResult::Applied { id, .. } => {
                            let e = &mut self.entries[i];
                            let outcome = if creating || e.ours() {
                                Outcome::Created
                            } else {
                                Outcome::Updated
                            };
                            e.finish(outcome, id);
                        }
                        OpResult::Conflict if creating => {
                            self.entries[i].conflicted = true;
                            self.entries[i].stage = Stage::Lookup;
                        }
                        OpResult::Conflict => {
                            self.entries[i].fail(409, Some("uniqueness".into()), "CXone refused the update with 409")
                        }
                        OpResult::Retryable { status } => retries.push((i, Some(status))),
                        OpResult::Missing | OpResult::Unknown => retries.push((i, None)),
                        OpResult::Permanent {
                            status,
                            scim_type,
                            detail,
                        } => {
                            self.entries[i].fail(status, scim_type, detail.unwrap_or_else(|| format!("HTTP {status}")))
                        }
                    }
                }
                self.retry_entries(&retries, "retryable or unanswered operation", now);
            }
            Err(BulkResponseError::Status { status: 413, .. }) if self.config.batch_size > 1 => {
                self.config.batch_size /= 2;
                self.note_error(format!(
                    "Bulk answered 413; batch size lowered to {}",
                    self.config.batch_size
                ));
            }
            Err(BulkResponseError::Status { status, body }) => {
                let scim = crate::scim::ScimError::from_body(&body);
                for i in indexes {
                    let detail = resp
                        .redirect_detail()
                        .or_else(|| scim.as_ref().and_then(|s| s.detail.clone()))
                        .unwrap_or_else(|| format!("Bulk answered {status}"));
                    self.entries[i].fail(status, scim.as_ref().and_then(|s| s.scim_type.clone()), detail);
                }
            }
            Err(e @ BulkResponseError::Malformed { .. }) => {
                let why = e.to_string();
                self.note_error(format!(
                    "{why}: {}",
                    match &e {
                        BulkResponseError::Malformed { body, .. } => body.as_str(),
                        BulkResponseError::Status { .. } => "",
                    }
                ));
                let retries: Vec<_> = indexes.into_iter().map(|i| (i, Some(resp.status))).collect();
                self.retry_entries(&retries, &why, now);
            }
        }
    }

    fn give_up_in_flight(&mut self, err: &FlowError) {
        match self.in_flight.take() {
            Some(InFlight::Lookup { indexes, .. }) | Some(InFlight::Bulk { indexes }) => {
                for i in indexes {
                    let status = err.upstream_status().unwrap_or(502);
                    self.entries[i].fail(status, None, err.to_string());
                }
            }
            Some(InFlight::Discover) => self.discovered = true,
            None => {}
        }
        self.exchange.finish();
    }
}

impl crate::flows::Flow for BulkRun {
    type Output = Result<BulkReport, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if self.in_flight.is_some() {
            if let Some(step) = self.send_step(now) {
                return step;
            }
        }
        if self.discovered && self.is_finished() {
            return Step::Done(Ok(self.report()));
        }
        // Keep to the spacing the server's 429s taught us.
        let start_at = self.pacer.next_start(now);
        if start_at > now {
            return Step::Wait { until: start_at };
        }
        if !self.discovered {
            let url = format!("{}/ServiceProviderConfig", self.config.base_url);
            return self.start(InFlight::Discover, HttpRequest::scim(Method::Get, url), now);
        }
        let lookup: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].stage == Stage::Lookup && self.entries[i].not_before <= now)
            .take(self.config.batch_size.max(1))
            .collect();
        if !lookup.is_empty() {
            self.lookups += 1;
            let req = self.lookup_request(&lookup, 1);
            return self.start(
                InFlight::Lookup {
                    indexes: lookup,
                    start_index: 1,
                    found: Vec::new(),
                },
                req,
                now,
            );
        }
        if let Some((req, indexes)) = self.build_bulk(now) {
            self.bulk_requests += 1;
            return self.start(InFlight::Bulk { indexes }, req, now);
        }
        match self
            .entries
            .iter()
            .filter(|e| e.outcome().is_none())
            .map(|e| e.not_before)
            .min()
        {
            Some(until) => Step::Wait {
                until: until.max(now + 1),
            },
            None => Step::Done(Ok(self.report())),
        }
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        if self.in_flight.is_none() {
            return;
        }
        let retryable = is_retryable_status(resp.status);
        let retry_after = retry_after_ms(&resp, now);
        match resp.status {
            429 => self.pacer.throttled(),
            s if s < 500 => self.pacer.passed(),
            _ => {}
        }
        match self.exchange.filter(resp, now) {
            Ok(None) => {
                // The whole request will be resent: hold every other batch back too when the
                // server asked for a pause.
                if retryable && retry_after.is_some() {
                    let until = now + retry_after.unwrap_or(0);
                    for e in self.entries.iter_mut().filter(|e| e.outcome().is_none()) {
                        e.not_before = e.not_before.max(until);
                    }
                }
            }
            Ok(Some(resp)) => {
                let in_flight = self.in_flight.take();
                self.exchange.finish();
                match in_flight {
                    Some(InFlight::Discover) => self.on_discovered(&resp),
                    Some(InFlight::Lookup {
                        indexes,
                        start_index,
                        found,
                    }) => self.on_lookup(&resp, indexes, start_index, found, now),
                    Some(InFlight::Bulk { indexes }) => self.on_bulk(&resp, indexes, now),
                    None => {}
                }
            }
            Err(e) => self.give_up_in_flight(&e),
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if self.in_flight.is_none() {
            return;
        }
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.give_up_in_flight(&e);
        }
    }
}

#[cfg(test)]
mod tests;
