use serde::Serialize;

/// Longest piece of a raw response body kept in an error.
const RAW_BODY_LIMIT: usize = 2048;

/// Why a flow could not reach its goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FlowError {
    /// CXone answered with a status that another try will not change.
    #[error("CXone rejected {request} with {status}{}{}", opt(" ", .scim_type), opt(": ", .detail))]
    Rejected {
        request: String,
        status: u16,
        scim_type: Option<String>,
        detail: Option<String>,
    },
    /// Every allowed try failed with a retryable status or a transport error.
    #[error("CXone still failing at {request} after {attempts} attempts: {last}")]
    RetriesExhausted {
        request: String,
        attempts: u32,
        last: String,
        last_status: Option<u16>,
    },
    /// A success status with a body that is not what SCIM promises (raw body kept, truncated).
    #[error("CXone answered {request} with {status} and an unreadable body: {reason}")]
    Unreadable {
        request: String,
        status: u16,
        reason: String,
        body: String,
    },
    /// The OAuth token could not be obtained.
    #[error("CXone authentication failed: {0}")]
    Auth(String),
    /// The host's per-invocation subrequest budget ran out before the flow finished.
    #[error("subrequest budget of {0} exhausted before CXone answered")]
    BudgetExhausted(u32),
    /// CXone's data contradicts itself (e.g. two users with one externalId).
    #[error("{0}")]
    Ambiguous(String),
}

fn opt(prefix: &str, value: &Option<String>) -> String {
    value.as_deref().map(|v| format!("{prefix}{v}")).unwrap_or_default()
}

impl FlowError {
    pub(crate) fn unreadable(request: String, status: u16, reason: impl ToString, body: &str) -> Self {
        Self::Unreadable {
            request,
            status,
            reason: reason.to_string(),
            body: crate::http::truncated(body, RAW_BODY_LIMIT),
        }
    }

    /// CXone refused the request itself (400, 404, 409, 412, 422, a redirect ...): sending it
    /// again unchanged fails the same way, so it waits for a person and a replay. Refused
    /// credentials (401, 403) and timeouts (408) are not the event's fault and stay retryable.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { status, .. } if !matches!(status, 401 | 403 | 408 | 429 | 500..))
    }

    /// The HTTP status CXone last gave, when there was one.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } | Self::Unreadable { status, .. } => Some(*status),
            Self::RetriesExhausted { last_status, .. } => *last_status,
            _ => None,
        }
    }
}
