//! What is kept when a change does not simply succeed: a failure (replayable) and a conflict
//! (kept for a person to resolve). Both carry the event as received.

use crate::digest::key_of;
use crate::flows::{Conflict, ConflictReason, FlowError};
use crate::scim::User;
use crate::time::iso8601;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event that could not be applied; listed by `GET /failures`, replayed by
/// `POST /failures/{id}/replay`, cleared by a later success or a newer event for the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRecord {
    /// The record's key (a hash of the webhook-id).
    pub id: String,
    pub event_id: String,
    pub subject: String,
    pub operation: String,
    /// The event time the ledger ordered it by.
    pub event_time: String,
    pub body_digest: String,
    pub first_failed_at: String,
    pub last_failed_at: String,
    pub attempts: u32,
    /// CXone refused the change itself: redeliveries are answered from the ledger until a replay.
    pub permanent: bool,
    pub error: Value,
    pub detail: String,
    /// The event as received, for replay.
    pub event: Value,
}

/// A failure to record, before the host has read the record an earlier attempt left.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureSeed {
    pub event_id: String,
    pub subject: String,
    pub operation: String,
    pub event_time: UnixMillis,
    pub body_digest: String,
    pub permanent: bool,
    pub error: Value,
    pub detail: String,
    pub event: Value,
}

impl FailureSeed {
    pub fn of(error: &FlowError) -> (bool, Value, String) {
        (
            error.is_permanent(),
            serde_json::to_value(error).unwrap_or(Value::Null),
            error.to_string(),
        )
    }

    /// The record, counting the attempts before it (`previous`: what an earlier one left).
    pub fn record(self, previous: Option<&FailureRecord>, now: UnixMillis) -> FailureRecord {
        let at = iso8601(now);
        FailureRecord {
            id: key_of(&self.event_id),
            first_failed_at: previous.map_or_else(|| at.clone(), |p| p.first_failed_at.clone()),
            last_failed_at: at,
            attempts: previous.map_or(1, |p| p.attempts.saturating_add(1)),
            event_id: self.event_id,
            subject: self.subject,
            operation: self.operation,
            event_time: iso8601(self.event_time),
            body_digest: self.body_digest,
            permanent: self.permanent,
            error: self.error,
            detail: self.detail,
            event: self.event,
        }
    }
}

/// An event whose CXone account is not provably this person's; nothing was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictRecord {
    pub id: String,
    pub event_id: String,
    pub subject: String,
    pub operation: String,
    pub reason: Value,
    pub detail: String,
    pub filter: String,
    pub detected_at: String,
    /// The event as received, beside the CXone account it collided with.
    pub event: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<User>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_accounts: Vec<User>,
}

/// What a conflict's record and answer say happened.
pub fn conflict_detail(reason: ConflictReason) -> &'static str {
    match reason {
        ConflictReason::OtherExternalId => {
            "the CXone account with this userName belongs to another externalId; nothing written"
        }
        ConflictReason::SeveralMatches => "several CXone accounts match this person; nothing written",
        ConflictReason::IncompleteAnswer => {
            "CXone counted a matching account its lookup answer did not list; nothing written"
        }
        ConflictReason::FilterIgnored => {
            "CXone answered the lookup with accounts its filter does not match; nothing written"
        }
    }
}

impl ConflictRecord {
    /// The record of `conflict` for the delivery `event_id` (a flow that reports a conflict
    /// without its details is taken as several matches: the safest reading).
    pub fn new(
        event_id: &str,
        subject: &str,
        operation: &str,
        conflict: Option<Conflict>,
        event: Value,
        now: UnixMillis,
    ) -> Self {
        let Conflict {
            reason,
            filter,
            accounts,
        } = conflict.unwrap_or(Conflict {
            reason: ConflictReason::SeveralMatches,
            filter: String::new(),
            accounts: Vec::new(),
        });
        let mut accounts = accounts.into_iter();
        Self {
            id: key_of(event_id),
            event_id: event_id.to_string(),
            subject: subject.to_string(),
            operation: operation.to_string(),
            reason: serde_json::to_value(reason).unwrap_or(Value::Null),
            detail: conflict_detail(reason).to_string(),
            filter,
            detected_at: iso8601(now),
            event,
            account: accounts.next(),
            other_accounts: accounts.collect(),
        }
    }
}
