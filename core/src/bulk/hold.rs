//! A bulk run's rows go through their people's ledgers, as every other write to a person does:
//! a row is sent only while its person is held for it, so a webhook for the same person waits,
//! an event applied since the run began makes the row stale, and what the row wrote moves the
//! person's marks (a person re-created by a run is no longer taken for deleted).
//!
//! The host's part, when [`BulkConfig::hold_rows`](super::BulkConfig) is set:
//! 1. before each step, ask the ledgers [`BulkRun::holds_wanted`] names and hand their decisions
//!    to [`BulkRun::on_holds`];
//! 2. after each answer, and with [`BulkRun::release_held`] when it stops for now, commit what
//!    [`BulkRun::take_releases`] returns to the ledgers it names, before storing the rows.
//!
//! A hold lasts as long as the Bulk request's every try may take ([`BulkRun::hold_span`]) and
//! is kept while its row is pending (a row read after a 409 or a lost answer is still held when
//! it is written again); no try starts unless every hold in it outlives that try. A row's lease
//! token is its delivery id, so asking again after a lost answer renews its own lease.

use super::entry::{Entry, Stage};
use super::report::RowOutcome;
use super::run::{BulkRun, InFlight};
use crate::digest::sha256_hex;
use crate::event::Operation;
use crate::flows::Action;
use crate::ledger::{person_key, Commit, Decision, Ending, EventFacts, StoredAnswer, LEASE_MARGIN_MS};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A row's hold on its person's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The ledger that granted it (the person's, after any forward).
    pub ledger: String,
    pub event_id: String,
    pub token: String,
    pub until: UnixMillis,
    pub event_time: UnixMillis,
    /// What the row amounts to for the ledger, as asked.
    pub operation: Operation,
    pub keeps_status: bool,
}

/// A ledger to ask for a row's person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldAsk {
    pub index: usize,
    pub external_id: Option<String>,
    pub user_name: String,
    /// The ledger key the row's person is kept under.
    pub key: String,
    pub facts: EventFacts,
    pub lease_ms: u64,
    pub lease_token: String,
}

/// A ledger's answer for a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldAnswer {
    pub index: usize,
    /// The ledger that answered.
    pub ledger: String,
    pub decision: Decision,
}

/// A hold to give back: commit `commit` to the ledger `ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub index: usize,
    pub ledger: String,
    pub commit: Commit,
}

/// The ledger operation a held row amounts to: an upsert that creates the person when missing
/// (a joiner, which also brings back a person deleted before the run). Leavers are never held
/// here: they take the leaver's steps ([`crate::deprovision`]) in the run's batch of leavers.
fn operation(_: &Entry) -> Operation {
    Operation::Create
}

/// What a hold is asked for beyond [`BulkRun::hold_span`]: the time between asking the ledgers
/// and sending, so that a hold just granted is still long enough to send under.
pub const HOLD_SLACK_MS: u64 = 10_000;
/// A row whose person is busy asks again this soon at the latest (the holder usually commits
/// long before its lease would run out).
pub const BUSY_RECHECK_MS: u64 = 1_000;

fn wants_hold(e: &Entry, now: UnixMillis, span: u64) -> bool {
    matches!(e.stage, Stage::Create | Stage::Patch { .. }) && e.not_before <= now && !held_for(e, now, span)
}

/// Whether the row's person is held at least `span` beyond `now`: what a Bulk request needs
/// before it is built with the row.
pub(super) fn held_for(e: &Entry, now: UnixMillis, span: u64) -> bool {
    e.hold.as_ref().is_some_and(|h| h.until >= now.saturating_add(span))
}

impl BulkRun {
    /// How long a row is held: every try of its Bulk request, each as long as the request
    /// timeout and the longest pause between tries, and the margin to commit.
    pub fn hold_span(&self) -> u64 {
        let retry = &self.config.retry;
        let pause = retry.cap_ms.max(retry.max_retry_after_ms);
        u64::from(retry.max_attempts.max(1))
            .saturating_mul(self.config.request_timeout_ms.saturating_add(pause))
            .saturating_add(LEASE_MARGIN_MS)
    }

    /// The rows ready to be sent whose people are not held (or not for long enough), at most a
    /// batch of them. Each ask carries its row's delivery, `{prefix}:{index}`, the same every
    /// time and its lease token too, so that asking again renews the row's own lease.
    pub fn holds_wanted(&mut self, now: UnixMillis, prefix: &str) -> Vec<HoldAsk> {
        // Held only when a batch is next: not while discovering, while another request is out,
        // or while the server's pace makes the run wait.
        if !self.config.hold_rows || !self.discovered || self.in_flight.is_some() || self.pacer.next_start(now) > now {
            return Vec::new();
        }
        if self.started_at == 0 {
            self.started_at = now;
        }
        let span = self.hold_span();
        let event_time = self.started_at;
        // As many as the next request takes: a Bulk batch, or a group of single-user requests.
        let next_request = if self.config.caps.bulk {
            self.config.batch_size.max(1)
        } else {
            self.lanes()
        };
        self.window
            .iter()
            .filter(|(_, e)| wants_hold(e, now, span))
            .take(next_request)
            .map(|(&index, e)| HoldAsk {
                index,
                external_id: e.external_id.clone(),
                user_name: e.user_name.clone(),
                key: person_key(e.external_id.as_deref(), &e.user_name),
                facts: EventFacts {
                    event_id: format!("{prefix}:{index}"),
                    body_digest: sha256_hex(
                        serde_json::to_string(&(&e.user_name, &e.external_id, &e.desired))
                            .unwrap_or_default()
                            .as_bytes(),
                    ),
                    operation: operation(e),
                    occurred_at: Some(e.hold.as_ref().map_or(event_time, |h| h.event_time)),
                    replay: false,
                    keeps_status: false,
                },
                lease_ms: span.saturating_add(HOLD_SLACK_MS),
                lease_token: format!("{prefix}:{index}"),
            })
            .collect()
    }

    /// Takes the ledgers' answers: a go holds the row's person; busy waits; stale and skipped
    /// end the row without writing (an event applied since the run began, or a deletion, comes
    /// first); a delivery answered before ends it as that answer said.
    pub fn on_holds(&mut self, answers: Vec<HoldAnswer>, asks: &[HoldAsk], now: UnixMillis) {
        for HoldAnswer {
            index,
            ledger,
            decision,
        } in answers
        {
            let Some(e) = self.window.get_mut(&index) else { continue };
            let Some(ask) = asks.iter().find(|a| a.index == index) else {
                continue;
            };
            match decision {
                Decision::Go {
                    lease,
                    event_time,
                    known_id,
                } => {
                    // The account the ledger knows is read first; a create waits for that read.
                    if known_id.is_some() && !e.known_gone {
                        e.known_id = known_id;
                        if e.stage == Stage::Create {
                            e.stage = Stage::Lookup;
                        }
                    }
                    e.hold = Some(Hold {
                        ledger,
                        event_id: ask.facts.event_id.clone(),
                        token: lease.token,
                        until: lease.until,
                        event_time,
                        operation: ask.facts.operation,
                        keeps_status: ask.facts.keeps_status,
                    });
                }
                Decision::Busy { retry_after_ms } => {
                    e.hold = None;
                    e.not_before = now.saturating_add(retry_after_ms.clamp(1, BUSY_RECHECK_MS));
                }
                Decision::Forward { .. } => e.not_before = now.saturating_add(1),
                Decision::Stale { answer } => {
                    e.hold = None;
                    e.finish(RowOutcome::Stale, None);
                    e.detail = Some(format!(
                        "an event applied for this person since the run began comes first ({}); nothing written",
                        answer.body["supersededBy"].as_str().unwrap_or("unknown")
                    ));
                }
                Decision::Skipped { .. } => {
                    e.hold = None;
                    e.finish(RowOutcome::Skipped, None);
                    e.detail = Some("the person was deleted; only a newer create brings them back".into());
                }
                Decision::Duplicate { answer } => {
                    e.hold = None;
                    let id = answer.body["id"].as_str().map(str::to_string);
                    match answer.body["action"].as_str() {
                        Some("created") => e.finish(RowOutcome::Created, id),
                        Some("updated") => e.finish(RowOutcome::Updated, id),
                        _ => e.finish(RowOutcome::Exists, id),
                    }
                }
                Decision::Conflict { detail } => {
                    e.hold = None;
                    e.fail(409, Some("uniqueness".into()), detail);
                }
            }
            self.touch(index);
        }
        self.settle();
    }

    /// The holds to give back, with what each row did; the rows lose their holds (store them
    /// after this). A row still pending gives its person back for now and is held again before
    /// it is sent again.
    pub fn take_releases(&mut self) -> Vec<Release> {
        let releasing = std::mem::take(&mut self.releasing);
        let mut out = Vec::with_capacity(releasing.len());
        for i in releasing {
            let entry = match self.window.get_mut(&i) {
                Some(e) => {
                    self.dirty.insert(i);
                    Some(e)
                }
                None => self.settled.iter_mut().find(|(j, _)| *j == i).map(|(_, e)| e),
            };
            let Some(e) = entry else { continue };
            let Some(hold) = e.hold.take() else { continue };
            out.push(release(i, e, hold));
        }
        out
    }

    /// Every row still holding its person gives the hold back (the run stops for now: a slice
    /// ends); it is held again before it is sent.
    pub fn release_held(&mut self) {
        let held = self.window.iter().filter(|(_, e)| e.hold.is_some()).map(|(&i, _)| i);
        self.releasing.extend(held);
    }

    /// Whether every row of the Bulk request in flight is held beyond one more try of it.
    pub(super) fn holds_outlive_the_request(&self, now: UnixMillis) -> bool {
        let Some(InFlight::Bulk { indexes, .. }) = &self.in_flight else {
            return true;
        };
        if !self.config.hold_rows {
            return true;
        }
        let needed = now
            .saturating_add(self.config.request_timeout_ms)
            .saturating_add(LEASE_MARGIN_MS);
        indexes.iter().all(|i| {
            self.window
                .get(i)
                .and_then(|e| e.hold.as_ref())
                .is_some_and(|h| h.until >= needed)
        })
    }

    /// The Bulk request in flight is not tried again: a hold would run out during the try. Its
    /// rows go back as for a request the host could not send ([`BulkRun::unsend`]: read first
    /// when an earlier try went out), and give their holds back.
    pub(super) fn abandon_in_flight(&mut self) {
        let sending = self.sending().to_vec();
        self.releasing.extend(sending);
        self.unsend();
    }
}

fn release(index: usize, e: &Entry, hold: Hold) -> Release {
    let applied = |action: Action| Ending::Applied {
        action,
        id: e.id.clone(),
    };
    let ending = match e.outcome() {
        Some(RowOutcome::Created) => applied(Action::Created),
        Some(RowOutcome::Updated) => applied(Action::Updated),
        Some(RowOutcome::Exists) => applied(Action::Unchanged),
        Some(RowOutcome::Failed | RowOutcome::Conflict | RowOutcome::Stale | RowOutcome::Skipped) => Ending::Answered,
        // A leaver is handed over at intake and never held here.
        Some(RowOutcome::Leaver | RowOutcome::Pending) | None => Ending::Failed,
    };
    let answer = match &ending {
        Ending::Applied { action, id } => Some(StoredAnswer::ok(json!({
            "status": "success", "action": action, "id": id, "eventId": hold.event_id,
        }))),
        _ => None,
    };
    Release {
        index,
        ledger: hold.ledger,
        commit: Commit {
            event_id: hold.event_id,
            lease_token: hold.token,
            event_time: hold.event_time,
            operation: hold.operation,
            keeps_status: hold.keeps_status,
            ending,
            answer,
        },
    }
}
