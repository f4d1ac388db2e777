//! The one mapping from what went wrong to the HTTP answer the Worker gives: status, SCIM
//! `scimType` and detail (RFC 7644 §3.12). Routes never choose a status inline.

use crate::dry_run::DryRunError;
use crate::event::EventError;
use crate::flows::FlowError;
use crate::graph::NotifyError;
use crate::policy::RbacViolation;
use crate::scim::ScimError;
use crate::webhook::WebhookError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ApiError {
    pub status: u16,
    pub scim_type: Option<String>,
    pub detail: String,
    /// Sent as `Retry-After` (seconds) when the caller should come back.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type: scim_type.map(str::to_string),
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    pub fn bad_request(scim_type: &str, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, None, detail)
    }

    /// `path` exists, but not for this method (`allowed` is).
    pub fn method_not_allowed(path: &str, allowed: &str) -> Self {
        Self::new(405, None, format!("{path} accepts {allowed}"))
    }

    /// The request collides with what is already there (a run id reused for other input).
    pub fn conflict(scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Self::new(409, scim_type, detail)
    }

    /// A part this needs is not configured or cannot be reached.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, None, detail)
    }

    /// What a dependency answered made the work stop (CXone, the trail).
    pub fn upstream(detail: impl Into<String>) -> Self {
        Self::new(502, None, detail)
    }

    /// Something failed in this service itself; the detail is in its log, not the answer.
    pub fn internal() -> Self {
        Self::new(500, None, "internal error; see the Worker log")
    }

    pub fn too_large(max: usize) -> Self {
        Self::new(413, None, format!("body over {max} bytes"))
    }

    /// Someone else is working on this; come back in `after_ms` (rounded up to seconds).
    pub fn busy(detail: impl Into<String>, after_ms: u64) -> Self {
        Self {
            retry_after_secs: Some(after_ms.div_ceil(1000).max(1)),
            ..Self::new(503, None, detail)
        }
    }

    pub fn to_scim(&self) -> ScimError {
        ScimError::new(self.status, self.scim_type.as_deref(), self.detail.clone())
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let kind = match e {
            EventError::Json { .. } => "invalidSyntax",
            EventError::Invalid { .. } => "invalidValue",
        };
        Self::bad_request(kind, e.to_string())
    }
}

impl From<DryRunError> for ApiError {
    fn from(e: DryRunError) -> Self {
        Self::bad_request(e.scim_type(), e.to_string())
    }
}

impl From<crate::ledger::FutureEvent> for ApiError {
    fn from(e: crate::ledger::FutureEvent) -> Self {
        Self::bad_request("invalidValue", e.to_string())
    }
}

impl From<RbacViolation> for ApiError {
    fn from(e: RbacViolation) -> Self {
        Self::bad_request("invalidValue", e.to_string())
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        Self::new(401, None, format!("webhook signature rejected: {e}"))
    }
}

impl From<&NotifyError> for ApiError {
    /// A batch not from our subscriptions is refused (403); an unreadable one is the sender's
    /// problem (400); without a clientState nothing can be checked (503).
    fn from(e: &NotifyError) -> Self {
        match e {
            NotifyError::ClientState => Self::new(403, None, e.to_string()),
            NotifyError::NotConfigured => Self::new(503, None, e.to_string()),
            NotifyError::Malformed { .. } => Self::bad_request("invalidSyntax", e.to_string()),
        }
    }
}

impl From<&FlowError> for ApiError {
    /// A permanent CXone rejection is the event's problem (422, replay after fixing the cause);
    /// anything else may pass on a later try (502, or 503 when this invocation ran out).
    fn from(e: &FlowError) -> Self {
        match e {
            FlowError::Rejected { scim_type, .. } if e.is_permanent() => Self {
                scim_type: scim_type.clone(),
                ..Self::new(422, None, format!("CXone refused the change; recorded for replay: {e}"))
            },
            FlowError::Incomplete(_) => Self::new(422, Some("invalidValue"), format!("{e}; recorded for replay")),
            FlowError::BudgetExhausted(_) => Self::busy(format!("{e}; recorded for replay"), 1_000),
            _ => Self::new(
                502,
                None,
                format!("CXone did not accept the change; recorded for replay: {e}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn rejected(status: u16) -> FlowError {
        FlowError::Rejected {
            request: "POST /Users".into(),
            status,
            scim_type: Some("invalidValue".into()),
            detail: None,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn statuses_follow_the_cause() {
        assert_eq!(ApiError::from(&rejected(400)).status, 422);
        let incomplete = ApiError::from(&FlowError::Incomplete(crate::profile::MissingForCreate(vec![
            "givenName",
        ])));
        assert_eq!(
            (incomplete.status, incomplete.scim_type.as_deref()),
            (422, Some("invalidValue"))
        );
        assert!(
            incomplete.detail.starts_with("CXone needs givenName to create a user"),
            "{}",
            incomplete.detail
        );
        assert_eq!(
            ApiError::from(&rejected(400)).scim_type.as_deref(),
            Some("invalidValue")
        );
        for transient in [401, 403, 408] {
            assert_eq!(ApiError::from(&rejected(transient)).status, 502, "{transient}");
        }
        let exhausted = FlowError::RetriesExhausted {
            request: "POST /Users".into(),
            attempts: 3,
            last: "HTTP 503".into(),
            last_status: Some(503),
        };
        assert_eq!(ApiError::from(&exhausted).status, 502);
        let budget = ApiError::from(&FlowError::BudgetExhausted(40));
        assert_eq!((budget.status, budget.retry_after_secs), (503, Some(1)));
        let busy = ApiError::busy("busy", 1_001);
        assert_eq!(busy.retry_after_secs, Some(2));
        let bad = ApiError::from(EventError::Json {
            line: 1,
            column: 2,
            message: "eof".into(),
        });
        assert_eq!((bad.status, bad.scim_type.as_deref()), (400, Some("invalidSyntax")));
        assert_eq!(ApiError::from(WebhookError::MissingHeader("webhook-id")).status, 401);
        let scim = serde_json::to_value(ApiError::too_large(10).to_scim()).unwrap();
        assert_eq!(
            (scim["status"].as_str(), scim["detail"].as_str()),
            (Some("413"), Some("body over 10 bytes"))
        );
    }
}
