//! What a leaver leaves behind besides the ledger's commit: the record a replay and an auditor
//! read (`GET /deprovision/{id}`, `POST /deprovision/{id}/replay`), and whether HR is told now.

use super::Delivery;
use crate::audit::{iso8601, Trigger, Who};
use crate::deprovision::{deprovision_id, DeprovisionNotice, DeprovisionOutcome, Options, Report};
use crate::event::LifecycleEvent;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A leaver, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaverRecord {
    pub id: String,
    pub person_key: String,
    /// The delivery that started it.
    pub event_id: String,
    /// The leaver's event with its time pinned to the one the ledger ordered it at: a replay
    /// is ordered where the leaver was, so a later joiner is never undone by it.
    pub event: Value,
    pub options: Options,
    pub trigger: Trigger,
    pub who: Who,
    pub report: Report,
    /// Runs so far (the first and each replay).
    pub runs: u32,
    /// RFC 3339, when the last run ended.
    pub at: String,
    /// What became of HR's notice (`delivered`, `parked`, `off`); absent until HR is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr: Option<Value>,
}

impl LeaverRecord {
    /// Whether HR is to be told after this run: once the steps have settled (a leaver a replay
    /// could still finish is told when it is finished), never twice, and not for a leaver held
    /// for a person or one that was already out (HR heard of it when it left).
    pub fn tell_hr(&self) -> bool {
        self.hr.is_none()
            && self.report.settled()
            && !matches!(
                self.report.outcome,
                DeprovisionOutcome::Held | DeprovisionOutcome::AlreadyDeprovisioned
            )
    }

    pub fn notice(&self, now: UnixMillis) -> DeprovisionNotice {
        DeprovisionNotice::of(
            &self.id,
            self.who.clone(),
            &self.report,
            self.trigger,
            self.options.reason.clone(),
            now,
        )
    }

    /// The delivery that replays this leaver: a new event id, the same leaver id and options,
    /// the pinned event time.
    pub fn replay_delivery(&self) -> Delivery {
        let event_id = format!("{}:replay:{}", self.event_id, self.runs);
        Delivery {
            body_digest: crate::audit::payload_sha256(&self.event),
            event_id,
            event: self.event.clone(),
            replay: false,
            trigger: Trigger::Admin,
            deprovision: Some(self.options.clone()),
            leaver_id: Some(self.id.clone()),
        }
    }
}

/// The record of a leaver's run: `event` ordered at `event_time`, `runs_before` earlier runs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_of(
    delivery: &Delivery,
    event: &LifecycleEvent,
    event_time: UnixMillis,
    options: Options,
    who: Who,
    report: Report,
    runs_before: u32,
    now: UnixMillis,
) -> LeaverRecord {
    let person_key = event.subject_key();
    let id = delivery
        .leaver_id
        .clone()
        .unwrap_or_else(|| deprovision_id(&person_key, &delivery.event_id));
    let pinned = LifecycleEvent {
        occurred_at: Some(event_time),
        ..event.clone()
    };
    // A replay finishes the leaver its first run began: that the account was already out when
    // the replay came is the first run's doing.
    let mut report = report;
    if delivery.leaver_id.is_some() && report.outcome == DeprovisionOutcome::AlreadyDeprovisioned {
        report.outcome = DeprovisionOutcome::Deprovisioned;
    }
    LeaverRecord {
        id,
        person_key,
        event_id: delivery
            .event_id
            .split(":replay:")
            .next()
            .unwrap_or_default()
            .to_string(),
        event: serde_json::to_value(&pinned).unwrap_or(Value::Null),
        options,
        trigger: delivery.trigger,
        who,
        report,
        runs: runs_before + 1,
        at: iso8601(now),
        hr: None,
    }
}
