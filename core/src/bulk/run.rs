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
//! 1. Read `/ServiceProviderConfig` for the server's Bulk limits (defaults if it cannot say).
//! 2. Pre-check (optional): look users up before sending anything; found users are PATCHed when
//!    they differ (`updated`) or left alone (`exists`).
//! 3. `POST /Bulk` batches of creates and PATCHes, a bulkId on every operation; results matched
//!    by bulkId, else by location, by position only when unambiguous; only what can still
//!    succeed is retried, with full-jitter backoff honouring Retry-After and the server's
//!    rate-limit headers.
//! 4. A 409, or an operation whose result cannot be attributed, is resolved by reading the user.

use super::batch::{self, Limits};
use super::entry::{Entry, Stage};
use super::lookup;
use super::report::{Counts, Outcome, Progress};
use super::response::{correlate, BulkResponseError, OpResult, SentOp};
use crate::flows::exchange::Exchange;
use crate::flows::{FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::policy::RoleTarget;
use crate::retry::{is_retryable_status, quota_from_headers, retry_after_ms, Jitter, Pacer, RetryPolicy};
use crate::scim::{ListResponse, ServiceProviderConfig, User};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_BATCH_SIZE: usize = crate::settings::defaults::BULK_BATCH_SIZE;
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// A Bulk request does the work of many: it may take this long before it counts as lost.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 60_000;
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
}

fn default_request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
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
        }
    }

    pub(super) fn limits(&self) -> Limits {
        Limits {
            operations: self.batch_size.max(1),
            payload_bytes: self.max_payload_bytes,
            fail_on_errors: self.fail_on_errors,
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
        }
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
                e.not_before = at;
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
            // No batch can be sent: every row fails as it is loaded.
            self.config.batch_size = 0;
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

    fn bulk_unsupported(&self) -> bool {
        self.discovered && self.config.batch_size == 0
    }

    fn on_lookup(
        &mut self,
        resp: &HttpResponse,
        indexes: Vec<usize>,
        start_index: u64,
        mut found: Vec<(usize, User)>,
        now: UnixMillis,
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
                    e.finish(Outcome::Conflict, None);
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
        if page_len > 0 && seen < list.total_results && new_accounts {
            let req = lookup::request(
                &self.config.base_url,
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
        for i in indexes {
            let accounts: Vec<User> = found.iter().filter(|(j, _)| *j == i).map(|(_, u)| u.clone()).collect();
            if let Some(e) = self.window.get_mut(&i) {
                if incomplete {
                    e.finish(Outcome::Conflict, None);
                    e.detail = Some(format!(
                        "CXone counted {} accounts for the lookup but its pages listed {accounts_seen}; nothing written",
                        list.total_results
                    ));
                } else {
                    lookup::resolve(e, &accounts, self.started_at);
                }
            }
            self.touch(i);
        }
    }

    fn on_bulk(&mut self, resp: &HttpResponse, indexes: Vec<usize>, sent: &[SentOp], now: UnixMillis) {
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
                    let Some(e) = self.window.get_mut(&i) else { continue };
                    let creating = e.stage == Stage::Create;
                    match result {
                        OpResult::Applied { id, .. } => {
                            let outcome = if creating || e.ours() {
                                Outcome::Created
                            } else {
                                Outcome::Updated
                            };
                            e.finish(outcome, id);
                        }
                        OpResult::Conflict if creating => {
                            e.conflicted = true;
                            e.stage = Stage::Lookup;
                        }
                        OpResult::Conflict => {
                            e.fail(409, Some("uniqueness".into()), "CXone refused the update with 409")
                        }
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
                self.retry_rows(&retries, "retryable operation", now);
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

    fn fail_unsendable(&mut self) {
        let all: Vec<usize> = self.window.keys().copied().collect();
        for i in all {
            if let Some(e) = self.window.get_mut(&i) {
                e.fail(501, None, "CXone's ServiceProviderConfig says Bulk is not supported");
            }
            self.touch(i);
        }
        self.settle();
    }
}

impl crate::flows::Flow for BulkRun {
    type Output = Result<Progress, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if self.started_at == 0 {
            self.started_at = now;
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
        if self.bulk_unsupported() && !self.window.is_empty() {
            self.fail_unsendable();
        }
        if self.is_finished() || (self.rows_exhausted && self.window.is_empty()) {
            return Step::Done(Ok(self.progress()));
        }
        // Keep to the spacing the server's 429s and rate-limit headers ask for.
        let start_at = self.pacer.next_start(now);
        if start_at > now {
            return Step::Wait { until: start_at };
        }
        if !self.discovered {
            let url = format!("{}/ServiceProviderConfig", self.config.base_url);
            return self.start(InFlight::Discover, HttpRequest::scim(Method::Get, url), now);
        }
        let lookup: Vec<usize> = self
            .pending_in_window()
            .filter(|(_, e)| e.stage == Stage::Lookup && e.not_before <= now)
            .map(|(i, _)| i)
            .take(lookup::USERS_PER_LOOKUP)
            .collect();
        if !lookup.is_empty() {
            self.lookups += 1;
            let req = lookup::request(
                &self.config.base_url,
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
        let span = self.hold_span();
        let hold_rows = self.config.hold_rows;
        let batch = batch::next(
            &mut self.window,
            &self.config.base_url,
            self.config.limits(),
            now,
            &mut too_large,
            |e| !hold_rows || super::hold::held_for(e, now, span),
        );
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
        // The server's own account of its quota keeps the run at its rate without 429s.
        if let Some(quota) = quota_from_headers(&resp, now) {
            self.pacer.observe(quota, now);
        }
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
                self.exchange.finish();
                match in_flight {
                    Some(InFlight::Discover) => self.on_discovered(&resp),
                    Some(InFlight::Lookup {
                        indexes,
                        start_index,
                        found,
                    }) => self.on_lookup(&resp, indexes, start_index, found, now),
                    Some(InFlight::Bulk { indexes, sent }) => self.on_bulk(&resp, indexes, &sent, now),
                    None => {}
                }
            }
            Err(e) => self.give_up_in_flight(&e),
        }
        self.settle();
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if self.in_flight.is_none() {
            return;
        }
        match self.exchange.on_transport(err, now) {
            Ok(()) => self.on_resend(None),
            Err(e) => self.give_up_in_flight(&e),
        }
        self.settle();
    }
}
