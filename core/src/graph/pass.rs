//! A sync pass: the rest of a delta round, applied change by change, as a checkpointable state
//! machine. The host asks [`SyncPass::next`] what to do, does it, and reports back:
//!
//! 1. [`Work::Read`]: read the page at a position ([`super::DeltaReader`]) → [`SyncPass::on_page`];
//! 2. [`Work::Plan`]: turn one change into a [`Plan`] (memberships, scope, attribute map: see
//!    [`super::plan_change`]) → [`SyncPass::on_plan`];
//! 3. [`Work::Apply`]: apply an event through the person's ledger → [`SyncPass::on_applied`]
//!    ([`Work::ApplyAll`]: several, for different people, at once; see [`SyncPass::next_within`]);
//! 4. [`Work::StoreCursor`]: keep the round's deltaLink → [`SyncPass::on_cursor_stored`];
//! 5. [`Work::Done`]: the pass's summary.
//!
//! Joiners and movers are applied as their page is read. Leavers (removed in Entra, out of
//! scope) wait for the end of the round, where the deletion guard counts them: within the
//! threshold they are applied, above it all of them are held for a person to approve or reject,
//! and the pass applies nothing of them. The cursor is stored only once every change of the
//! round was applied, held, skipped or parked as a failure for replay; until then the pass's
//! own checkpoint says where it is.

use super::guard::DeletionThreshold;
use super::reader::{Change, PageRead, Position};
use crate::apply::Settled;
use crate::digest::sha256_hex;
use crate::event::LifecycleEvent;
use crate::flows::{Action, FlowError};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one change asks of CXone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "plan", content = "event")]
pub enum Plan {
    /// A joiner or mover in scope.
    #[serde(with = "event_json")]
    Upsert(Box<LifecycleEvent>),
    /// Removed in Entra, or out of scope after being in it: disable or delete, after the guard.
    #[serde(with = "event_json")]
    Leaver(Box<LifecycleEvent>),
    /// Nothing to do in CXone.
    Ignore(Skip),
}

/// Why a change needs nothing in CXone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Not in scope, and never was while cxone-scim watched.
    OutOfScope,
    /// Gone from Entra between the page and its membership lookup; a later page says so.
    Gone,
}

/// How one change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    Created,
    Updated,
    Disabled,
    Deleted,
    Unchanged,
    Stale,
    Skipped,
    Conflict,
    /// Answered before (a page read again after an interruption).
    Duplicate,
    /// Recorded as a failure, replayable with `POST /failures/{id}/replay`.
    Failed,
    /// A leaver held by the deletion guard.
    Held,
    /// A held leaver an admin rejected.
    Rejected,
    OutOfScope,
    Gone,
}

impl From<Action> for ChangeOutcome {
    fn from(a: Action) -> Self {
        match a {
            Action::Created => Self::Created,
            Action::Updated => Self::Updated,
            Action::Disabled => Self::Disabled,
            Action::Deleted => Self::Deleted,
            // Where accounts cannot be deleted, a Graph leaver is deactivated.
            Action::Deactivated => Self::Disabled,
            Action::Unchanged => Self::Unchanged,
            Action::Stale => Self::Stale,
            // A Graph change never resets marks; were one reported so, nothing was applied.
            Action::Skipped | Action::MarksReset => Self::Skipped,
            Action::Conflict => Self::Conflict,
        }
    }
}

impl ChangeOutcome {
    /// How a change the person's ledger applied ended, as the pass counts it; `None` while it
    /// is not done (the person is busy, or the invocation ran out): the change comes again.
    pub fn of(settled: Settled) -> Option<Self> {
        match settled {
            Settled::Done(action) => Some(action.into()),
            Settled::Duplicate => Some(Self::Duplicate),
            Settled::Failed => Some(Self::Failed),
            Settled::Later => None,
        }
    }
}

impl From<Skip> for ChangeOutcome {
    fn from(s: Skip) -> Self {
        match s {
            Skip::OutOfScope => Self::OutOfScope,
            Skip::Gone => Self::Gone,
        }
    }
}

/// A leaver waiting for the end of the round, or held for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leaver {
    /// The Entra object id.
    pub graph_id: String,
    pub event_id: String,
    #[serde(with = "event_json")]
    pub event: Box<LifecycleEvent>,
}

/// A stored event is read back the way a delivered one is, through [`LifecycleEvent::from_json`]
/// (its checks included).
mod event_json {
    use crate::event::LifecycleEvent;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(event: &LifecycleEvent, s: S) -> Result<S::Ok, S::Error> {
        event.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<LifecycleEvent>, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let bytes = serde_json::to_vec(&value).map_err(D::Error::custom)?;
        LifecycleEvent::from_json(&bytes)
            .map(Box::new)
            .map_err(D::Error::custom)
    }
}

/// Which change a [`Work::Apply`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "of", content = "index")]
pub enum Slot {
    /// The n-th change of the current page.
    Change(usize),
    /// The n-th leaver of the round.
    Leaver(usize),
}

/// What the host does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Read(Position),
    /// Plan the n-th change of the current page.
    Plan {
        index: usize,
        change: Change,
    },
    /// Apply `event` through the person's ledger, as delivery `event_id`.
    Apply {
        slot: Slot,
        event_id: String,
        event: Box<LifecycleEvent>,
    },
    /// Apply each of these (different people: no order between them) at once; each answered
    /// with [`SyncPass::on_applied`].
    ApplyAll(Vec<Apply>),
    /// Store the next round's cursor.
    StoreCursor(String),
    /// A full round was read: the host lists who it had in scope and the round did not show
    /// (deleted while no cursor was followed), for [`SyncPass::on_unseen`].
    Unseen,
    Done(Summary),
}

/// One apply of a [`Work::ApplyAll`].
#[derive(Debug, Clone, PartialEq)]
pub struct Apply {
    pub slot: Slot,
    pub event_id: String,
    pub event: Box<LifecycleEvent>,
}

impl Apply {
    fn work(self) -> Work {
        Work::Apply {
            slot: self.slot,
            event_id: self.event_id,
            event: self.event,
        }
    }
}

/// Changes a host may apply at once (each through its person's ledger): a Worker may hold six
/// connections open.
pub const APPLY_LANES: usize = 6;

/// What a pass did, for `GET /sync/status` and the audit trail.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub pass_id: String,
    pub started_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    pub pages: u32,
    pub changes: u64,
    pub counts: BTreeMap<ChangeOutcome, u64>,
    /// Leavers held by the deletion guard in this pass.
    pub held: usize,
    /// Graph forgot the cursor: this pass read a full round.
    pub resynced: bool,
    /// The pass read every user (no cursor, or Graph forgot it), not only the changes.
    pub full_round: bool,
    /// The round's cursor was stored.
    pub cursor_advanced: bool,
    /// Graph requests made for memberships and full reads (delta pages not included).
    pub membership_requests: u64,
    /// Invocations the pass took (each within its own subrequest budget).
    pub slices: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "plan")]
enum SlotState {
    New,
    Planned(Plan),
    Done(ChangeOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageSlot {
    change: Change,
    state: SlotState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Phase {
    Read,
    Changes,
    Leavers,
    StoreCursor,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPass {
    summary: Summary,
    phase: Phase,
    /// The page to read next (or the one being worked).
    position: Position,
    /// The link the current page was read from (part of its changes' delivery ids).
    page_link: String,
    /// When the current page was read: the event time of its changes.
    page_read_at: UnixMillis,
    page: Vec<PageSlot>,
    /// First change of the page not yet done.
    first_open: usize,
    /// Where the round goes on after this page.
    after_page: Option<Position>,
    leavers: Vec<Leaver>,
    leaver_outcomes: Vec<Option<ChangeOutcome>>,
    /// Leavers may be applied (within the guard's threshold, or approved).
    leavers_cleared: bool,
    /// A full round's unseen people were asked for and added as leavers.
    #[serde(default)]
    unseen_read: bool,
    /// Held by the guard: the host keeps them for approval.
    held: Vec<Leaver>,
    threshold: DeletionThreshold,
    /// People in scope before the pass (for a threshold given as a share).
    population: usize,
}

/// The delivery id of a planned change: the same event (whenever it was read) from the same page
/// gives the same id, so a page read again after an interruption is answered by each person's
/// ledger, not applied twice; a change planned otherwise (other groups since) is a new delivery.
/// The host takes the id's digest as the body's: one id, one event.
pub fn delivery_id(page_link: &str, event: &LifecycleEvent) -> String {
    let timeless = LifecycleEvent {
        occurred_at: None,
        ..event.clone()
    };
    let body = serde_json::to_string(&timeless).unwrap_or_default();
    let mut digest = sha256_hex(format!("{page_link}\n{body}").as_bytes());
    digest.truncate(32);
    format!("graph-{digest}")
}

fn link_of(position: &Position) -> &str {
    match position {
        Position::Start => "start",
        Position::Page(l) | Position::Round(l) => l,
    }
}

impl SyncPass {
    /// A pass reading on from `cursor` (the stored deltaLink, or [`Position::Start`]).
    pub fn delta(
        pass_id: &str,
        cursor: Position,
        threshold: DeletionThreshold,
        population: usize,
        now: UnixMillis,
    ) -> Self {
        Self {
            summary: Summary {
                pass_id: pass_id.to_string(),
                started_at: now,
                full_round: cursor == Position::Start,
                ..Summary::default()
            },
            phase: Phase::Read,
            position: cursor,
            page_link: String::new(),
            page_read_at: now,
            page: Vec::new(),
            first_open: 0,
            after_page: None,
            leavers: Vec::new(),
            leaver_outcomes: Vec::new(),
            leavers_cleared: false,
            unseen_read: false,
            held: Vec::new(),
            threshold,
            population,
        }
    }

    /// A pass that applies leavers an admin approved (no reading, no cursor).
    pub fn approved(pass_id: &str, leavers: Vec<Leaver>, now: UnixMillis) -> Self {
        let mut pass = Self::delta(pass_id, Position::Start, DeletionThreshold::default(), 0, now);
        pass.leaver_outcomes = vec![None; leavers.len()];
        pass.leavers = leavers;
        pass.leavers_cleared = true;
        pass.phase = Phase::Leavers;
        pass
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The host starts another invocation's share of the pass.
    pub fn began_slice(&mut self) {
        self.summary.slices += 1;
    }

    /// The Entra object id a slot is about.
    pub fn graph_id_of(&self, slot: Slot) -> Option<String> {
        match slot {
            Slot::Change(i) => self.page.get(i).map(|s| match &s.change {
                Change::Upsert { user } => user.id.clone(),
                Change::Removed { id, .. } => id.clone(),
            }),
            Slot::Leaver(i) => self.leavers.get(i).map(|l| l.graph_id.clone()),
        }
    }

    /// Leavers the guard held in this pass, for the host to keep until approved or rejected.
    pub fn take_held(&mut self) -> Vec<Leaver> {
        std::mem::take(&mut self.held)
    }

    /// Leavers waiting for the end of the round.
    pub fn pending_leavers(&self) -> &[Leaver] {
        &self.leavers
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    fn count(&mut self, outcome: ChangeOutcome) {
        *self.summary.counts.entry(outcome).or_default() += 1;
    }

    fn finish(&mut self, now: UnixMillis) {
        self.phase = Phase::Finished;
        self.summary.finished_at = Some(now);
    }

    /// What to do now, one thing at a time.
    pub fn next(&mut self, now: UnixMillis) -> Work {
        self.next_within(now, 1)
    }

    /// What to do now, applying up to `lanes` changes at once: the page's changes are planned
    /// ahead (reads only) until that many for different people wait, then applied together;
    /// a person's second change waits for their first.
    pub fn next_within(&mut self, now: UnixMillis, lanes: usize) -> Work {
        let lanes = lanes.max(1);
        loop {
            match self.phase {
                Phase::Read => return Work::Read(self.position.clone()),
                Phase::Changes => {
                    while self
                        .page
                        .get(self.first_open)
                        .is_some_and(|s| matches!(s.state, SlotState::Done(_)))
                    {
                        self.first_open += 1;
                    }
                    let Some(slot) = self.page.get(self.first_open) else {
                        self.page_done();
                        continue;
                    };
                    // Leavers and skips are settled when planned.
                    if matches!(slot.state, SlotState::Planned(Plan::Leaver(_) | Plan::Ignore(_))) {
                        self.first_open += 1;
                        continue;
                    }
                    let (ready, plan_next) = self.ready_changes(lanes);
                    return match plan_next {
                        Some(index) if ready.len() < lanes => Work::Plan {
                            index,
                            change: self.page[index].change.clone(),
                        },
                        _ => self.apply_work(ready),
                    };
                }
                Phase::Leavers => {
                    if self.summary.full_round && !self.unseen_read && !self.leavers_cleared {
                        return Work::Unseen;
                    }
                    if !self.leavers_cleared {
                        self.guard();
                        continue;
                    }
                    let mut people = std::collections::BTreeSet::new();
                    let ready: Vec<Apply> = self
                        .leaver_outcomes
                        .iter()
                        .enumerate()
                        .filter(|(_, o)| o.is_none())
                        .filter_map(|(i, _)| self.leavers.get(i).map(|l| (i, l)))
                        .take_while(|(_, l)| people.insert(l.event.subject_key()))
                        .take(lanes)
                        .map(|(i, l)| Apply {
                            slot: Slot::Leaver(i),
                            event_id: l.event_id.clone(),
                            event: l.event.clone(),
                        })
                        .collect();
                    match ready.is_empty() {
                        false => return self.apply_work(ready),
                        true => {
                            self.phase = match self.after_page {
                                Some(Position::Round(_)) => Phase::StoreCursor,
                                _ => Phase::Finished,
                            };
                            if self.phase == Phase::Finished {
                                self.finish(now);
                            }
                        }
                    }
                }
                Phase::StoreCursor => match &self.after_page {
                    Some(Position::Round(link)) => return Work::StoreCursor(link.clone()),
                    _ => self.finish(now),
                },
                Phase::Finished => return Work::Done(self.summary.clone()),
            }
        }
    }

    /// The page's changes ready to apply, in order from the first open one, at most `lanes`, for
    /// different people (stopping at a person's second change); and the next change to plan,
    /// if one comes before the end of those.
    fn ready_changes(&self, lanes: usize) -> (Vec<Apply>, Option<usize>) {
        let mut ready = Vec::new();
        let mut people = std::collections::BTreeSet::new();
        for (index, slot) in self.page.iter().enumerate().skip(self.first_open) {
            match &slot.state {
                SlotState::New => return (ready, Some(index)),
                SlotState::Planned(Plan::Upsert(event)) => {
                    if ready.len() == lanes || !people.insert(event.subject_key()) {
                        break;
                    }
                    ready.push(Apply {
                        slot: Slot::Change(index),
                        event_id: delivery_id(&self.page_link, event),
                        event: event.clone(),
                    });
                }
                SlotState::Planned(_) | SlotState::Done(_) => {}
            }
        }
        (ready, None)
    }

    /// One apply as [`Work::Apply`], several as [`Work::ApplyAll`].
    fn apply_work(&self, mut ready: Vec<Apply>) -> Work {
        match (ready.len(), ready.pop()) {
            (1, Some(only)) => only.work(),
            (_, last) => {
                ready.extend(last);
                Work::ApplyAll(ready)
            }
        }
    }

    /// The end of a page: read on, or (last page) settle the round's leavers.
    fn page_done(&mut self) {
        match self.after_page.clone() {
            Some(Position::Page(link)) => {
                self.position = Position::Page(link);
                self.phase = Phase::Read;
            }
            _ => self.phase = Phase::Leavers,
        }
    }

    /// The deletion guard, once per round.
    fn guard(&mut self) {
        self.leavers_cleared = true;
        if self.threshold.holds(self.leavers.len(), self.population) {
            self.summary.held = self.leavers.len();
            for _ in 0..self.leavers.len() {
                self.count(ChangeOutcome::Held);
            }
            self.held = std::mem::take(&mut self.leavers);
            self.leaver_outcomes.clear();
        } else {
            self.leaver_outcomes = vec![None; self.leavers.len()];
        }
    }

    /// The page read at the position [`Work::Read`] gave, or why it could not be read.
    pub fn on_page(&mut self, read: Result<PageRead, FlowError>, now: UnixMillis) {
        if self.phase != Phase::Read {
            return;
        }
        let page = match read {
            Ok(p) => p,
            Err(e) => {
                // Nothing of the page was applied; the cursor stays where it was.
                self.summary.error = Some(e.to_string());
                self.finish(now);
                return;
            }
        };
        self.summary.pages += 1;
        self.summary.changes += page.changes.len() as u64;
        self.summary.resynced |= page.resynced;
        self.summary.full_round |= page.resynced;
        // A full round's first page has no link of its own: the pass names it, so that a change
        // seen again in a later full round is a new delivery.
        self.page_link = match &self.position {
            Position::Start => format!("start:{}", self.summary.pass_id),
            other => link_of(other).to_string(),
        };
        self.page_read_at = now;
        self.page = page
            .changes
            .into_iter()
            .map(|change| PageSlot {
                change,
                state: SlotState::New,
            })
            .collect();
        self.first_open = 0;
        self.after_page = Some(page.next);
        self.phase = Phase::Changes;
    }

    /// When the current page was read: the event time of its changes.
    pub fn page_read_at(&self) -> UnixMillis {
        self.page_read_at
    }

    /// The plan for the n-th change, and the membership requests it took.
    pub fn on_plan(&mut self, index: usize, plan: Plan, membership_requests: u32) {
        self.summary.membership_requests += u64::from(membership_requests);
        let Some(slot) = self.page.get(index) else {
            return;
        };
        if slot.state != SlotState::New {
            return;
        }
        let change = slot.change.clone();
        let state = match &plan {
            Plan::Ignore(skip) => SlotState::Done(ChangeOutcome::from(*skip)),
            Plan::Leaver(event) => {
                let graph_id = match &change {
                    Change::Upsert { user } => user.id.clone(),
                    Change::Removed { id, .. } => id.clone(),
                };
                // A later change for the same person in this round replaces an earlier one.
                self.leavers.retain(|l| l.graph_id != graph_id);
                self.leavers.push(Leaver {
                    graph_id,
                    event_id: delivery_id(&self.page_link, event),
                    event: event.clone(),
                });
                SlotState::Done(ChangeOutcome::Held)
            }
            Plan::Upsert(_) => SlotState::Planned(plan.clone()),
        };
        if let SlotState::Done(outcome) = state {
            if outcome != ChangeOutcome::Held {
                self.count(outcome);
            }
        }
        if let (Plan::Upsert(_), Change::Upsert { user }) = (&plan, &change) {
            // Back in scope before the round ended: no longer a leaver.
            let id = user.id.clone();
            self.leavers.retain(|l| l.graph_id != id);
        }
        if let Some(slot) = self.page.get_mut(index) {
            slot.state = state;
        }
    }

    /// The change at `index` could not be planned and is parked: counted `failed`, and a leaver
    /// pending for the person is withdrawn (see [`SyncPass::withdraw_leaver`]).
    pub fn on_plan_failed(&mut self, index: usize, graph_id: &str, membership_requests: u32) {
        self.summary.membership_requests += u64::from(membership_requests);
        let Some(slot) = self.page.get_mut(index).filter(|s| s.state == SlotState::New) else {
            return;
        };
        slot.state = SlotState::Done(ChangeOutcome::Failed);
        self.count(ChangeOutcome::Failed);
        self.withdraw_leaver(graph_id);
    }

    /// After [`Work::Unseen`]: people in scope before the round whom the full round did not
    /// list (each a disable, by what earlier passes recorded), to go through the guard with
    /// the round's other leavers.
    pub fn on_unseen(&mut self, unseen: Vec<(String, LifecycleEvent)>) {
        if self.unseen_read {
            return;
        }
        self.unseen_read = true;
        let link = format!("unseen:{}", self.summary.pass_id);
        for (graph_id, event) in unseen {
            if self.leavers.iter().any(|l| l.graph_id == graph_id) {
                continue;
            }
            self.leavers.push(Leaver {
                graph_id,
                event_id: delivery_id(&link, &event),
                event: Box::new(event),
            });
        }
    }

    /// Ends the pass where it is, without moving the cursor: a change could not be planned for a
    /// reason that may pass (Graph busy or down), and going on would move the cursor past it.
    /// What the pass applied stays applied; the next pass reads the round again from the stored
    /// cursor, and its changes come back with the same delivery ids (answered as duplicates).
    /// Leavers waiting for the end of the round are dropped with the pass and found again.
    pub fn abandon(&mut self, reason: impl Into<String>, now: UnixMillis) {
        if self.phase == Phase::Finished {
            return;
        }
        self.leavers.clear();
        self.summary.error = Some(reason.into());
        self.finish(now);
    }

    /// A change for `graph_id` could not be planned: a leaver pending for the same person is
    /// withdrawn (whether they are still out is in doubt, and in doubt nothing is written).
    pub fn withdraw_leaver(&mut self, graph_id: &str) {
        self.leavers.retain(|l| l.graph_id != graph_id);
    }

    /// How applying a slot ended. A slot the host could not finish (budget, a busy person) is
    /// not reported: the next [`SyncPass::next`] hands it out again with the same delivery id.
    pub fn on_applied(&mut self, slot: Slot, outcome: ChangeOutcome) {
        match slot {
            Slot::Change(i) => {
                let Some(s) = self.page.get_mut(i) else { return };
                if matches!(s.state, SlotState::Done(_)) {
                    return;
                }
                s.state = SlotState::Done(outcome);
            }
            Slot::Leaver(i) => {
                let Some(o) = self.leaver_outcomes.get_mut(i) else {
                    return;
                };
                if o.is_some() {
                    return;
                }
                *o = Some(outcome);
            }
        }
        self.count(outcome);
    }

    pub fn on_cursor_stored(&mut self, now: UnixMillis) {
        if self.phase == Phase::StoreCursor {
            self.summary.cursor_advanced = true;
            self.finish(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Operation;
    use crate::graph::{DeltaUser, Removal};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn a_change_is_counted_once_its_ledger_has_settled_it() {
        assert_eq!(
            ChangeOutcome::of(Settled::Done(Action::Created)),
            Some(ChangeOutcome::Created)
        );
        assert_eq!(
            ChangeOutcome::of(Settled::Done(Action::Deactivated)),
            Some(ChangeOutcome::Disabled)
        );
        assert_eq!(
            ChangeOutcome::of(Settled::Done(Action::Stale)),
            Some(ChangeOutcome::Stale)
        );
        assert_eq!(ChangeOutcome::of(Settled::Duplicate), Some(ChangeOutcome::Duplicate));
        assert_eq!(ChangeOutcome::of(Settled::Failed), Some(ChangeOutcome::Failed));
        assert_eq!(
            ChangeOutcome::of(Settled::Later),
            None,
            "busy or out of requests: comes again"
        );
    }

    fn upsert(id: &str) -> Change {
        Change::Upsert {
            user: Box::new(DeltaUser {
                id: id.into(),
                ..DeltaUser::default()
            }),
        }
    }

    fn removed(id: &str) -> Change {
        Change::Removed {
            id: id.into(),
            removal: Removal::Changed,
        }
    }

    fn event(id: &str, operation: Operation) -> Box<LifecycleEvent> {
        Box::new(LifecycleEvent {
            operation,
            user_name: format!("{id}@example.com"),
            external_id: Some(id.into()),
            ..LifecycleEvent::default()
        })
    }

    fn page(changes: Vec<Change>, next: Position) -> PageRead {
        PageRead {
            changes,
            next,
            resynced: false,
        }
    }

    /// Plans every change the obvious way: upserts in scope, removals as disables.
    fn plan_of(change: &Change) -> Plan {
        match change {
            Change::Upsert { user } if user.id.starts_with("out") => Plan::Ignore(Skip::OutOfScope),
            Change::Upsert { user } if user.id.starts_with("left") => Plan::Leaver(event(&user.id, Operation::Disable)),
            Change::Upsert { user } => Plan::Upsert(event(&user.id, Operation::Update)),
            Change::Removed { id, .. } => Plan::Leaver(event(id, Operation::Disable)),
        }
    }

    /// Runs a pass against `pages`, applying every event with `Updated`/`Disabled`; returns
    /// the applied delivery ids in order and the stored cursor.
    fn run(pass: &mut SyncPass, pages: Vec<PageRead>) -> (Vec<(String, Operation)>, Option<String>) {
        let (applied, stored, _) = run_within(pass, pages, 1);
        (applied, stored)
    }

    /// [`run`] with up to `lanes` applies at once; also the size of every group applied at once.
    fn run_within(
        pass: &mut SyncPass,
        mut pages: Vec<PageRead>,
        lanes: usize,
    ) -> (Vec<(String, Operation)>, Option<String>, Vec<usize>) {
        let mut applied = Vec::new();
        let mut stored = None;
        let mut groups = Vec::new();
        for _ in 0..10_000 {
            let applies = match pass.next_within(1_000, lanes) {
                Work::Read(_) => {
                    let p = pages.remove(0);
                    pass.on_page(Ok(p), 1_000);
                    continue;
                }
                Work::Plan { index, change } => {
                    pass.on_plan(index, plan_of(&change), 1);
                    continue;
                }
                Work::Apply { slot, event_id, event } => vec![Apply { slot, event_id, event }],
                Work::ApplyAll(all) => {
                    groups.push(all.len());
                    all
                }
                Work::StoreCursor(link) => {
                    stored = Some(link);
                    pass.on_cursor_stored(2_000);
                    continue;
                }
                Work::Unseen => {
                    pass.on_unseen(vec![]);
                    continue;
                }
                Work::Done(_) => return (applied, stored, groups),
            };
            for Apply { slot, event_id, event } in applies {
                let outcome = if event.operation.is_leaver() {
                    ChangeOutcome::Disabled
                } else {
                    ChangeOutcome::Updated
                };
                applied.push((event_id, event.operation));
                pass.on_applied(slot, outcome);
            }
        }
        panic!("the pass did not finish");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn changes_for_different_people_are_applied_together_and_one_persons_in_order() {
        let mut pass = SyncPass::delta("p1", Position::Start, DeletionThreshold::Count(25), 100, 0);
        let pages = vec![page(
            vec![
                upsert("a"),
                upsert("b"),
                upsert("a"),
                upsert("c"),
                upsert("out-1"),
                upsert("d"),
                removed("gone-1"),
                removed("gone-2"),
            ],
            Position::Round("https://g/delta".into()),
        )];
        let (applied, stored, groups) = run_within(&mut pass, pages, 3);
        // a and b together; a's second change waits for its first, then goes with c and d;
        // the two leavers together at the end of the round.
        assert_eq!(groups, [2, 3, 2]);
        let people: Vec<&str> = applied.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(people.len(), 7, "{people:?}");
        assert_eq!(stored.as_deref(), Some("https://g/delta"));
        let s = pass.summary();
        assert_eq!(
            (s.counts[&ChangeOutcome::Updated], s.counts[&ChangeOutcome::Disabled]),
            (5, 2)
        );
        // One at a time, the same work in the same order.
        let mut one = SyncPass::delta("p1", Position::Start, DeletionThreshold::Count(25), 100, 0);
        let pages = vec![page(
            vec![upsert("a"), upsert("b"), upsert("a")],
            Position::Round("https://g/delta".into()),
        )];
        let (applied_one, _, groups_one) = run_within(&mut one, pages, 1);
        assert!(groups_one.is_empty());
        assert_eq!(applied_one.len(), 3);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn joiners_go_first_leavers_at_the_end_of_the_round_and_then_the_cursor() {
        let mut pass = SyncPass::delta("p1", Position::Start, DeletionThreshold::Count(25), 100, 0);
        let pages = vec![
            page(
                vec![upsert("a"), removed("gone"), upsert("out-1")],
                Position::Page("https://g/next".into()),
            ),
            page(vec![upsert("b")], Position::Round("https://g/delta".into())),
        ];
        let (applied, stored) = run(&mut pass, pages);
        let ops: Vec<Operation> = applied.iter().map(|a| a.1).collect();
        assert_eq!(ops, [Operation::Update, Operation::Update, Operation::Disable]);
        assert_eq!(stored.as_deref(), Some("https://g/delta"));
        let s = pass.summary();
        assert_eq!((s.pages, s.changes, s.held), (2, 4, 0));
        assert_eq!(s.counts[&ChangeOutcome::Updated], 2);
        assert_eq!(s.counts[&ChangeOutcome::Disabled], 1);
        assert_eq!(s.counts[&ChangeOutcome::OutOfScope], 1);
        assert!(!s.counts.contains_key(&ChangeOutcome::Held));
        assert!(s.cursor_advanced && s.finished_at == Some(2_000));
        assert_eq!(s.membership_requests, 4);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn above_the_threshold_every_leaver_is_held_and_the_rest_applied() {
        let mut pass = SyncPass::delta("p1", Position::Start, DeletionThreshold::Count(25), 1000, 0);
        let mut changes: Vec<Change> = (0..30).map(|i| removed(&format!("r{i}"))).collect();
        changes.push(upsert("stays"));
        let (applied, stored) = run(&mut pass, vec![page(changes, Position::Round("https://g/d".into()))]);
        assert_eq!(applied.len(), 1, "only the joiner: {applied:?}");
        assert_eq!(stored.as_deref(), Some("https://g/d"), "held counts as settled");
        assert_eq!(pass.summary().held, 30);
        assert_eq!(pass.summary().counts[&ChangeOutcome::Held], 30);
        let held = pass.take_held();
        assert_eq!(held.len(), 30);
        // Approved: the same leavers, the same delivery ids, no cursor.
        let ids: Vec<String> = held.iter().map(|l| l.event_id.clone()).collect();
        let mut approved = SyncPass::approved("p2", held, 5_000);
        let (applied, stored) = run(&mut approved, vec![]);
        assert_eq!(applied.iter().map(|a| a.0.clone()).collect::<Vec<_>>(), ids);
        assert!(stored.is_none());
        assert_eq!(approved.summary().counts[&ChangeOutcome::Disabled], 30);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn at_the_threshold_leavers_are_applied() {
        let mut pass = SyncPass::delta("p1", Position::Start, DeletionThreshold::Count(2), 10, 0);
        let changes = vec![removed("r1"), upsert("left-1")];
        let (applied, _) = run(&mut pass, vec![page(changes, Position::Round("d".into()))]);
        assert_eq!(applied.len(), 2);
        assert_eq!(pass.summary().held, 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_person_back_in_scope_later_in_the_round_is_no_leaver() {
        let mut pass = SyncPass::delta("p2", Position::Start, DeletionThreshold::Count(25), 10, 0);
        let _ = pass.next(0);
        pass.on_page(Ok(page(vec![upsert("p"), upsert("p")], Position::Round("d".into()))), 0);
        pass.on_plan(0, Plan::Leaver(event("p", Operation::Disable)), 0);
        pass.on_plan(1, Plan::Upsert(event("p", Operation::Update)), 0);
        assert!(pass.pending_leavers().is_empty());
        let (applied, _) = run(&mut pass, vec![]);
        assert_eq!(applied.len(), 1, "only the upsert: {applied:?}");
        assert_eq!(applied[0].1, Operation::Update);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_interrupted_pass_resumes_where_its_checkpoint_is_with_the_same_ids() {
        let mut pass = SyncPass::delta("p1", Position::Round("old".into()), DeletionThreshold::Count(25), 10, 0);
        assert_eq!(pass.next(0), Work::Read(Position::Round("old".into())));
        pass.on_page(
            Ok(page(vec![upsert("a"), upsert("b")], Position::Round("new".into()))),
            7,
        );
        let Work::Plan { index, change } = pass.next(7) else {
            panic!()
        };
        pass.on_plan(index, plan_of(&change), 1);
        let Work::Apply {
            event_id: first_id,
            event,
            ..
        } = pass.next(7)
        else {
            panic!()
        };
        assert_eq!(event.external_id.as_deref(), Some("a"));
        // Saved before the answer came: the restored pass hands out the same delivery.
        let saved = serde_json::to_string(&pass).unwrap();
        let mut restored: SyncPass = serde_json::from_str(&saved).unwrap();
        let Work::Apply { event_id, slot, .. } = restored.next(9) else {
            panic!()
        };
        assert_eq!(event_id, first_id);
        restored.on_applied(slot, ChangeOutcome::Duplicate);
        let (applied, stored) = run(&mut restored, vec![]);
        assert_eq!(applied.len(), 1);
        assert_ne!(applied[0].0, first_id);
        assert_eq!(stored.as_deref(), Some("new"));
        assert_eq!(restored.summary().counts[&ChangeOutcome::Duplicate], 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_unreadable_page_ends_the_pass_without_moving_the_cursor() {
        let mut pass = SyncPass::delta("p1", Position::Round("old".into()), DeletionThreshold::Count(25), 10, 0);
        let _ = pass.next(0);
        pass.on_page(Err(FlowError::Ambiguous("bad page".into())), 3);
        let Work::Done(summary) = pass.next(3) else { panic!() };
        assert!(!summary.cursor_advanced);
        assert!(summary.error.unwrap().contains("bad page"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_change_that_could_not_be_planned_counts_failed_and_withdraws_its_leaver() {
        let mut pass = SyncPass::delta("p1", Position::Round("old".into()), DeletionThreshold::Count(25), 10, 0);
        let _ = pass.next(0);
        let removed = Change::Removed {
            id: "a".into(),
            removal: super::super::reader::Removal::Changed,
        };
        pass.on_page(Ok(page(vec![removed, upsert("a")], Position::Round("new".into()))), 0);
        let Work::Plan { index, change } = pass.next(0) else {
            panic!()
        };
        pass.on_plan(index, plan_of(&change), 0);
        let Work::Plan { index, .. } = pass.next(0) else {
            panic!()
        };
        pass.on_plan_failed(index, "a", 2);
        // Nothing left to apply: the withdrawn leaver is not applied, the cursor moves.
        assert_eq!(pass.next(0), Work::StoreCursor("new".into()));
        pass.on_cursor_stored(1);
        let Work::Done(summary) = pass.next(1) else { panic!() };
        assert_eq!(
            summary.counts.get(&ChangeOutcome::Failed),
            Some(&1),
            "{:?}",
            summary.counts
        );
        assert_eq!(summary.counts.get(&ChangeOutcome::Gone), None);
        assert_eq!(summary.membership_requests, 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_pass_abandoned_mid_page_moves_no_cursor_and_applies_no_waiting_leaver() {
        let mut pass = SyncPass::delta("p1", Position::Round("old".into()), DeletionThreshold::Count(25), 10, 0);
        let _ = pass.next(0);
        let removed = Change::Removed {
            id: "gone".into(),
            removal: super::super::reader::Removal::Changed,
        };
        pass.on_page(Ok(page(vec![removed, upsert("a")], Position::Round("new".into()))), 0);
        let Work::Plan { index, change } = pass.next(0) else {
            panic!()
        };
        pass.on_plan(index, plan_of(&change), 0);
        // The second change's groups could not be read: the pass stops there.
        let Work::Plan { .. } = pass.next(0) else { panic!() };
        pass.abandon("groups of a: Graph answered 503", 4);
        let Work::Done(summary) = pass.next(4) else { panic!() };
        assert!(!summary.cursor_advanced);
        assert_eq!(summary.error.as_deref(), Some("groups of a: Graph answered 503"));
        assert!(pass.take_held().is_empty());
        // Abandoning a finished pass changes nothing.
        pass.abandon("again", 5);
        let Work::Done(again) = pass.next(5) else { panic!() };
        assert_eq!(again.error, summary.error);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_full_round_disables_who_it_no_longer_lists_through_the_guard() {
        // A full round (no cursor): `gone` was in scope before and is not listed any more.
        let mut pass = SyncPass::delta("p1", Position::Start, DeletionThreshold::Count(1), 10, 0);
        let _ = pass.next(0);
        pass.on_page(Ok(page(vec![upsert("a")], Position::Round("d".into()))), 0);
        let Work::Plan { index, change } = pass.next(0) else {
            panic!()
        };
        pass.on_plan(index, plan_of(&change), 1);
        let Work::Apply { slot, .. } = pass.next(0) else {
            panic!()
        };
        pass.on_applied(slot, ChangeOutcome::Updated);
        assert_eq!(pass.next(0), Work::Unseen);
        pass.on_unseen(vec![("gone".into(), *event("gone", Operation::Disable))]);
        let Work::Apply {
            event: unseen,
            event_id,
            ..
        } = pass.next(0)
        else {
            panic!()
        };
        assert_eq!(
            (unseen.operation, unseen.external_id.as_deref()),
            (Operation::Disable, Some("gone"))
        );
        assert!(event_id.starts_with("graph-"));
        // A delta round asks nothing of the kind.
        let mut delta = SyncPass::delta("p2", Position::Round("c".into()), DeletionThreshold::Count(1), 10, 0);
        let (applied, _) = run(&mut delta, vec![page(vec![], Position::Round("d2".into()))]);
        assert!(applied.is_empty());
        // Two unseen above a threshold of one: held like any other leavers.
        let mut held = SyncPass::delta("p3", Position::Start, DeletionThreshold::Count(1), 10, 0);
        let _ = held.next(0);
        held.on_page(Ok(page(vec![], Position::Round("d".into()))), 0);
        assert_eq!(held.next(0), Work::Unseen);
        held.on_unseen(vec![
            ("x".into(), *event("x", Operation::Disable)),
            ("y".into(), *event("y", Operation::Disable)),
        ]);
        assert_eq!(held.next(0), Work::StoreCursor("d".into()));
        assert_eq!(held.take_held().len(), 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn full_rounds_make_new_deliveries_and_a_change_in_doubt_withdraws_its_leaver() {
        let first = |id: &str| {
            let mut p = SyncPass::delta(id, Position::Start, DeletionThreshold::Count(25), 10, 0);
            let _ = p.next(0);
            p.on_page(Ok(page(vec![upsert("a")], Position::Round("d".into()))), 0);
            let Work::Plan { index, change } = p.next(0) else {
                panic!()
            };
            p.on_plan(index, plan_of(&change), 1);
            let Work::Apply { event_id, .. } = p.next(0) else {
                panic!()
            };
            event_id
        };
        assert_ne!(first("p1"), first("p2"), "the same change in another full round");
        let mut pass = SyncPass::delta("p", Position::Round("c".into()), DeletionThreshold::Count(25), 10, 0);
        let _ = pass.next(0);
        pass.on_page(
            Ok(page(vec![removed("r"), upsert("r")], Position::Round("d".into()))),
            0,
        );
        let Work::Plan { index, change } = pass.next(0) else {
            panic!()
        };
        pass.on_plan(index, plan_of(&change), 0);
        assert_eq!(pass.pending_leavers().len(), 1);
        pass.withdraw_leaver("r");
        assert!(pass.pending_leavers().is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_same_change_on_the_same_page_has_one_delivery_id() {
        let p1 = "https://g/p?$skiptoken=1";
        let a = delivery_id(p1, &event("a", Operation::Update));
        let later = LifecycleEvent {
            occurred_at: Some(99),
            ..*event("a", Operation::Update)
        };
        assert_eq!(a, delivery_id(p1, &later), "read again later: the same delivery");
        assert_ne!(
            a,
            delivery_id("https://g/p?$skiptoken=2", &event("a", Operation::Update))
        );
        assert_ne!(a, delivery_id(p1, &event("b", Operation::Update)));
        assert_ne!(a, delivery_id(p1, &event("a", Operation::Disable)));
        assert!(a.len() < 64);
    }
}
