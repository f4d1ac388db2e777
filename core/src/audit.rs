//! Audit records: one JSON line per handled request, for the log pipeline and auditors.
//! They name the subject and the decision, never a secret, token or request body.

use crate::flows::Action;
use crate::UnixMillis;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in milliseconds.
pub fn iso8601(ms: UnixMillis) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn formats_times() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_340_957_000), "2026-11-22T09:49:17.000Z");
    }

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
