//! Audit records: one JSON line per handled request, for the log pipeline and auditors.
//! They name the subject and the decision, never a secret, token or request body.
//!
//! Role changes also go to a tamper-evident trail ([`chain`]): each [`AuditEntry`] carries the
//! hash of the one before it, so a changed, removed or reordered entry is found by
//! [`verify_chain`]. [`notice`] turns an entry into the signed notice sent to the IAM system.

pub mod chain;
pub mod notice;
pub mod parked;
pub mod range;

pub use chain::{
    canonical_json, chain_from, chain_next, check_end, payload_sha256, verify_chain, AuditDraft, AuditEntry,
    BreakReason, ChainBreak, EndBreak, Link, Trigger, Who, GENESIS_HASH,
};
pub use notice::{NoticeType, Outbound, RoleSyncData, RoleSyncNotice, SignedNotice};
pub use parked::ParkedAudit;
pub use range::{RangeError, TimeRange};

use crate::flows::Action;
pub use crate::time::iso8601;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Duplicate,
    /// Refused before anything reached CXone (signature, input, policy, auth).
    Rejected,
    /// CXone could not be brought to the target state; recorded for replay.
    Failure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub at: String,
    pub method: String,
    pub route: String,
    pub outcome: Outcome,
    pub status: u16,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cxone_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    pub fn new(at: UnixMillis, method: &str, route: &str) -> Self {
        Self {
            at: iso8601(at),
            method: method.to_string(),
            route: route.to_string(),
            outcome: Outcome::Success,
            status: 200,
            latency_ms: 0,
            event_id: None,
            operation: None,
            subject: None,
            action: None,
            cxone_id: None,
            detail: None,
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn records_are_camel_case_and_skip_empty() {
        let mut r = AuditRecord::new(0, "POST", "/webhooks/lifecycle");
        r.action = Some(Action::Created);
        r.latency_ms = 12;
        let v: serde_json::Value = serde_json::from_str(&r.to_json_line()).unwrap();
        assert_eq!(v["latencyMs"], 12);
        assert_eq!(v["action"], "created");
        assert_eq!(v["outcome"], "success");
        assert!(v.get("eventId").is_none());
    }
}
