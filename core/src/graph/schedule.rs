//! What the Graph sync object decides between and around passes: whether a pass reads every
//! user again (a full round) and from where, who a full round found missing, whether a held
//! leaver still stands, what a change leaves recorded about its person, and how often a change
//! Graph cannot answer for is tried again before it is parked. The object stores what these
//! return; it decides nothing.

use super::pass::ChangeOutcome;
use super::reader::Position;
use crate::event::{LifecycleEvent, Operation};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// Passes in a row that may stop short of one change Graph cannot answer for, before the change
/// is parked and the cursor moves on.
pub const PLAN_RETRIES: u32 = 3;

/// What the object knows when a pass is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundFacts {
    pub now: UnixMillis,
    /// When the last full round whose cursor was stored began (`None`: none yet).
    pub last_full: Option<UnixMillis>,
    /// A group changed since (membership is not in `/users/delta`).
    pub groups_changed: bool,
    /// A full round ended before its cursor could move.
    pub owed: bool,
    /// `GRAPH_FULL_ROUND_HOURS` and `GRAPH_GROUP_ROUND_MINUTES`, in ms (0: no periodic round).
    pub full_round_ms: u64,
    pub group_round_gap_ms: u64,
}

/// The pass to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub position: Position,
    /// The groups' ask is answered by this round (else it waits for the gap to pass).
    pub takes_group_ask: bool,
    /// The round counts as the first full one (no full round was recorded before).
    pub first: bool,
}

/// Whether the pass reads every user again, and from where: the stored cursor (`stored`) unless
/// a full round is due — periodically, for a group's change once the gap since the last full
/// round has passed, or owed by one that failed. The very first pass follows a stored cursor
/// (one kept from before full rounds were recorded) and counts as the full round.
pub fn next_round(facts: RoundFacts, stored: Option<String>) -> Round {
    let since_full = facts.last_full.map(|at| facts.now.saturating_sub(at));
    let periodic = facts.full_round_ms > 0 && since_full.is_none_or(|d| d >= facts.full_round_ms);
    let for_groups = facts.groups_changed && since_full.is_none_or(|d| d >= facts.group_round_gap_ms);
    let full_due = periodic || for_groups || facts.owed;
    let position = match stored {
        Some(link) if !full_due || facts.last_full.is_none() => Position::Round(link),
        _ => Position::Start,
    };
    Round {
        position,
        takes_group_ask: for_groups,
        first: facts.last_full.is_none(),
    }
}

/// When a group's change that came too soon after the last full round gets its round.
pub fn group_round_due(last_full: Option<UnixMillis>, group_round_gap_ms: u64) -> UnixMillis {
    last_full.unwrap_or(0).saturating_add(group_round_gap_ms)
}

/// A person in scope whom a full round did not list: deleted in Entra while no cursor was
/// followed (a lost cursor, a periodic round), so no `@removed` told of them. They leave as a
/// disable, by what earlier passes recorded of them.
pub fn unseen_leaver(external_id: String, user_name: Option<String>, now: UnixMillis) -> LifecycleEvent {
    LifecycleEvent {
        operation: Operation::Disable,
        user_name: user_name.unwrap_or_default(),
        external_id: Some(external_id),
        occurred_at: Some(now),
        ..LifecycleEvent::default()
    }
}

/// A held leaver whose person was recorded in scope again after the hold (rehired, re-added)
/// is out of date: an approval does not disable them.
pub fn hold_superseded(in_scope: bool, updated_at: UnixMillis, held_at: UnixMillis) -> bool {
    in_scope && updated_at > held_at
}

/// What an applied change leaves recorded about its person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Kept as in scope (`true`) or not, for later full rounds and the deletion guard.
    Person { in_scope: bool },
    /// Parked for an admin (`GET /sync/status`), the person left as recorded.
    Park,
    /// Nothing: the change was not applied (stale, a conflict kept for a person).
    Nothing,
}

/// What `outcome` of `event` leaves recorded: a failure is parked; a joiner or mover keeps the
/// person in scope unless it left the account disabled; a leaver takes them out.
pub fn record_of(outcome: ChangeOutcome, event: &LifecycleEvent) -> Record {
    match outcome {
        ChangeOutcome::Failed => Record::Park,
        ChangeOutcome::Stale | ChangeOutcome::Conflict => Record::Nothing,
        _ => Record::Person {
            in_scope: !event.operation.is_leaver() && event.account_enabled != Some(false),
        },
    }
}

/// The change the last passes stopped short of, and how many did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRetry {
    pub graph_id: String,
    pub passes: u32,
}

/// Graph could not answer for `graph_id`'s change: stop the pass short of it (the cursor stays,
/// so the next pass plans it again) at most [`PLAN_RETRIES`] passes in a row; then park it so
/// that one person cannot hold the cursor for ever. Returns whether to stop short, and what to
/// keep for the next pass.
pub fn retry_plan(last: Option<PlanRetry>, graph_id: &str) -> (bool, Option<PlanRetry>) {
    let passes = last.filter(|r| r.graph_id == graph_id).map_or(0, |r| r.passes);
    if passes >= PLAN_RETRIES {
        return (false, None);
    }
    let next = PlanRetry {
        graph_id: graph_id.to_string(),
        passes: passes + 1,
    };
    (true, Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const HOUR: u64 = 3_600_000;

    fn facts(now: u64, last_full: Option<u64>) -> RoundFacts {
        RoundFacts {
            now,
            last_full,
            groups_changed: false,
            owed: false,
            full_round_ms: 24 * HOUR,
            group_round_gap_ms: HOUR,
        }
    }

    fn cursor() -> Option<String> {
        Some("https://graph.test/delta?token=1".into())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_pass_follows_the_cursor_until_a_full_round_is_due() {
        let now = 100 * HOUR;
        let r = next_round(facts(now, Some(now - HOUR)), cursor());
        assert_eq!(r.position, Position::Round(cursor().unwrap()));
        assert!(!r.first);
        // A day on: everyone is read again.
        assert_eq!(
            next_round(facts(now, Some(now - 24 * HOUR)), cursor()).position,
            Position::Start
        );
        // No cursor: from the start.
        assert_eq!(next_round(facts(now, Some(now - HOUR)), None).position, Position::Start);
        // Owed by a full round that failed.
        let owed = RoundFacts {
            owed: true,
            ..facts(now, Some(now - HOUR))
        };
        assert_eq!(next_round(owed, cursor()).position, Position::Start);
        // No periodic rounds configured.
        let never = RoundFacts {
            full_round_ms: 0,
            ..facts(now, Some(now - 48 * HOUR))
        };
        assert_eq!(next_round(never, cursor()).position, Position::Round(cursor().unwrap()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_group_change_gets_a_full_round_once_the_gap_has_passed() {
        let now = 100 * HOUR;
        let soon = RoundFacts {
            groups_changed: true,
            ..facts(now, Some(now - HOUR / 2))
        };
        let r = next_round(soon, cursor());
        assert_eq!(
            (r.position, r.takes_group_ask),
            (Position::Round(cursor().unwrap()), false)
        );
        assert_eq!(group_round_due(Some(now - HOUR / 2), HOUR), now + HOUR / 2);
        let later = RoundFacts {
            groups_changed: true,
            ..facts(now, Some(now - HOUR))
        };
        let r = next_round(later, cursor());
        assert_eq!((r.position, r.takes_group_ask), (Position::Start, true));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_first_pass_keeps_a_cursor_kept_from_before_and_counts_as_the_full_round() {
        let r = next_round(facts(5 * HOUR, None), cursor());
        assert_eq!(r.position, Position::Round(cursor().unwrap()));
        assert!(r.first);
        assert_eq!(next_round(facts(5 * HOUR, None), None).position, Position::Start);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn who_a_round_missed_leaves_disabled_and_a_hold_stands_unless_they_came_back() {
        let e = unseen_leaver("e1".into(), Some("a@x.io".into()), 7);
        assert_eq!(
            (e.operation, e.external_id.as_deref(), e.user_name.as_str()),
            (Operation::Disable, Some("e1"), "a@x.io")
        );
        assert_eq!(e.occurred_at, Some(7));
        assert!(hold_superseded(true, 20, 10));
        assert!(!hold_superseded(true, 10, 20));
        assert!(!hold_superseded(false, 20, 10));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn what_a_change_leaves_recorded_of_its_person() {
        let joiner = LifecycleEvent {
            operation: Operation::Create,
            ..LifecycleEvent::default()
        };
        let disabled = LifecycleEvent {
            account_enabled: Some(false),
            ..joiner.clone()
        };
        let leaver = LifecycleEvent {
            operation: Operation::Delete,
            ..LifecycleEvent::default()
        };
        assert_eq!(
            record_of(ChangeOutcome::Created, &joiner),
            Record::Person { in_scope: true }
        );
        assert_eq!(
            record_of(ChangeOutcome::Updated, &disabled),
            Record::Person { in_scope: false }
        );
        assert_eq!(
            record_of(ChangeOutcome::Deleted, &leaver),
            Record::Person { in_scope: false }
        );
        assert_eq!(
            record_of(ChangeOutcome::Duplicate, &joiner),
            Record::Person { in_scope: true }
        );
        assert_eq!(record_of(ChangeOutcome::Failed, &joiner), Record::Park);
        assert_eq!(record_of(ChangeOutcome::Stale, &joiner), Record::Nothing);
        assert_eq!(record_of(ChangeOutcome::Conflict, &joiner), Record::Nothing);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_change_graph_cannot_answer_for_holds_the_cursor_three_passes_then_is_parked() {
        let mut kept = None;
        for pass in 1..=PLAN_RETRIES {
            let (later, next) = retry_plan(kept.clone(), "g1");
            assert!(later, "pass {pass} stops short");
            assert_eq!(next.as_ref().map(|r| r.passes), Some(pass));
            kept = next;
        }
        assert_eq!(retry_plan(kept.clone(), "g1"), (false, None), "then it is parked");
        // Another person's change starts its own count.
        assert_eq!(retry_plan(kept, "g2").1.map(|r| r.passes), Some(1));
    }
}
