//! The bulk-run state machine. It holds what is small (limits, counts, pacing) and works on a
//! bounded window of unfinished rows; the host stores every row and feeds the window:
//!
//! ```text
//! loop {
//!     if let Some(want) = run.rows_wanted() { run.load(rows pending at index >= want.from, want.limit) }
//!     match run.next_step(now) {
//!         Send(req) => { store(run.take_writes()); answer = send(req); run.on_response(answer, now); store(run.take_writes()) }
//!         Wait { until } => sleep until (or continue in a later invocation),
//!         Done(progress) => break,
//!     }
//! }
//! ```
//! Rows are written before their operation is sent (write-ahead): a row loaded again with that
//! mark was sent by an invocation that never read the answer, and the user is read before
//! anything is re-sent. Every step costs work in proportion to the window, so a run costs
//! O(n) overall.
//!
//! 1. Read `/ServiceProviderConfig` for the server's Bulk limits (defaults if it cannot say),
//!    where the server offers Bulk ([`Capabilities::bulk`]).
//! 2. Pre-check (optional): look users up before sending anything; found users are PATCHed when
//!    they differ (`updated`) or left alone (`exists`).
//! 3. `POST /Bulk` batches of creates and PATCHes, a bulkId on every operation; results matched
//!    by bulkId, else by location, by position only when unambiguous; only what can still
//!    succeed is retried, with full-jitter backoff honouring Retry-After and the server's
//!    rate-limit headers. A server without Bulk (CXone; or one whose configuration says so, or
//!    that answers `/Bulk` with 404, 405 or 501) gets one `POST /Users` or `PATCH /Users/{id}`
//!    per user instead, with the same marks, pacing and outcomes.
//! 4. A 409, or an operation whose result cannot be attributed, is resolved by reading the user.

use super::batch::{self, Limits};
use super::entry::{Entry, Stage};
use super::lookup;
use super::report::{Counts, Progress, RowOutcome};
use super::response::{correlate, single_result, BulkResponseError, OpResult, SentOp};
use crate::flows::exchange::Exchange;
use crate::flows::{Answer, Flow, FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::policy::RoleTarget;
use crate::profile::Capabilities;
use crate::retry::{is_retryable_status, quota_from_headers, retry_after_ms, Jitter, Pacer, RetryPolicy};
use crate::scim::{ListResponse, ServiceProviderConfig, User};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_BATCH_SIZE: usize = crate::settings::defaults::BULK_BATCH_SIZE;
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// A Bulk request does the work of many: it may take this long before it counts as lost.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Single-user requests in flight at once where the server has no Bulk (a Worker may hold six
/// connections open).
pub const DEFAULT_LANES: usize = 6;
const MAX_ERRORS_KEPT: usize = 20;
/// Rows held in memory at most, in batches (the window is refilled below half of it).
const WINDOW_BATCHES: usize = 4;

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
    /// Look every user up before sending (one more request per batch). Without it, 409s and
    /// the write-ahead marks tell this run's creations from accounts that were there.
    pub precheck: bool,
    pub retry: RetryPolicy,
    /// Where each user's roles are written (`ROLE_TARGET`).
    #[serde(default)]
    pub role_target: RoleTarget,
    /// Hold each row's person in their ledger while a request that writes to them is in flight
    /// (the Worker keeps one ledger per person; see [`BulkRun::holds_wanted`]).
    #[serde(default)]
    pub hold_rows: bool,
    /// How long one Bulk request may take before it counts as lost.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// What the server offers (`CXONE_PROFILE`); `bulk` turns off for the rest of the run when
    /// the server turns out not to have it. A run stored before profiles existed was a Bulk run.
    #[serde(default = "stored_before_profiles")]
    pub caps: Capabilities,
    /// Single-user requests sent at once where the server has no Bulk.
    #[serde(default = "default_lanes")]
    pub lanes: usize,
}

fn default_request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
}

fn default_lanes() -> usize {
    DEFAULT_LANES
}

fn stored_before_profiles() -> Capabilities {
    crate::profile::Profile::Rfc7644.capabilities()
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
            role_target: RoleTarget::default(),
            hold_rows: false,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            caps: Capabilities::default(),
            lanes: DEFAULT_LANES,
        }
    }

    pub(super) fn limits(&self) -> Limits {
        Limits {
            operations: self.batch_size.max(1),
            payload_bytes: self.max_payload_bytes,
            fail_on_errors: self.fail_on_errors,
            caps: self.caps,
        }
    }
}

/// Rows the run asks the host for: pending rows with index ≥ `from`, in index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRequest {
    pub from: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum InFlight {
    Discover,
    Lookup {
        indexes: Vec<usize>,
        start_index: u64,
        found: Vec<(usize, User)>,
    },
    Bulk {
        indexes: Vec<usize>,
        sent: Vec<SentOp>,
    },
    /// Single-user requests sent at once (a server without Bulk); `writes` are the rows of the
    /// writes among them.
    Group {
        members: Vec<Member>,
        writes: Vec<usize>,
    },
}

/// One request of a [`InFlight::Group`]: a row's lookup (`write: None`; `by_id`: a read of the
/// account its person's ledger knows) or its write.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Member {
    index: usize,
    write: Option<SentOp>,
    by_id: bool,
    request: HttpRequest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRun {
    pub(super) config: BulkConfig,
    total: usize,
    counts: Counts,
    pub(super) discovered: bool,
    pub(super) exchange: Exchange,
    jitter: Jitter,
    bulk_requests: u32,
    #[serde(default)]
    user_writes: u32,
    lookups: u32,
    errors: Vec<String>,
    #[serde(default)]
    pub(super) pacer: Pacer,
    /// When the first request was sent (Unix ms).
    #[serde(default)]
    pub(super) started_at: UnixMillis,
    // What follows lives in memory only: after a restart the window is loaded again from the
    // rows, and whatever was in flight is resolved through the write-ahead marks.
    #[serde(skip)]
    pub(super) window: BTreeMap<usize, Entry>,
    #[serde(skip)]
    pub(super) dirty: BTreeSet<usize>,
    #[serde(skip)]
    pub(super) settled: Vec<(usize, Entry)>,
    #[serde(skip)]
    pub(super) in_flight: Option<InFlight>,
    #[serde(skip)]
    next_row: usize,
    #[serde(skip)]
    rows_exhausted: bool,
    /// Rows whose hold on their person's ledger is to be given back ([`Self::take_releases`]).
    #[serde(skip)]
    pub(super) releasing: BTreeSet<usize>,
    /// Requests the host can send at once right now (its budget), if fewer than configured.
    #[serde(skip)]
    lanes_allowed: Option<usize>,
}

impl BulkRun {
    /// A run over `total` rows whose counts so far are `counts` (from [`super::Intake`]).
    pub fn new(config: BulkConfig, total: usize, counts: Counts, seed: u64) -> Self {
        let exchange = Exchange::new(config.retry, seed);
        Self {
            config,
            total,
            counts,
            discovered: false,
            exchange,
            jitter: Jitter::new(seed ^ 0xb01c),
            bulk_requests: 0,
            user_writes: 0,
            lookups: 0,
            errors: Vec::new(),
            pacer: Pacer::default(),
            started_at: 0,
            window: BTreeMap::new(),
            dirty: BTreeSet::new(),
            settled: Vec::new(),
            in_flight: None,
            next_row: 0,
            rows_exhausted: false,
            releasing: BTreeSet::new(),
            lanes_allowed: None,
        }
    }

    /// The host can send at most `n` requests at once for now (what its budget still allows).
    pub fn allow_lanes(&mut self, n: usize) {
        self.lanes_allowed = Some(n);
    }

    pub(super) fn lanes(&self) -> usize {
        let configured = self.config.lanes.max(1);
        self.lanes_allowed.map_or(configured, |n| n.clamp(1, configured))
    }

    pub fn config(&self) -> &BulkConfig {
        &self.config
    }

    pub fn is_finished(&self) -> bool {
        self.counts.pending == 0
    }

    pub fn progress(&self) -> Progress {
        Progress {
            total: self.total,
            done: self.total - self.counts.pending,
            counts: self.counts,
            bulk_requests: self.bulk_requests,
            user_writes: self.user_writes,
            lookups: self.lookups,
            finished: self.is_finished(),
        }
    }

    /// Unreadable answers met on the way (each kept, truncated, for diagnosis).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    // ---- the window ------------------------------------------------------------------

    fn window_cap(&self) -> usize {
        self.config.batch_size.max(1) * WINDOW_BATCHES
    }

    /// The rows to load before the next step, if the window runs low.
    pub fn rows_wanted(&self) -> Option<RowRequest> {
        let cap = self.window_cap();
        if self.rows_exhausted || self.is_finished() || self.window.len() > cap / 2 {
            return None;
        }
        Some(RowRequest {
            from: self.next_row,
            limit: cap - self.window.len(),
        })
    }

    /// Takes the rows asked for by [`Self::rows_wanted`] (fewer than asked: there are no more).
    /// Finished rows among them are ignored.
    pub fn load(&mut self, rows: Vec<(usize, Entry)>, asked: RowRequest) {
        if rows.len() < asked.limit {
            self.rows_exhausted = true;
        }
        for (i, mut e) in rows {
            self.next_row = self.next_row.max(i + 1);
            if !e.is_pending() || self.window.contains_key(&i) {
                continue;
            }
            if e.sent {
                e.resume();
                self.dirty.insert(i);
            }
            if let Some(desired) = e.desired.as_mut() {
                self.config.caps.fit(desired);
            }
            // A hold stored with the row may have been given back since: renewed before use.
            if let Some(hold) = e.hold.as_mut() {
                hold.until = 0;
            }
            self.window.insert(i, e);
        }
        if self.rows_exhausted && self.window.is_empty() && self.counts.pending > 0 {
            // Rows the host lost track of cannot be finished; say so instead of waiting.
            self.note_error(format!("{} rows pending but none left to load", self.counts.pending));
        }
    }

    /// Rows changed since the last call, to be stored: before a request is sent (the
    /// write-ahead marks) and after each answer.
    pub fn take_writes(&mut self) -> Vec<(usize, Entry)> {
        let mut out = std::mem::take(&mut self.settled);
        for i in std::mem::take(&mut self.dirty) {
            if let Some(e) = self.window.get(&i) {
                out.push((i, e.clone()));
            }
        }
        out
    }

    /// The request the last step asked for was not sent (the host's budget ran out first): its
    /// rows lose their write-ahead marks and go back to waiting, so a later invocation sends
    /// them without reading them first.
    pub fn unsend(&mut self) {
        let tried = self.exchange.attempts() > 0;
        match self.in_flight.take() {
            // An earlier try of this request went out: what it did is not known.
            Some(InFlight::Bulk { indexes, .. }) if tried => {
                for i in indexes {
                    if let Some(e) = self.window.get_mut(&i) {
                        e.sent = true;
                        e.outcome_unknown();
                    }
                    self.dirty.insert(i);
                }
            }
            Some(InFlight::Bulk { indexes, .. }) => {
                self.bulk_requests = self.bulk_requests.saturating_sub(1);
                for i in indexes {
                    if let Some(e) = self.window.get_mut(&i) {
                        e.sent = false;
                    }
                    self.dirty.insert(i);
                }
            }
            Some(InFlight::Lookup { .. }) => self.lookups = self.lookups.saturating_sub(1),
            Some(InFlight::Group { members, .. }) => {
                for m in members {
                    match m.write {
                        Some(_) => {
                            self.user_writes = self.user_writes.saturating_sub(1);
                            if let Some(e) = self.window.get_mut(&m.index) {
                                e.sent = false;
                            }
                            self.dirty.insert(m.index);
                        }
                        None => self.lookups = self.lookups.saturating_sub(1),
                    }
                }
            }
            Some(InFlight::Discover) | None => {}
        }
        self.exchange.finish();
    }

    /// The rows of the Bulk request in flight, if one is: a host that stores the write-ahead
    /// mark apart from the row (one flag per row) may skip their rows in [`Self::take_writes`]
    /// before sending, and marks them instead.
    pub fn sending(&self) -> &[usize] {
        match &self.in_flight {
            Some(InFlight::Bulk { indexes, .. }) => indexes,
            Some(InFlight::Group { writes, .. }) => writes,
            _ => &[],
        }
    }

    pub(super) fn touch(&mut self, i: usize) {
        self.dirty.insert(i);
    }

    /// Moves rows that just finished out of the window, counting their outcomes.
    pub(super) fn settle(&mut self) {
        let done: Vec<usize> = self
            .dirty
            .iter()
            .copied()
            .filter(|i| self.window.get(i).is_some_and(|e| !e.is_pending()))
            .collect();
        for i in done {
            self.dirty.remove(&i);
            if let Some(e) = self.window.remove(&i) {
                self.counts.pending = self.counts.pending.saturating_sub(1);
                self.counts.add(e.outcome());
                if e.hold.is_some() {
                    self.releasing.insert(i);
                }
                self.settled.push((i, e));
            }
        }
    }

    fn pending_in_window(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.window.iter().map(|(&i, e)| (i, e))
    }

    // ---- answers -----------------------------------------------------------------------

    /// One more try for each row, or a final failure when its budget is spent. The rows of
    /// one answer share one backoff, so they travel together again.
    fn retry_rows(&mut self, retries: &[(usize, Option<u16>)], why: &str, now: UnixMillis) {
        let worst = retries
            .iter()
            .filter_map(|&(i, _)| self.window.get(&i).map(|e| e.attempts + 1))
            .max()
            .unwrap_or(1);
        let at = now + self.config.retry.full_jitter(worst, &mut self.jitter);
        let max_attempts = self.config.retry.max_attempts;
        for &(i, status) in retries {
            let Some(e) = self.window.get_mut(&i) else { continue };
            e.attempts += 1;
            if e.attempts >= max_attempts {
                let detail = format!("gave up after {} attempts: {why}", e.attempts);
                e.fail(status.unwrap_or(503), None, detail);
            } else {
                e.not_before = e.not_before.max(at);
            }
            self.dirty.insert(i);
        }
    }

    fn note_error(&mut self, e: impl ToString) {
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(e.to_string());
        }
    }

    pub(super) fn on_discovered(&mut self, resp: &HttpResponse) {
        self.discovered = true;
        if resp.status != 200 {
            return;
        }
        let Ok(spc) = ServiceProviderConfig::parse(&resp.body) else {
            return;
        };
        if spc.bulk_supported() == Some(false) {
            // No batch can be sent: one request per user instead.
            self.config.caps.bulk = false;
            return;
        }
        let limits = spc.bulk_limits();
        if let Some(max) = limits.max_operations {
            self.config.batch_size = self.config.batch_size.min(max);
        }
        if let Some(max) = limits.max_payload_bytes {
            self.config.max_payload_bytes = self.config.max_payload_bytes.min(max);
        }
    }

    fn on_lookup(
        &mut self,
        resp: &HttpResponse,
        indexes: Vec<usize>,
        start_index: u64,
        mut found: Vec<(usize, User)>,
        now: UnixMillis,
        may_page: bool,
    ) {
        if resp.status != 200 {
            let err = self.exchange.rejected(resp);
            for &i in &indexes {
                if let Some(e) = self.window.get_mut(&i) {
                    e.fail(resp.status, None, format!("lookup failed: {err}"));
                }
                self.touch(i);
            }
            return;
        }
        let list: ListResponse<User> = match serde_json::from_str(&resp.body) {
            Ok(l) => l,
            Err(e) => {
                let err = FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body);
                self.note_error(err);
                let retries: Vec<_> = indexes.into_iter().map(|i| (i, Some(resp.status))).collect();
                self.retry_rows(&retries, "unreadable lookup answer", now);
                return;
            }
        };
        let page_len = list.resources.len() as u64;
        let known: std::collections::HashSet<Option<String>> = found.iter().map(|(_, u)| u.id.clone()).collect();
        let mut new_accounts = false;
        let mut ignored_filter = false;
        for user in list.resources {
            new_accounts |= !known.contains(&user.id);
            let mut answered = false;
            for &i in &indexes {
                if self.window.get(&i).is_some_and(|e| lookup::answers(e, &user)) {
                    found.push((i, user.clone()));
                    answered = true;
                }
            }
            ignored_filter |= !answered;
        }
        if ignored_filter {
            // The server answered with accounts its filter does not match: nothing it says
            // about these users can be trusted to be theirs.
            for &i in &indexes {
                if let Some(e) = self.window.get_mut(&i) {
                    e.finish(RowOutcome::Conflict, None);
                    e.detail = Some(
                        "CXone answered the lookup with accounts its filter does not match; nothing written".into(),
                    );
                }
                self.touch(i);
            }
            return;
        }
        let seen = start_index - 1 + page_len;
        // A server that ignores startIndex would repeat its page for ever.
        if may_page && page_len > 0 && seen < list.total_results && new_accounts {
            let req = lookup::request(
                &self.config.base_url,
                &self.config.caps,
                indexes.iter().filter_map(|i| self.window.get(i)),
                seen + 1,
            );
            self.lookups += 1;
            self.exchange.start(req);
            self.in_flight = Some(InFlight::Lookup {
                indexes,
                start_index: seen + 1,
                found,
            });
            return;
        }
        // The pages ended (empty, or repeating) before the accounts the server counted: one
        // not seen could be a row's own, or another person's under its userName.
        let accounts_seen = found
            .iter()
            .map(|(_, u)| u.id.clone())
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;
        let incomplete = accounts_seen < list.total_results;
        let judging = self.judging();
        for i in indexes {
            let accounts: Vec<User> = found.iter().filter(|(j, _)| *j == i).map(|(_, u)| u.clone()).collect();
            if let Some(e) = self.window.get_mut(&i) {
                if incomplete {
                    e.finish(RowOutcome::Conflict, None);
                    e.detail = Some(format!(
                        "CXone counted {} accounts for the lookup but its pages listed {accounts_seen}; nothing written",
                        list.total_results
                    ));
                } else {
                    lookup::resolve(e, &accounts, &judging);
                }
            }
            self.touch(i);
        }
    }

    fn on_bulk(&mut self, resp: &HttpResponse, indexes: Vec<usize>, sent: &[SentOp], retried: bool, now: UnixMillis) {
        for &i in &indexes {
            if let Some(e) = self.window.get_mut(&i) {
                e.sent = false;
            }
            self.touch(i);
        }
        match correlate(resp, sent) {
            Ok(results) => {
                let mut retries = Vec::new();
                for (i, result) in indexes.into_iter().zip(results) {
                    self.apply_result(i, result, &mut retries);
                }
                self.retry_rows(&retries, "retryable operation", now);
            }
            // No Bulk here after all, and nothing of this request was done: one request per
            // user from now on, starting with these rows.
            Err(BulkResponseError::Status {
                status: status @ (404 | 405 | 501),
                ..
            }) => {
                self.config.caps.bulk = false;
                self.note_error(format!("Bulk answered {status}; users are sent one request each"));
                // Nothing of this try was done, but an earlier one may have been: read first.
                if retried {
                    for &i in &indexes {
                        if let Some(e) = self.window.get_mut(&i) {
                            e.sent = true;
                            e.outcome_unknown();
                        }
                    }
                }
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
                let detail = resp
                    .redirect_detail()
                    .or_else(|| scim.as_ref().and_then(|s| s.detail.clone()))
                    .unwrap_or_else(|| format!("Bulk answered {status}"));
                let scim_type = scim.and_then(|s| s.scim_type);
                for i in indexes {
                    if let Some(e) = self.window.get_mut(&i) {
                        e.fail(status, scim_type.clone(), detail.clone());
                    }
                }
            }
            Err(e @ BulkResponseError::Malformed { .. }) => {
                let why = e.to_string();
                if let BulkResponseError::Malformed { body, .. } = &e {
                    self.note_error(format!("{why}: {body}"));
                }
                // The server may have applied any of it: read before re-sending.
                for i in indexes {
                    if let Some(e) = self.window.get_mut(&i) {
                        e.sent = true;
                        e.outcome_unknown();
                    }
                }
            }
        }
    }

    // ---- one request per user (no Bulk) --------------------------------------------------

    /// Up to `lanes` single-user requests at once, lookups first, then writes of rows held as
    /// the run requires; under a pace the server asked for, one at a time.
    fn next_group(&mut self, now: UnixMillis) -> Step<Result<Progress, FlowError>> {
        let lanes = if self.pacer.spaced() { 1 } else { self.lanes() };
        let ready: Vec<usize> = self
            .pending_in_window()
            .filter(|(_, e)| e.stage == Stage::Lookup && e.not_before <= now)
            .map(|(i, _)| i)
            .take(lanes)
            .collect();
        let mut members = Vec::new();
        for i in ready {
            let Some(e) = self.window.get_mut(&i) else { continue };
            // The account the ledger knows is read by its id (one that cannot address an
            // account is forgotten: the person is searched for instead).
            e.known_id = e.known_id.take().filter(|id| crate::scim::is_usable_id(id));
            let (request, by_id) = match &e.known_id {
                Some(id) => (
                    HttpRequest::scim(Method::Get, crate::scim::filter::user_url(&self.config.base_url, id)),
                    true,
                ),
                None => (
                    lookup::request(&self.config.base_url, &self.config.caps, std::iter::once(&*e), 1),
                    false,
                ),
            };
            members.push(Member {
                index: i,
                write: None,
                by_id,
                request,
            });
            self.lookups += 1;
        }
        let mut failed = Vec::new();
        while members.len() < lanes {
            let batch = self.next_batch(now, &mut failed);
            let Some(batch) = batch else { break };
            let (Some(&i), Some(op)) = (batch.indexes.first(), batch.sent.first()) else {
                break;
            };
            if let Some(e) = self.window.get_mut(&i) {
                e.sent = true;
            }
            self.touch(i);
            self.user_writes += 1;
            members.push(Member {
                index: i,
                write: Some(op.clone()),
                by_id: false,
                request: batch.request,
            });
        }
        for i in failed {
            self.touch(i);
        }
        self.settle();
        if members.is_empty() {
            return self.idle(now);
        }
        for _ in &members {
            self.pacer.started(now);
        }
        let requests = members.iter().map(|m| m.request.clone()).collect();
        let writes = members.iter().filter(|m| m.write.is_some()).map(|m| m.index).collect();
        self.in_flight = Some(InFlight::Group { members, writes });
        Step::SendAll(requests)
    }

    /// Nothing to send now: done, or wait for the first row that may go.
    fn idle(&self, now: UnixMillis) -> Step<Result<Progress, FlowError>> {
        if self.is_finished() {
            return Step::Done(Ok(self.progress()));
        }
        match self.window.values().map(|e| e.not_before).min() {
            Some(until) => Step::Wait {
                until: until.max(now + 1),
            },
            // The window is empty and the host has rows to load: ask again right away.
            None => Step::Wait { until: now + 1 },
        }
    }

    /// One answer of a group: what it means for its row.
    fn on_member(&mut self, m: Member, answer: Answer, now: UnixMillis) {
        let i = m.index;
        self.touch(i);
        let resp = match answer {
            Ok(resp) => resp,
            // Nothing came back: a lookup is asked again, a write is read before anything else.
            Err(_) if m.write.is_some() => return self.lost_write(i, now),
            Err(err) => return self.retry_rows(&[(i, None)], &err.to_string(), now),
        };
        self.pace_by(&resp, now);
        if let Some(wait) = retry_after_ms(&resp, now).filter(|_| is_retryable_status(resp.status)) {
            if let Some(e) = self.window.get_mut(&i) {
                e.not_before = e.not_before.max(now + wait);
            }
        }
        let status = resp.status;
        match (&m.write, status) {
            // Refused before any work (the token, the rate): the same request again later.
            (_, 401 | 429) => {
                if let Some(e) = self.window.get_mut(&i) {
                    e.sent = false;
                }
                self.retry_rows(&[(i, Some(status))], &format!("answered {status}"), now);
            }
            // A server error may come after the work: a write is read before it is sent again.
            (Some(_), s) if is_retryable_status(s) => self.lost_write(i, now),
            (None, s) if is_retryable_status(s) => self.retry_rows(&[(i, Some(s))], &format!("answered {s}"), now),
            (None, _) if m.by_id => self.on_read_by_id(i, &resp, now),
            (None, 200) => self.on_lookup(&resp, vec![i], 1, Vec::new(), now, false),
            (None, s) => {
                let scim = crate::scim::ScimError::from_body(&resp.body);
                if let Some(e) = self.window.get_mut(&i) {
                    e.fail(
                        s,
                        scim.as_ref().and_then(|x| x.scim_type.clone()),
                        format!(
                            "lookup {} answered {s}{}",
                            m.request.url,
                            scim.and_then(|x| x.detail)
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ),
                    );
                }
            }
            (Some(op), _) => {
                if let Some(e) = self.window.get_mut(&i) {
                    e.sent = false;
                }
                let mut retries = Vec::new();
                self.apply_result(i, single_result(&resp, op), &mut retries);
                self.retry_rows(&retries, "retryable answer", now);
            }
        }
    }

    fn judging(&self) -> lookup::Judging {
        lookup::Judging {
            run_started: self.started_at,
            max_attempts: self.config.retry.max_attempts.max(1),
            can_delete: self.config.caps.delete,
        }
    }

    /// The answer to the one request in flight, for the caller to handle; `None` when there is
    /// nothing in flight, or several requests are (answered one by one although asked for at
    /// once: this one is handed to [`Flow::on_answers`], the rest count as unanswered).
    fn single_answer(
        &mut self,
        answer: Result<HttpResponse, TransportError>,
        now: UnixMillis,
    ) -> Option<Result<HttpResponse, TransportError>> {
        self.in_flight.as_ref()?;
        if self.group_in_flight() {
            self.on_answers(vec![answer], now);
            return None;
        }
        Some(answer)
    }

    /// The next batch of rows ready to send: only rows whose people are held, when rows are held
    /// ([`BulkConfig::hold_rows`]). Rows no request can carry go to `refused`.
    fn next_batch(&mut self, now: UnixMillis, refused: &mut Vec<usize>) -> Option<batch::Batch> {
        let span = self.hold_span();
        let hold_rows = self.config.hold_rows;
        batch::next(
            &mut self.window,
            &self.config.base_url,
            self.config.limits(),
            now,
            refused,
            |e| !hold_rows || super::hold::held_for(e, now, span),
        )
    }

    /// Paces the run by an answer: a 429 slows it, an answer under 500 lets it speed up again,
    /// and the server's own account of its quota keeps it at that rate without 429s.
    fn pace_by(&mut self, resp: &HttpResponse, now: UnixMillis) {
        match resp.status {
            429 => self.pacer.throttled(),
            s if s < 500 => self.pacer.passed(),
            _ => {}
        }
        if let Some(quota) = quota_from_headers(resp, now) {
            self.pacer.observe(quota, now);
        }
    }

    fn group_in_flight(&self) -> bool {
        matches!(self.in_flight, Some(InFlight::Group { .. }))
    }

    /// A write whose outcome is not known (no answer, a server error): one more try spent, and
    /// the row is read before anything is sent for it again, even when the tries are spent
    /// (`lookup::resolve` then ends it with what it reads).
    fn lost_write(&mut self, i: usize, now: UnixMillis) {
        if let Some(e) = self.window.get_mut(&i) {
            e.attempts += 1;
            let pause = self.config.retry.full_jitter(e.attempts, &mut self.jitter);
            e.not_before = e.not_before.max(now.saturating_add(pause));
        }
        self.read_first(i);
    }

    /// The answer to a read of the account the row's person's ledger knows.
    fn on_read_by_id(&mut self, i: usize, resp: &HttpResponse, now: UnixMillis) {
        let judging = self.judging();
        let Some(e) = self.window.get_mut(&i) else { return };
        let person = crate::event::Lookup {
            user_name: Some(e.user_name.clone()),
            external_id: e.external_id.clone(),
            cxone_id: e.known_id.take(),
        };
        let request = format!("GET /Users/{}", person.cxone_id.as_deref().unwrap_or_default());
        match crate::flows::lookup::read_by_id(&person, resp, request) {
            Ok(crate::flows::lookup::Found::One(user)) => lookup::resolve(e, &[*user], &judging),
            // Not there: searched for by userName next.
            Ok(crate::flows::lookup::Found::None) => e.known_gone = true,
            Ok(crate::flows::lookup::Found::Conflict(c)) => {
                e.finish(RowOutcome::Conflict, None);
                e.detail = Some(format!(
                    "the CXone account {} this person's ledger knows is not theirs now ({:?}); nothing written",
                    person.cxone_id.as_deref().unwrap_or_default(),
                    c.reason
                ));
            }
            Err(err) => {
                e.known_id = person.cxone_id;
                let why = err.to_string();
                self.note_error(&why);
                self.retry_rows(&[(i, Some(resp.status))], &why, now);
            }
        }
    }

    /// What a write did is not known: the row is read before anything is sent for it again.
    fn read_first(&mut self, i: usize) {
        if let Some(e) = self.window.get_mut(&i) {
            if e.is_pending() {
                e.sent = true;
                e.outcome_unknown();
            }
        }
    }

    /// What one operation's result means for its row; rows worth another try go to `retries`.
    fn apply_result(&mut self, i: usize, result: OpResult, retries: &mut Vec<(usize, Option<u16>)>) {
        let Some(e) = self.window.get_mut(&i) else { return };
        let creating = e.stage == Stage::Create;
        match result {
            OpResult::Applied { id, .. } => {
                let outcome = if creating || e.ours() {
                    RowOutcome::Created
                } else {
                    RowOutcome::Updated
                };
                e.finish(outcome, id);
            }
            OpResult::Conflict if creating => {
                e.conflicted = true;
                e.stage = Stage::Lookup;
            }
            OpResult::Conflict => e.fail(409, Some("uniqueness".into()), "CXone refused the update with 409"),
            OpResult::Retryable { status } => retries.push((i, Some(status))),
            OpResult::Missing | OpResult::Unknown => {
                // Never re-sent blind: the user is read first.
                e.sent = true;
                e.outcome_unknown();
            }
            OpResult::Permanent {
                status,
                scim_type,
                detail,
            } => e.fail(status, scim_type, detail.unwrap_or_else(|| format!("HTTP {status}"))),
        }
    }

    fn give_up_in_flight(&mut self, err: &FlowError) {
        let tried = self.exchange.attempts() > 0;
        match self.in_flight.take() {
            // Every try may have been applied (timeouts, 5xx after the work): read the users
            // before deciding; only a request every try of which was refused unprocessed fails.
            Some(InFlight::Bulk { indexes, .. })
                if tried
                    && !matches!(
                        err,
                        FlowError::RetriesExhausted {
                            last_status: Some(429),
                            ..
                        }
                    ) =>
            {
                for i in indexes {
                    if let Some(e) = self.window.get_mut(&i) {
                        e.sent = true;
                        e.outcome_unknown();
                    }
                    self.touch(i);
                }
            }
            Some(InFlight::Lookup { indexes, .. }) | Some(InFlight::Bulk { indexes, .. }) => {
                let status = err.upstream_status().unwrap_or(502);
                for i in indexes {
                    if let Some(e) = self.window.get_mut(&i) {
                        e.sent = false;
                        e.fail(status, None, err.to_string());
                    }
                    self.touch(i);
                }
            }
            Some(InFlight::Discover) => self.discovered = true,
            // Sent without the exchange: nothing of it gives up here.
            Some(group @ InFlight::Group { .. }) => self.in_flight = Some(group),
            None => {}
        }
        self.exchange.finish();
    }

    /// The whole request will be tried again: what its last try did is not known.
    fn on_resend(&mut self, status: Option<u16>) {
        if status == Some(429) {
            return; // refused before any work was done
        }
        if let Some(InFlight::Bulk { indexes, .. }) = &self.in_flight {
            for &i in indexes {
                if let Some(e) = self.window.get_mut(&i) {
                    match e.stage {
                        Stage::Create => e.maybe_created = true,
                        Stage::Patch { .. } => e.maybe_updated = true,
                        _ => {}
                    }
                }
            }
        }
    }

    // ---- stepping ----------------------------------------------------------------------

    fn start(&mut self, in_flight: InFlight, req: HttpRequest, now: UnixMillis) -> Step<Result<Progress, FlowError>> {
        self.exchange.start(req);
        self.in_flight = Some(in_flight);
        self.send_step(now).unwrap_or(Step::Wait { until: now + 1 })
    }

    /// The in-flight request's next step; a send is noted by the pacer.
    fn send_step(&mut self, now: UnixMillis) -> Option<Step<Result<Progress, FlowError>>> {
        let step = self.exchange.step(now)?;
        if matches!(step, Step::Send(_)) {
            self.pacer.started(now);
        }
        Some(step)
    }
}

impl Flow for BulkRun {
    type Output = Result<Progress, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if self.started_at == 0 {
            self.started_at = now;
        }
        // A group is sent as a whole, until its answers come back.
        if let Some(InFlight::Group { members, .. }) = &self.in_flight {
            return Step::SendAll(members.iter().map(|m| m.request.clone()).collect());
        }
        if self.in_flight.is_some() {
            if !self.holds_outlive_the_request(now) {
                self.abandon_in_flight();
            } else if let Some(step) = self.send_step(now) {
                return step;
            }
        } else {
            // Nothing of a request before a restart is kept.
            self.exchange.finish();
        }
        if self.is_finished() || (self.rows_exhausted && self.window.is_empty()) {
            return Step::Done(Ok(self.progress()));
        }
        // Keep to the spacing the server's 429s and rate-limit headers ask for.
        let start_at = self.pacer.next_start(now);
        if start_at > now {
            return Step::Wait { until: start_at };
        }
        // Only a server with Bulk says what its limits are.
        if !self.discovered && self.config.caps.bulk {
            let url = format!("{}/ServiceProviderConfig", self.config.base_url);
            return self.start(InFlight::Discover, HttpRequest::scim(Method::Get, url), now);
        }
        self.discovered = true;
        if !self.config.caps.bulk {
            return self.next_group(now);
        }
        let lookup: Vec<usize> = self
            .pending_in_window()
            .filter(|(_, e)| e.stage == Stage::Lookup && e.not_before <= now)
            .map(|(i, _)| i)
            .take(lookup::users_per_lookup(&self.config.caps))
            .collect();
        if !lookup.is_empty() {
            self.lookups += 1;
            let req = lookup::request(
                &self.config.base_url,
                &self.config.caps,
                lookup.iter().filter_map(|i| self.window.get(i)),
                1,
            );
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
        let mut too_large = Vec::new();
        let batch = self.next_batch(now, &mut too_large);
        for i in too_large {
            self.touch(i);
        }
        self.settle();
        if let Some(batch) = batch {
            self.bulk_requests += 1;
            for &i in &batch.indexes {
                if let Some(e) = self.window.get_mut(&i) {
                    e.sent = true;
                }
                self.touch(i);
            }
            let in_flight = InFlight::Bulk {
                indexes: batch.indexes,
                sent: batch.sent,
            };
            return self.start(in_flight, batch.request, now);
        }
        self.idle(now)
    }

    fn on_answers(&mut self, answers: Vec<Answer>, now: UnixMillis) {
        let Some(InFlight::Group { members, .. }) = self.in_flight.take() else {
            return crate::flows::one_by_one(self, answers, now);
        };
        let mut answers = answers.into_iter();
        for m in members {
            let answer = answers
                .next()
                .unwrap_or_else(|| Err(TransportError("no answer was handed back".into())));
            self.on_member(m, answer, now);
        }
        self.settle();
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        let Some(Ok(resp)) = self.single_answer(Ok(resp), now) else {
            return;
        };
        let retryable = is_retryable_status(resp.status);
        let retry_after = retry_after_ms(&resp, now);
        self.pace_by(&resp, now);
        let status = resp.status;
        match self.exchange.filter(resp, now) {
            Ok(None) => {
                self.on_resend(Some(status));
                // The whole request will be resent: hold every other batch back too when the
                // server asked for a pause.
                if retryable && retry_after.is_some() {
                    let until = now + retry_after.unwrap_or(0);
                    for e in self.window.values_mut() {
                        e.not_before = e.not_before.max(until);
                    }
                }
            }
            Ok(Some(resp)) => {
                let in_flight = self.in_flight.take();
                // An earlier try of this request went out, and may have done its work.
                let retried = self.exchange.attempts() > 1;
                self.exchange.finish();
                match in_flight {
                    Some(InFlight::Discover) => self.on_discovered(&resp),
                    Some(InFlight::Lookup {
                        indexes,
                        start_index,
                        found,
                    }) => self.on_lookup(&resp, indexes, start_index, found, now, true),
                    Some(InFlight::Bulk { indexes, sent }) => self.on_bulk(&resp, indexes, &sent, retried, now),
                    Some(InFlight::Group { .. }) | None => {}
                }
            }
            Err(e) => self.give_up_in_flight(&e),
        }
        self.settle();
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        let Some(Err(err)) = self.single_answer(Err(err), now) else {
            return;
        };
        match self.exchange.on_transport(err, now) {
            Ok(()) => self.on_resend(None),
            Err(e) => self.give_up_in_flight(&e),
        }
        self.settle();
    }
}
