//! The per-person ledger's decisions: has this delivery been answered, is the event older than
//! what was applied, was the person deleted, is someone else working on them.
//!
//! The host keeps one ledger per person (a strongly consistent store: one Durable Object each)
//! and only stores and serialises; every rule is here, as plain functions over its state:
//! 1. [`decide`] when a delivery arrives (`begin`): duplicate, busy, stale, skipped, conflict, go;
//! 2. [`commit`] when the host has run the flow (or given up), to record the outcome.
//!
//! Event time is the source's (`occurredAt`, the envelope's `timestamp`), else the time the
//! ledger first saw the delivery's webhook-id, so a redelivery keeps its original place however
//! fresh its `webhook-timestamp` is.
//!
//! Two marks order events: the newest event applied (any kind), against which a joiner or mover
//! older than it is stale; and the newest event applied that decided whether the account is
//! active (a create, an update carrying `accountEnabled`, a disable, a delete), against which
//! alone a leaver is judged. An update that leaves `active` alone never makes an earlier leaver
//! stale: a department change after a termination does not undo the termination.

#[cfg(test)]
mod tests;

use crate::event::Operation;
use crate::flows::{Action, Note};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The longest a busy person makes a delivery wait before it is told to come back.
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;
/// What a lease keeps beyond the last request's timeout: the time to commit the outcome.
pub const LEASE_MARGIN_MS: u64 = 1_000;

/// What a request that may take `request_timeout_ms` needs left of its lease to start.
pub fn shortest_lease(request_timeout_ms: u64) -> u64 {
    request_timeout_ms.saturating_add(LEASE_MARGIN_MS)
}

/// The shortest lease accepted for requests that may take `request_timeout_ms`: twice that, so
/// that a flow has as long again to start its requests (one that fits no request at all would
/// hold every person and write nothing).
pub fn shortest_accepted_lease(request_timeout_ms: u64) -> u64 {
    request_timeout_ms.saturating_mul(2)
}

/// No request to CXone may start at or after this time under a lease that ends at
/// `lease_until`: one that did could still be in flight when the lease ran out, and a later
/// delivery's write could land before it.
pub fn request_deadline(lease_until: UnixMillis, request_timeout_ms: u64) -> UnixMillis {
    lease_until.saturating_sub(shortest_lease(request_timeout_ms))
}

/// An event dated further ahead of `now` than `max_future_ms`, refused before the ledger sees
/// it: as the newest mark it would make every real event after it stale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("occurredAt {at} is more than {max_future_s} s ahead of this service's clock ({now}); fix the sender's clock or time zone")]
pub struct FutureEvent {
    pub at: String,
    pub now: String,
    pub max_future_s: u64,
}

/// Whether an event's own time may be used to order it.
pub fn check_event_time(
    occurred_at: Option<UnixMillis>,
    now: UnixMillis,
    max_future_ms: u64,
) -> Result<(), FutureEvent> {
    match occurred_at {
        Some(at) if at > now.saturating_add(max_future_ms) => Err(FutureEvent {
            at: crate::time::iso8601(at),
            now: crate::time::iso8601(now),
            max_future_s: max_future_ms / 1000,
        }),
        _ => Ok(()),
    }
}

/// What the host knows about one delivery before asking the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFacts {
    pub event_id: String,
    /// SHA-256 of the signed body: one webhook-id, one body.
    pub body_digest: String,
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<UnixMillis>,
    /// An admin re-runs a delivery that failed for good (`POST /failures/{id}/replay`).
    #[serde(default)]
    pub replay: bool,
    /// The event leaves the account's `active` as it is (an update without `accountEnabled`,
    /// a role sync).
    #[serde(default)]
    pub keeps_status: bool,
}

/// An answer given to a delivery, kept so that redeliveries get it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Value,
}

impl StoredAnswer {
    pub fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn is_failure(&self) -> bool {
        self.status >= 400
    }
}

/// One webhook-id the ledger has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenDelivery {
    pub first_seen: UnixMillis,
    pub body_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
}

/// The newest event applied for the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastApplied {
    pub at: UnixMillis,
    pub operation: Operation,
    pub event_id: String,
}

/// Someone is applying an event for the person until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub holder: String,
    pub token: String,
    pub until: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastApplied>,
    /// The newest applied event that decided whether the account is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<LastApplied>,
    /// The CXone account last written for the person (none after a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// This ledger is a userName's, and the person has an externalId whose ledger keeps their
    /// events: everything for the userName is ordered there (see [`link`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
}

impl PersonState {
    /// The newest applied event that decided the account's status. A ledger written before that
    /// mark was kept has only `last`: it counts unless it was an update (which may have left
    /// `active` alone).
    pub fn status_mark(&self) -> Option<&LastApplied> {
        self.last_status
            .as_ref()
            .or_else(|| self.last.as_ref().filter(|l| l.operation != Operation::Update))
    }

    /// What this ledger ordered (marks and the account last written), for another to take in.
    pub fn marks(&self) -> Option<PersonState> {
        (self.last.is_some() || self.last_status.is_some() || self.cxone_id.is_some()).then(|| PersonState {
            last: self.last.clone(),
            last_status: self.last_status.clone(),
            cxone_id: self.cxone_id.clone(),
            ..PersonState::default()
        })
    }

    /// Deleted, and not re-created since: a tombstone.
    pub fn is_tombstoned(&self) -> bool {
        self.status_mark().is_some_and(|l| l.operation == Operation::Delete)
    }
}

/// What `begin` decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
pub enum Decision {
    /// Answered before: here is that answer.
    Duplicate { answer: StoredAnswer },
    /// Another delivery for the person is being applied; come back after this long.
    Busy { retry_after_ms: u64 },
    /// Older than what was applied; acknowledged, not applied.
    Stale { answer: StoredAnswer },
    /// Not applied because of what the ledger knows (the person was deleted).
    Skipped { answer: StoredAnswer },
    /// This webhook-id was seen with another body: refused, nothing applied.
    Conflict { detail: String },
    /// The person's events are ordered in another ledger (this one is their userName's, and
    /// they have an externalId): ask that one, handing it `carried` (what this ledger ordered
    /// before the link) and, for an event without a time of its own, `first_seen` (when this
    /// ledger first saw the delivery, so a redelivery keeps its place).
    Forward {
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carried: Option<PersonState>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_seen: Option<UnixMillis>,
    },
    /// Apply it, holding `lease`. `known_id`: the person's CXone account as last written.
    Go {
        event_time: UnixMillis,
        lease: Lease,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        known_id: Option<String>,
    },
}

impl Decision {
    /// The answer the ledger keeps for the delivery right away (stale and skipped are final).
    pub fn answer_to_keep(&self) -> Option<&StoredAnswer> {
        match self {
            Self::Stale { answer } | Self::Skipped { answer } => Some(answer),
            _ => None,
        }
    }
}

/// The ledger's rules for a delivery that arrives at `now`. `delivery` is what the ledger had
/// for its webhook-id, `None` on first sight. A `Go` holds the person for `lease_ms` under
/// `lease_token` (random, from the host).
pub fn decide(
    person: &PersonState,
    delivery: Option<&SeenDelivery>,
    facts: &EventFacts,
    now: UnixMillis,
    lease_ms: u64,
    lease_token: &str,
) -> Decision {
    if let Some(d) = delivery {
        if d.body_digest != facts.body_digest {
            return Decision::Conflict {
                detail: format!(
                    "webhook-id {:?} was first delivered with another body; a new event needs a new id",
                    facts.event_id
                ),
            };
        }
        if let Some(answer) = &d.answer {
            if !(facts.replay && answer.is_failure()) {
                return Decision::Duplicate { answer: answer.clone() };
            }
        }
    }
    if let Some(to) = &person.alias_of {
        return Decision::Forward {
            to: to.clone(),
            carried: person.marks(),
            first_seen: Some(delivery.map_or(now, |d| d.first_seen)),
        };
    }
    // The holder of a lease may ask again (a bulk run renewing its hold); anyone else waits.
    if let Some(lease) = person
        .lease
        .as_ref()
        .filter(|l| l.until > now && l.token != lease_token)
    {
        return Decision::Busy {
            retry_after_ms: (lease.until - now).min(MAX_RETRY_AFTER_MS),
        };
    }
    let event_time = facts.occurred_at.or(delivery.map(|d| d.first_seen)).unwrap_or(now);
    // A leaver is judged against what decided the status; anything else against the newest.
    let mark = if facts.operation.is_leaver() {
        person.status_mark()
    } else {
        person.last.as_ref()
    };
    if let Some(last) = mark {
        let leaver_holds = person
            .status_mark()
            .is_some_and(|s| s.at == last.at && s.operation.is_leaver())
            && !facts.operation.is_leaver();
        if event_time < last.at || (event_time == last.at && leaver_holds) {
            return Decision::Stale {
                answer: StoredAnswer::ok(json!({
                    "status": "success", "action": Action::Stale, "eventId": facts.event_id,
                    "supersededBy": last.event_id,
                })),
            };
        }
    }
    if person.is_tombstoned() && matches!(facts.operation, Operation::Update | Operation::Disable) {
        return Decision::Skipped {
            answer: StoredAnswer::ok(json!({
                "status": "success", "action": Action::Skipped, "eventId": facts.event_id,
                "note": Note::Deleted,
            })),
        };
    }
    Decision::Go {
        event_time,
        lease: Lease {
            holder: facts.event_id.clone(),
            token: lease_token.to_string(),
            until: now.saturating_add(lease_ms),
        },
        known_id: person.cxone_id.clone().filter(|_| !person.is_tombstoned()),
    }
}

/// The ledger key of a person: their externalId, else their userName (without case).
pub fn person_key(external_id: Option<&str>, user_name: &str) -> String {
    match external_id {
        Some(ext) => format!("ext:{ext}"),
        None => user_key(user_name),
    }
}

/// A person named by an externalId and a userName has their events ordered in the externalId's
/// ledger; the userName's ledger is linked to it ([`link`]) so that an event naming only the
/// userName follows. The userName's ledger key and the key it is linked to, when there is a link
/// to make.
pub fn link_of(external_id: Option<&str>, user_name: &str) -> Option<(String, String)> {
    let ext = external_id?;
    (!user_name.trim().is_empty()).then(|| (user_key(user_name), person_key(Some(ext), user_name)))
}

/// The ledger key of a userName.
pub fn user_key(user_name: &str) -> String {
    format!("user:{}", user_name.trim().to_lowercase())
}

/// A ledger key as an admin writes it (`ext:<externalId>` or `user:<userName>`), in the form
/// the ledgers are named by; `None` when it is neither.
pub fn parse_person_key(text: &str) -> Option<String> {
    if let Some(ext) = text.strip_prefix("ext:").filter(|e| !e.is_empty()) {
        return Some(person_key(Some(ext), ""));
    }
    text.strip_prefix("user:")
        .filter(|u| !u.trim().is_empty())
        .map(user_key)
}

/// What a userName's ledger answers when an event names the person's externalId too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "link")]
pub enum Link {
    /// The userName's ledger now forwards to `target`; `carried` is what it had ordered before
    /// (events that named only the userName), for the target to take in.
    Linked {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carried: Option<PersonState>,
    },
    /// An event that named only the userName is being applied; come back after this long.
    Busy { retry_after_ms: u64 },
}

/// Makes the userName's ledger `person` forward to `target` (the person's externalId ledger),
/// so that events naming only the userName and events naming the externalId are ordered in one
/// place. Returns the new state of the userName's ledger and the answer.
pub fn link(person: &PersonState, target: &str, now: UnixMillis) -> (PersonState, Link) {
    if person.alias_of.as_deref() == Some(target) {
        // Handed over every time (taking them in is idempotent): an earlier hand-over may have
        // been lost with the invocation that carried it.
        return (
            person.clone(),
            Link::Linked {
                carried: person.marks(),
            },
        );
    }
    if let Some(lease) = person.lease.as_ref().filter(|l| l.until > now) {
        let busy = Link::Busy {
            retry_after_ms: (lease.until - now).min(MAX_RETRY_AFTER_MS),
        };
        return (person.clone(), busy);
    }
    if person.alias_of.is_some() {
        // A userName another externalId had (reassigned, or a rename): its marks were that
        // person's and went to their ledger; none go to this one.
        let forwarding = PersonState {
            alias_of: Some(target.to_string()),
            ..PersonState::default()
        };
        return (forwarding, Link::Linked { carried: None });
    }
    // Its marks stay (handed over with every forward); the forward makes them unused here.
    let forwarding = PersonState {
        alias_of: Some(target.to_string()),
        lease: None,
        ..person.clone()
    };
    (
        forwarding,
        Link::Linked {
            carried: person.marks(),
        },
    )
}

/// Takes in what a userName's ledger had ordered before it was linked: each mark is the newer
/// of the two, and the account last written is kept when this ledger knows none.
pub fn absorb(person: &PersonState, carried: &PersonState) -> PersonState {
    fn newer(a: &Option<LastApplied>, b: &Option<LastApplied>) -> Option<LastApplied> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.at > x.at { y.clone() } else { x.clone() }),
            (x, y) => x.clone().or_else(|| y.clone()),
        }
    }
    let carried_status = carried.status_mark().cloned();
    PersonState {
        last: newer(&person.last, &carried.last),
        last_status: newer(&person.status_mark().cloned(), &carried_status),
        cxone_id: person.cxone_id.clone().or_else(|| carried.cxone_id.clone()),
        ..person.clone()
    }
}

/// An admin's repair of a ledger whose marks hold events back (one dated in the future by a
/// sender's clock, say): the marks go, so the next event for the person is ordered afresh. The
/// account last written stays known and a lease in force stays. A tombstone is a mark too:
/// after a reset the person is no longer taken for deleted.
pub fn reset_marks(person: &PersonState) -> PersonState {
    PersonState {
        last: None,
        last_status: None,
        ..person.clone()
    }
}

/// The audit trail's record of a reset of the ledger `key` (as [`parse_person_key`] gives it):
/// who, and a digest of the marks before and after.
pub fn reset_record(key: &str, before: &PersonState, after: &PersonState, at: UnixMillis) -> crate::audit::AuditDraft {
    use crate::audit::{payload_sha256, AuditDraft, Outcome, Trigger, Who};
    let who = Who {
        cxone_id: before.cxone_id.clone(),
        external_id: key.strip_prefix("ext:").map(str::to_string),
        user_name: key.strip_prefix("user:").map(str::to_string),
    };
    AuditDraft {
        at,
        who,
        action: Some(Action::MarksReset),
        roles_before: Vec::new(),
        roles_after: Vec::new(),
        trigger: Trigger::Admin,
        outcome: Outcome::Success,
        latency_ms: 0,
        payload_sha256: payload_sha256(&json!({"key": key, "before": before, "after": after})),
        steps: None,
    }
}

/// How a delivery that was told `Go` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Ending {
    /// CXone is in the state the event asked for.
    Applied {
        action: Action,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Answered for good without changing the person (a conflict, a permanent rejection).
    Answered,
    /// May succeed later (CXone down, budget spent): nothing kept, the sender redelivers.
    Failed,
}

/// What the host reports after running the flow for a `Go`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    pub event_id: String,
    pub lease_token: String,
    pub event_time: UnixMillis,
    pub operation: Operation,
    /// As in [`EventFacts`]: the event left `active` as it was.
    #[serde(default)]
    pub keeps_status: bool,
    pub ending: Ending,
    /// The answer to keep for the delivery (none for `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
}

/// The ledger after a commit, and which failure records it makes obsolete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub person: PersonState,
    /// Failed joiners and movers whose event time is at or before this are superseded.
    pub supersedes_up_to: Option<UnixMillis>,
    /// Failed leavers whose event time is at or before this are superseded (only by an event
    /// that decided the status).
    pub supersedes_leavers_up_to: Option<UnixMillis>,
}

/// Records how a delivery ended. The last-applied mark only moves forward, so a commit that
/// arrives after its lease expired cannot move the person back in time.
pub fn commit(person: &PersonState, c: &Commit) -> Committed {
    let mut next = person.clone();
    if next.lease.as_ref().is_some_and(|l| l.token == c.lease_token) {
        next.lease = None;
    }
    let Ending::Applied { action, id } = &c.ending else {
        return Committed {
            person: next,
            supersedes_up_to: None,
            supersedes_leavers_up_to: None,
        };
    };
    let applied = LastApplied {
        at: c.event_time,
        operation: c.operation,
        event_id: c.event_id.clone(),
    };
    let newer = next.last.as_ref().is_none_or(|l| c.event_time >= l.at);
    let status_newer = !c.keeps_status && next.status_mark().is_none_or(|l| c.event_time >= l.at);
    if status_newer {
        next.last_status = Some(applied.clone());
    }
    if newer {
        next.last = Some(applied);
    }
    match action {
        Action::Deleted if status_newer => next.cxone_id = None,
        _ if id.is_some() && (newer || status_newer) => next.cxone_id.clone_from(id),
        _ => {}
    }
    Committed {
        person: next,
        supersedes_up_to: newer.then_some(c.event_time),
        supersedes_leavers_up_to: status_newer.then_some(c.event_time),
    }
}
