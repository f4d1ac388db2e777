//! The notice sent to the IAM system after a role sync, signed like the webhooks it sends us.
//!
//! ```json
//! {"type":"cxone.role.sync.succeeded","timestamp":"2026-11-22T09:49:17.000Z",
//!  "data":{"who":{"userName":"a@x.io"},"rolesBefore":["Agent"],"rolesAfter":["Supervisor"],
//!          "trigger":"role_sync","outcome":"success","auditSeq":7,"auditHash":"…"}}
//! ```
//!
//! Delivered with the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) made by [`crate::webhook::sign`], the function whose counterpart
//! [`crate::webhook::verify`] checks inbound deliveries.

use super::chain::{AuditEntry, Trigger, Who};
use super::Outcome;
use crate::webhook::{sign, WebhookSecret};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeType {
    #[serde(rename = "cxone.role.sync.succeeded")]
    Succeeded,
    #[serde(rename = "cxone.role.sync.failed")]
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleSyncData {
    pub who: Who,
    pub roles_before: Vec<String>,
    pub roles_after: Vec<String>,
    pub trigger: Trigger,
    pub outcome: Outcome,
    /// Why it failed, in words (never a secret or a request body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The audit entry this notice reports, so the receiver can match it to the trail.
    pub audit_seq: u64,
    pub audit_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSyncNotice {
    #[serde(rename = "type")]
    pub kind: NoticeType,
    /// When the change happened (the entry's `at`), RFC 3339.
    pub timestamp: String,
    pub data: RoleSyncData,
}

/// A notice ready to send: the exact body that was signed and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNotice {
    pub id: String,
    /// `webhook-timestamp`: seconds since the Unix epoch, when it is sent.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64>`.
    pub signature: String,
    pub body: String,
}

impl RoleSyncNotice {
    /// The notice for an audit entry: `succeeded` for a success (or a duplicate, already in
    /// place), `failed` for a refusal or a failure.
    pub fn from_entry(entry: &AuditEntry, reason: Option<String>) -> Self {
        let kind = match entry.outcome {
            Outcome::Success | Outcome::Duplicate => NoticeType::Succeeded,
            Outcome::Rejected | Outcome::Failure => NoticeType::Failed,
        };
        Self {
            kind,
            timestamp: entry.at.clone(),
            data: RoleSyncData {
                who: entry.who.clone(),
                roles_before: entry.roles_before.clone(),
                roles_after: entry.roles_after.clone(),
                trigger: entry.trigger,
                outcome: entry.outcome,
                reason,
                audit_seq: entry.seq,
                audit_hash: entry.hash.clone(),
            },
        }
    }

    /// `webhook-id`: `msg_` and 128 bits of the audit hash, the same on every retry of the
    /// same notice so that the receiver can drop repeats.
    pub fn id(&self) -> String {
        let hash = &self.data.audit_hash;
        format!("msg_{}", hash.get(..32).unwrap_or(hash))
    }

    /// Serializes and signs the notice; `now` is the host's clock at sending.
    pub fn sign(&self, secret: &WebhookSecret, now: UnixMillis) -> SignedNotice {
        SignedNotice::of(self.id(), serde_json::to_string(self).unwrap_or_default(), secret, now)
    }
}

/// A notice cxone-scim sends out: to the IAM system after a role sync, to HR after a leaver.
/// Read back (from where an undeliverable one is parked) by its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outbound {
    RoleSync(RoleSyncNotice),
    Leaver(crate::deprovision::DeprovisionNotice),
}

impl Outbound {
    /// `webhook-id`, the same on every retry.
    pub fn id(&self) -> String {
        match self {
            Self::RoleSync(n) => n.id(),
            Self::Leaver(n) => n.id(),
        }
    }

    pub fn sign(&self, secret: &WebhookSecret, now: UnixMillis) -> SignedNotice {
        match self {
            Self::RoleSync(n) => n.sign(secret, now),
            Self::Leaver(n) => n.sign(secret, now),
        }
    }
}

impl SignedNotice {
    /// `body` signed as the message `id`, sent at `now`.
    pub fn of(id: String, body: String, secret: &WebhookSecret, now: UnixMillis) -> Self {
        let timestamp = i64::try_from(now / 1000).unwrap_or(i64::MAX);
        let signature = sign(secret, &id, timestamp, body.as_bytes());
        Self {
            id,
            timestamp,
            signature,
            body,
        }
    }

    /// The request headers, `content-type` included.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            ("content-type", "application/json".to_string()),
            ("webhook-id", self.id.clone()),
            ("webhook-timestamp", self.timestamp.to_string()),
            ("webhook-signature", self.signature.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{chain_next, payload_sha256, AuditDraft};
    use crate::flows::Action;
    use crate::webhook::{verify, SignatureHeaders, WebhookError, WebhookSecrets};
    use serde_json::{json, Value};
    use wasm_bindgen_test::wasm_bindgen_test;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const AT: UnixMillis = 1_795_340_957_000;

    fn entry(outcome: Outcome) -> AuditEntry {
        chain_next(
            None,
            AuditDraft {
                at: AT,
                who: Who {
                    cxone_id: Some("u-1".into()),
                    user_name: Some("a@x.io".into()),
                    ..Who::default()
                },
                action: Some(Action::Updated),
                roles_before: vec!["Agent".into()],
                roles_after: vec!["Supervisor".into()],
                trigger: Trigger::RoleSync,
                outcome,
                latency_ms: 12,
                payload_sha256: payload_sha256(&json!({})),
                steps: None,
            },
        )
    }

    fn headers(signed: &SignedNotice) -> (String, String, String) {
        let [_, (_, id), (_, ts), (_, sig)] = signed.headers();
        (id, ts, sig)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn notice_shape() {
        let e = entry(Outcome::Success);
        let v = serde_json::to_value(RoleSyncNotice::from_entry(&e, None)).unwrap();
        assert_eq!(v["type"], "cxone.role.sync.succeeded");
        assert_eq!(v["timestamp"], "2026-11-22T09:49:17.000Z");
        assert_eq!(
            v["data"],
            json!({"who":{"cxoneId":"u-1","userName":"a@x.io"},"rolesBefore":["Agent"],
                   "rolesAfter":["Supervisor"],"trigger":"role_sync","outcome":"success",
                   "auditSeq":1,"auditHash":e.hash})
        );
        let failed = RoleSyncNotice::from_entry(&entry(Outcome::Rejected), Some("escalation: Admin".into()));
        let v = serde_json::to_value(&failed).unwrap();
        assert_eq!(v["type"], "cxone.role.sync.failed");
        assert_eq!(v["data"]["reason"], "escalation: Admin");
        assert_eq!(
            RoleSyncNotice::from_entry(&entry(Outcome::Failure), None).kind,
            NoticeType::Failed
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_signed_notice_verifies_with_the_inbound_check() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let notice = RoleSyncNotice::from_entry(&entry(Outcome::Success), None);
        let now = AT + 2_500;
        let signed = notice.sign(&secret, now);
        let (id, ts, sig) = headers(&signed);
        assert_eq!(id, notice.id());
        assert_eq!(id.len(), 4 + 32);
        assert_eq!(ts, "1795340959");
        let secrets = WebhookSecrets::from(secret.clone());
        let h = SignatureHeaders {
            id: Some(&id),
            timestamp: Some(&ts),
            signature: Some(&sig),
        };
        let ok = verify(&secrets, h, signed.body.as_bytes(), 1_795_340_960).unwrap();
        assert_eq!(ok.id, id);
        let back: RoleSyncNotice = serde_json::from_str(&signed.body).unwrap();
        assert_eq!(back, notice);
        // A changed body, or another key, does not verify.
        let tampered = signed.body.replace("Supervisor", "Admin");
        assert_ne!(tampered, signed.body);
        assert_eq!(
            verify(&secrets, h, tampered.as_bytes(), 1_795_340_960),
            Err(WebhookError::NoMatchingSignature)
        );
        let other = WebhookSecrets::from(WebhookSecret::from_bytes(vec![9; 32]));
        assert_eq!(
            verify(&other, h, signed.body.as_bytes(), 1_795_340_960),
            Err(WebhookError::NoMatchingSignature)
        );
        // The same notice signs to the same id and body on a retry; only the time moves.
        let retry = notice.sign(&secret, now + 60_000);
        assert_eq!(
            (retry.id.as_str(), retry.body.as_str()),
            (id.as_str(), signed.body.as_str())
        );
        assert_ne!(retry.signature, signed.signature);
        let v: Value = serde_json::from_str(&signed.body).unwrap();
        assert_eq!(v["data"]["auditSeq"], 1);
    }
}
