//! The notice HR gets once a leaver's steps have settled, signed like the webhooks we receive.
//!
//! ```json
//! {"type":"cxone.user.deprovisioned","timestamp":"2026-12-08T09:49:17.000Z",
//!  "data":{"id":"dp_…","who":{"userName":"a@x.io","externalId":"e-1","cxoneId":"…"},
//!          "mode":"deactivate","outcome":"deprovisioned","verified":true,
//!          "steps":[{"step":"deactivate","status":"done","latencyMs":40},…],
//!          "dependencies":{"skills":{"count":1,"names":["Sales EN"]},…},"licence":"not_managed",
//!          "trigger":"webhook"}}
//! ```
//!
//! The `webhook-id` is the leaver's id, the same on every retry, so that HR can drop repeats.

use super::{Dependencies, DeprovisionOutcome, Licence, Mode, Report, StepRecord};
use crate::audit::{iso8601, SignedNotice, Trigger, Who};
use crate::webhook::WebhookSecret;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

pub const NOTICE_TYPE: &str = "cxone.user.deprovisioned";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeprovisionData {
    /// The leaver's id (`POST /deprovision/{id}/replay`).
    pub id: String,
    pub who: Who,
    pub mode: Mode,
    pub outcome: DeprovisionOutcome,
    pub verified: bool,
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
    pub licence: Licence,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeprovisionNotice {
    #[serde(rename = "type")]
    pub kind: String,
    /// When the steps settled, RFC 3339.
    pub timestamp: String,
    pub data: DeprovisionData,
}

impl DeprovisionNotice {
    /// The notice of the leaver `id`, whom `who` names, as `report` says it ended.
    pub fn of(id: &str, who: Who, report: &Report, trigger: Trigger, reason: Option<String>, at: UnixMillis) -> Self {
        Self {
            kind: NOTICE_TYPE.to_string(),
            timestamp: iso8601(at),
            data: DeprovisionData {
                id: id.to_string(),
                who,
                mode: report.mode,
                outcome: report.outcome,
                verified: report.verified,
                steps: report.steps.clone(),
                dependencies: report.dependencies.clone(),
                licence: report.licence,
                trigger,
                reason,
            },
        }
    }

    /// `webhook-id`: `msg_` and the leaver's id.
    pub fn id(&self) -> String {
        format!("msg_{}", self.data.id)
    }

    pub fn sign(&self, secret: &WebhookSecret, now: UnixMillis) -> SignedNotice {
        SignedNotice::of(self.id(), serde_json::to_string(self).unwrap_or_default(), secret, now)
    }
}
