//! A bulk run whose rows live in memory: the CLI's host, the tests', and the dry run's. The
//! Worker keeps rows in a Durable Object instead and feeds [`BulkRun`] the same way.

use super::batch;
use super::entry::{Entry, Stage};
use super::input::BulkUser;
use super::intake::Intake;
use super::report::{BulkReport, Progress, RowOutcome};
use super::run::{BulkConfig, BulkRun, RowRequest};
use crate::flows::{Flow, FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::policy::RolePolicy;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryRun {
    run: BulkRun,
    rows: Vec<Entry>,
}

impl InMemoryRun {
    /// Plans a run: validates every user, applies the role policy, folds repeats.
    pub fn new(users: &[BulkUser], policy: &RolePolicy, config: BulkConfig, seed: u64) -> Self {
        let mut intake = Intake::new(policy, &config.role_target, config.precheck);
        let rows: Vec<Entry> = users.iter().map(|u| intake.take(u)).collect();
        let counts = intake.counts();
        let run = BulkRun::new(config, rows.len(), counts, seed);
        Self { run, rows }
    }

    pub fn progress(&self) -> Progress {
        self.run.progress()
    }

    pub fn is_finished(&self) -> bool {
        self.run.is_finished()
    }

    pub fn report(&self) -> BulkReport {
        let users = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, e)| {
                // A repeat shares the first occurrence's CXone id.
                let first_id = e
                    .duplicate_of()
                    .and_then(|f| self.rows.get(f))
                    .and_then(|f| f.id().map(str::to_string));
                e.report(i, first_id)
            })
            .collect();
        BulkReport {
            progress: self.run.progress(),
            users,
            errors: self.run.errors().to_vec(),
        }
    }

    /// The request the last step asked for will not be sent (see [`BulkRun::unsend`]).
    pub fn unsend(&mut self) {
        self.run.unsend();
        self.store();
    }

    fn feed(&mut self) {
        if let Some(want) = self.run.rows_wanted() {
            let rows = pending_rows(&self.rows, want);
            self.run.load(rows, want);
        }
    }

    fn store(&mut self) {
        for (i, e) in self.run.take_writes() {
            if let Some(slot) = self.rows.get_mut(i) {
                *slot = e;
            }
        }
    }

    /// The dry run: the Bulk requests this input needs if CXone holds none of the users, and
    /// the users refused before anything is sent.
    pub fn dry_run(&self) -> DryRun {
        let requests = self
            .planned_requests()
            .into_iter()
            .map(|r| PlannedRequest {
                body: r
                    .body
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null),
                method: r.method,
                url: r.url,
            })
            .collect();
        let rejected = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, e)| e.outcome() == Some(RowOutcome::Failed))
            .map(|(i, e)| e.report(i, None))
            .collect();
        DryRun {
            dry_run: true,
            requests,
            rejected,
        }
    }

    /// The Bulk requests this input needs if CXone holds none of the users: one pass over the
    /// rows, a batch's worth in memory at a time.
    pub fn planned_requests(&self) -> Vec<HttpRequest> {
        let config = self.run.config();
        let limits = config.limits();
        let mut requests = Vec::new();
        let mut window: BTreeMap<usize, Entry> = BTreeMap::new();
        let flush = |window: &mut BTreeMap<usize, Entry>, requests: &mut Vec<HttpRequest>, all: bool| loop {
            if !all && window.len() < limits.operations {
                return;
            }
            let mut too_large = Vec::new();
            let Some(b) = batch::next(window, &config.base_url, limits, 0, &mut too_large, |_| true) else {
                return;
            };
            for i in b.indexes.iter().chain(&too_large) {
                window.remove(i);
            }
            requests.push(b.request);
        };
        for (i, e) in self.rows.iter().enumerate() {
            if !e.is_pending() {
                continue;
            }
            let mut e = e.clone();
            if e.stage == Stage::Lookup {
                e.stage = Stage::Create;
            }
            window.insert(i, e);
            flush(&mut window, &mut requests, false);
        }
        flush(&mut window, &mut requests, true);
        requests
    }
}

/// Pending rows from `want.from` on, in index order, at most `want.limit`.
fn pending_rows(rows: &[Entry], want: RowRequest) -> Vec<(usize, Entry)> {
    rows.iter()
        .enumerate()
        .skip(want.from)
        .filter(|(_, e)| e.is_pending())
        .take(want.limit)
        .map(|(i, e)| (i, e.clone()))
        .collect()
}

impl Flow for InMemoryRun {
    type Output = Result<BulkReport, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        self.feed();
        let step = self.run.next_step(now);
        self.store();
        match step {
            Step::Send(req) => Step::Send(req),
            Step::SendAll(reqs) => Step::SendAll(reqs),
            Step::Wait { until } => Step::Wait { until },
            Step::Done(Ok(_)) => Step::Done(Ok(self.report())),
            Step::Done(Err(e)) => Step::Done(Err(e)),
        }
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        self.run.on_response(resp, now);
        self.store();
    }

    fn on_answers(&mut self, answers: Vec<crate::flows::Answer>, now: UnixMillis) {
        self.run.on_answers(answers, now);
        self.store();
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        self.run.on_transport_error(err, now);
        self.store();
    }
}

/// What a dry run answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub dry_run: bool,
    pub requests: Vec<PlannedRequest>,
    pub rejected: Vec<super::report::UserReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRequest {
    pub method: Method,
    pub url: String,
    pub body: Value,
}
