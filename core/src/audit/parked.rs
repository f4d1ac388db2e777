//! Audit drafts the trail could not take when their write happened, kept for replay.
//!
//! The write they describe has happened, so losing them would leave a change with no record.
//! A parked batch is appended later, as it was: the entries keep the time of the write in
//! `at`, and join the chain where they are appended. Ids sort by parking time, so replaying in
//! key order keeps the batches in the order their writes happened; the trail takes a batch id
//! once only, so a replay whose answer was lost cannot add the batch twice.

use super::AuditDraft;
use crate::digest::sha256_hex;
use crate::time::iso8601;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// A batch of drafts waiting for the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedAudit {
    pub id: String,
    pub drafts: Vec<AuditDraft>,
    /// When the first append failed (RFC 3339).
    pub parked_at: String,
    /// Appends tried so far, the first one included.
    pub attempts: u32,
    /// Why the last one failed.
    pub error: String,
}

impl ParkedAudit {
    /// The drafts of an append that failed at `now` with `error`.
    pub fn new(drafts: Vec<AuditDraft>, error: impl Into<String>, now: UnixMillis) -> Self {
        Self {
            id: parked_id(now, &drafts),
            drafts,
            parked_at: iso8601(now),
            attempts: 1,
            error: error.into(),
        }
    }

    /// The same batch after another append failed.
    pub fn failed_again(self, error: impl Into<String>) -> Self {
        Self {
            attempts: self.attempts.saturating_add(1),
            error: error.into(),
            ..self
        }
    }
}

/// `{ms, 13 digits}-{16 hex digits of the drafts' digest}`: sorts by parking time (until the
/// year 2286), and tells batches parked in the same millisecond apart.
pub fn parked_id(now: UnixMillis, drafts: &[AuditDraft]) -> String {
    let digest = serde_json::to_string(drafts)
        .map(|text| sha256_hex(text.as_bytes()))
        .unwrap_or_default();
    format!("{now:013}-{}", digest.get(..16).unwrap_or("0000000000000000"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, Trigger, Who};

    fn draft(ext: &str, at: UnixMillis) -> AuditDraft {
        AuditDraft {
            at,
            who: Who {
                cxone_id: Some(format!("c-{ext}")),
                external_id: Some(ext.to_string()),
                user_name: None,
            },
            action: Some(crate::flows::Action::Created),
            roles_before: vec![],
            roles_after: vec!["Agent".into()],
            trigger: Trigger::Webhook,
            outcome: Outcome::Success,
            latency_ms: 12,
            payload_sha256: "ab".repeat(32),
            steps: None,
        }
    }

    #[test]
    fn ids_sort_by_parking_time_across_digit_counts() {
        let early = parked_id(999_999_999_999, &[draft("a", 1)]);
        let late = parked_id(1_000_000_000_000, &[draft("a", 1)]);
        let later = parked_id(1_764_000_000_000, &[draft("a", 1)]);
        assert!(early < late && late < later, "{early} {late} {later}");
        assert_eq!(later.len(), 13 + 1 + 16);
    }

    #[test]
    fn batches_parked_in_one_millisecond_get_their_own_ids() {
        let now = 1_764_000_000_000;
        assert_ne!(parked_id(now, &[draft("a", 1)]), parked_id(now, &[draft("b", 1)]));
        assert_eq!(parked_id(now, &[draft("a", 1)]), parked_id(now, &[draft("a", 1)]));
    }

    #[test]
    fn a_batch_keeps_its_id_and_drafts_and_counts_failures() {
        let parked = ParkedAudit::new(
            vec![draft("a", 5), draft("b", 6)],
            "trail answered 503",
            1_764_000_000_000,
        );
        assert_eq!(parked.parked_at, "2025-11-24T16:00:00.000Z");
        assert_eq!(parked.attempts, 1);
        let again = parked.clone().failed_again("trail answered 500");
        assert_eq!(
            (again.id.as_str(), again.attempts, again.error.as_str()),
            (parked.id.as_str(), 2, "trail answered 500")
        );
        assert_eq!(again.drafts, parked.drafts);
        // What KV keeps reads back as it was (no field lost on the way).
        let text = serde_json::to_string(&again).unwrap_or_default();
        let back: Result<ParkedAudit, _> = serde_json::from_str(&text);
        assert_eq!(back.ok(), Some(again));
    }
}
