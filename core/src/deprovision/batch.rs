//! A batch of leavers (`POST /deprovision` with `{"requests":[…]}`, up to 1,000): each one the
//! same leaver as a single request, through its person's ledger, run slice by slice in an object
//! with progress. A batch larger than the deletion guard allows is held until a person approves
//! it (a wrong export must not empty the contact centre).

use super::{DeprovisionRequest, Options};
use crate::apply::{ApplyAnswer, Delivery, Settled};
use crate::audit::{payload_sha256, Trigger};
use crate::event::LifecycleEvent;
use crate::graph::DeletionThreshold;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

impl DeprovisionRequest {
    /// The leaver as the person's ledger takes it: an event ordered at `at`, under `event_id`
    /// (a batch row's id is fixed, so a slice run twice finds it answered), with its options.
    pub fn delivery(&self, event_id: String, at: UnixMillis, trigger: Trigger) -> (LifecycleEvent, Delivery) {
        let event = LifecycleEvent {
            operation: self.options.mode.operation(),
            user_name: self.lookup.user_name.clone().unwrap_or_default(),
            external_id: self.lookup.external_id.clone(),
            occurred_at: Some(at),
            ..LifecycleEvent::default()
        };
        let body = serde_json::to_value(&event).unwrap_or(Value::Null);
        let delivery = Delivery {
            event_id,
            body_digest: payload_sha256(&body),
            event: body,
            replay: false,
            trigger,
            deprovision: Some(self.options.clone()),
            leaver_id: None,
        };
        (event, delivery)
    }
}

/// One leaver of a batch, as kept in its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub options: Options,
}

impl BatchRow {
    pub fn of(request: &DeprovisionRequest) -> Self {
        Self {
            external_id: request.lookup.external_id.clone(),
            user_name: request.lookup.user_name.clone(),
            options: request.options.clone(),
        }
    }

    pub fn request(&self) -> DeprovisionRequest {
        DeprovisionRequest {
            lookup: crate::event::Lookup {
                user_name: self.user_name.clone(),
                external_id: self.external_id.clone(),
                cxone_id: None,
            },
            options: self.options.clone(),
        }
    }
}

/// How one leaver of a batch ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowResult {
    pub status: u16,
    /// The leaver's outcome (`failed` when it did not run to a report).
    pub outcome: String,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl RowResult {
    /// What a leaver's answer says of it; `None` when it is not done (the person was busy, the
    /// slice ran out of requests): it stays for the next slice.
    pub fn of(answer: &ApplyAnswer) -> Option<Self> {
        if answer.settled == Settled::Later {
            return None;
        }
        let report = &answer.body["deprovision"];
        let outcome = match report.get("outcome").and_then(Value::as_str) {
            Some(o) => o.to_string(),
            None if answer.settled == Settled::Duplicate => "duplicate".to_string(),
            None if (200..300).contains(&answer.status) => answer
                .action
                .and_then(|a| serde_json::to_value(a).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "done".into()),
            None => "failed".to_string(),
        };
        Some(Self {
            status: answer.status,
            outcome,
            verified: report.get("verified").and_then(Value::as_bool).unwrap_or(false),
            deprovision_id: report.get("id").and_then(Value::as_str).map(str::to_string),
            detail: answer.detail.clone(),
        })
    }
}

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Larger than the deletion guard allows: waits for approval.
    Held,
    Running,
    Done,
    /// A person rejected it: nothing was run.
    Rejected,
}

impl BatchState {
    /// A new batch of `count` leavers: held when the guard says so.
    pub fn start(count: usize, threshold: &DeletionThreshold) -> Self {
        // A share of "the people in scope" means nothing for a list someone sent: 0 in scope,
        // so any share holds every batch (when in doubt, a person decides).
        if threshold.holds(count, 0) {
            Self::Held
        } else {
            Self::Running
        }
    }
}

/// A batch's progress: how many, and how each ended so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchProgress {
    pub id: String,
    pub state: BatchState,
    pub total: usize,
    pub done: usize,
    pub verified: usize,
    /// By outcome (`deprovisioned`, `already_deprovisioned`, `held`, `unverified`, `not_found`,
    /// `conflict`, `failed`, …).
    pub outcomes: BTreeMap<String, usize>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

impl BatchProgress {
    /// The progress of batch `id` from its rows' results so far.
    pub fn of<'a>(
        id: &str,
        state: BatchState,
        total: usize,
        results: impl IntoIterator<Item = &'a RowResult>,
        created_at: String,
        finished_at: Option<String>,
    ) -> Self {
        let mut outcomes = BTreeMap::new();
        let (mut done, mut verified) = (0, 0);
        for r in results {
            done += 1;
            verified += usize::from(r.verified);
            *outcomes.entry(r.outcome.clone()).or_insert(0) += 1;
        }
        let state = if state == BatchState::Running && done == total {
            BatchState::Done
        } else {
            state
        };
        Self {
            id: id.to_string(),
            state,
            total,
            done,
            verified,
            outcomes,
            created_at,
            finished_at,
        }
    }
}

/// The event id of row `index` of batch `id`.
pub fn row_event_id(batch_id: &str, index: usize) -> String {
    format!("{batch_id}-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyAnswer;
    use crate::audit::Outcome;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn answer(status: u16, settled: Settled, body: Value) -> ApplyAnswer {
        ApplyAnswer {
            status,
            body,
            retry_after_secs: None,
            settled,
            outcome: Outcome::Success,
            action: None,
            cxone_id: None,
            detail: None,
            used: 0,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rows_read_their_answers_and_busy_ones_wait() {
        let done = answer(
            200,
            Settled::Done(crate::flows::Action::Disabled),
            json!({"deprovision": {"id": "dp_1", "outcome": "deprovisioned", "verified": true}}),
        );
        let r = RowResult::of(&done).unwrap();
        assert_eq!(
            (r.outcome.as_str(), r.verified, r.deprovision_id.as_deref()),
            ("deprovisioned", true, Some("dp_1"))
        );
        assert_eq!(
            RowResult::of(&ApplyAnswer::busy(500)),
            None,
            "busy: the next slice takes it"
        );
        let failed = RowResult::of(&answer(502, Settled::Failed, json!({"status": "502"}))).unwrap();
        assert_eq!((failed.outcome.as_str(), failed.verified), ("failed", false));
        let progress = BatchProgress::of("lb_1", BatchState::Running, 3, [&r, &failed], "t".into(), None);
        assert_eq!(
            (progress.state, progress.done, progress.verified),
            (BatchState::Running, 2, 1)
        );
        assert_eq!(progress.outcomes["failed"], 1);
        let finished = BatchProgress::of("lb_1", BatchState::Running, 2, [&r, &r], "t".into(), None);
        assert_eq!(
            (finished.state, finished.done, finished.verified),
            (BatchState::Done, 2, 2)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_deletion_guard_holds_large_batches_and_any_share() {
        assert_eq!(
            BatchState::start(25, &DeletionThreshold::Count(25)),
            BatchState::Running
        );
        assert_eq!(BatchState::start(26, &DeletionThreshold::Count(25)), BatchState::Held);
        assert_eq!(
            BatchState::start(1, &DeletionThreshold::PerMille(100)),
            BatchState::Held
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_row_is_the_same_leaver_as_a_single_request_under_a_fixed_id() {
        let batch = super::super::DeprovisionBatch::parse(
            br#"{"requests":[{"userName":"a@x.io","mode":"delete","reason":"left"}]}"#,
        )
        .unwrap();
        let row = BatchRow::of(&batch.requests[0]);
        assert_eq!(row.request(), batch.requests[0]);
        let (event, delivery) = row.request().delivery(row_event_id("lb_1", 0), 1_000, Trigger::Admin);
        assert_eq!(event.operation, crate::event::Operation::Delete);
        assert_eq!(delivery.event_id, "lb_1-0");
        assert_eq!(delivery.deprovision.as_ref().unwrap().reason.as_deref(), Some("left"));
        let again = row.request().delivery(row_event_id("lb_1", 0), 1_000, Trigger::Admin).1;
        assert_eq!(
            again.body_digest, delivery.body_digest,
            "a slice run twice is a duplicate"
        );
    }
}
