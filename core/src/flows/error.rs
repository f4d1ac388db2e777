use serde::Serialize;

/// Longest piece of a raw response body kept in an error.
const RAW_BODY_LIMIT: usize = 2048;
/// Characters of an unusable id kept in an error.
const UNUSABLE_ID_SHOWN: usize = 64;

/// Why a flow could not reach its goal. Serialised as `{"kind": "<variant>", …fields}` (the
/// one-value variants put their value under `detail`, or `budget`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// CXone answered an id that cannot address a resource (`..`, one holding `/`...): nothing
    /// is sent to a URL built from it. The id is kept escaped and shortened.
    #[error("CXone answered an unusable id {0}")]
    UnusableId(String),
    /// A create would lack what the server requires (see [`crate::profile::Capabilities`]):
    /// nothing was sent.
    #[error("{0}")]
    Incomplete(crate::profile::MissingForCreate),
    /// A leaver's write was answered, but reading the account back does not show it done.
    #[error("{0}")]
    NotConfirmed(String),
}

/// The serialised shape: an internally tagged enum of struct variants (serde cannot tag a
/// variant that holds a bare string or number).
#[derive(Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
enum Wire<'a> {
    #[serde(rename_all = "camelCase")]
    Rejected {
        request: &'a str,
        status: u16,
        scim_type: &'a Option<String>,
        detail: &'a Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    RetriesExhausted {
        request: &'a str,
        attempts: u32,
        last: &'a str,
        last_status: Option<u16>,
    },
    Unreadable {
        request: &'a str,
        status: u16,
        reason: &'a str,
        body: &'a str,
    },
    Auth {
        detail: &'a str,
    },
    BudgetExhausted {
        budget: u32,
    },
    Ambiguous {
        detail: &'a str,
    },
    UnusableId {
        id: &'a str,
    },
    Incomplete {
        missing: &'a [&'static str],
        detail: String,
    },
    NotConfirmed {
        detail: &'a str,
    },
}

impl Serialize for FlowError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Rejected {
                request,
                status,
                scim_type,
                detail,
            } => Wire::Rejected {
                request,
                status: *status,
                scim_type,
                detail,
            },
            Self::RetriesExhausted {
                request,
                attempts,
                last,
                last_status,
            } => Wire::RetriesExhausted {
                request,
                attempts: *attempts,
                last,
                last_status: *last_status,
            },
            Self::Unreadable {
                request,
                status,
                reason,
                body,
            } => Wire::Unreadable {
                request,
                status: *status,
                reason,
                body,
            },
            Self::Auth(detail) => Wire::Auth { detail },
            Self::BudgetExhausted(budget) => Wire::BudgetExhausted { budget: *budget },
            Self::Ambiguous(detail) => Wire::Ambiguous { detail },
            Self::UnusableId(id) => Wire::UnusableId { id },
            Self::Incomplete(missing) => Wire::Incomplete {
                missing: &missing.0,
                detail: missing.to_string(),
            },
            Self::NotConfirmed(detail) => Wire::NotConfirmed { detail },
        }
        .serialize(s)
    }
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

    /// An id CXone answered that [`crate::scim::is_usable_id`] refuses, as text safe to show.
    pub(crate) fn unusable_id(id: &str) -> Self {
        let shown: String = id.chars().take(UNUSABLE_ID_SHOWN).collect();
        let more = if shown.len() < id.len() { "…" } else { "" };
        Self::UnusableId(format!("{shown:?}{more}"))
    }

    /// CXone refused the request itself (400, 404, 409, 412, 422, a redirect ...): sending it
    /// again unchanged fails the same way, so it waits for a person and a replay. Refused
    /// credentials (401, 403) and timeouts (408) are not the event's fault and stay retryable.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => !matches!(status, 401 | 403 | 408 | 429 | 500..),
            // The event itself lacks what a create needs.
            Self::Incomplete(_) => true,
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn every_kind_serialises_with_its_kind() {
        let all = [
            FlowError::Rejected {
                request: "POST /Users".into(),
                status: 400,
                scim_type: Some("invalidValue".into()),
                detail: None,
            },
            FlowError::RetriesExhausted {
                request: "GET /Users".into(),
                attempts: 4,
                last: "503".into(),
                last_status: Some(503),
            },
            FlowError::unreadable("GET /Users".into(), 200, "eof", "{"),
            FlowError::Auth("401".into()),
            FlowError::BudgetExhausted(50),
            FlowError::Ambiguous("two users".into()),
            FlowError::unusable_id(".."),
            FlowError::Incomplete(crate::profile::MissingForCreate(vec!["email"])),
            FlowError::NotConfirmed("still active".into()),
        ];
        let kinds: Vec<String> = all
            .iter()
            .map(|e| serde_json::to_value(e).unwrap()["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "rejected",
                "retriesExhausted",
                "unreadable",
                "auth",
                "budgetExhausted",
                "ambiguous",
                "unusableId",
                "incomplete",
                "notConfirmed"
            ]
        );
        assert_eq!(serde_json::to_value(&all[4]).unwrap()["budget"], 50);
        assert_eq!(serde_json::to_value(&all[0]).unwrap()["scimType"], "invalidValue");
        assert_eq!(serde_json::to_value(&all[3]).unwrap()["detail"], "401");
        assert_eq!(serde_json::to_value(&all[7]).unwrap()["missing"][0], "email");
        assert!(all[7].is_permanent() && !all[8].is_permanent());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_unusable_id_is_shown_escaped_and_short() {
        assert_eq!(
            FlowError::unusable_id("..").to_string(),
            r#"CXone answered an unusable id "..""#
        );
        let e = FlowError::unusable_id("a\r\nb");
        assert_eq!(e.to_string(), r#"CXone answered an unusable id "a\r\nb""#);
        let long = FlowError::unusable_id(&"/".repeat(1000)).to_string();
        assert!(long.len() < 120 && long.ends_with('…'), "{long}");
        assert_eq!(serde_json::to_value(FlowError::unusable_id("")).unwrap()["id"], r#""""#);
        assert!(!FlowError::unusable_id(".").is_permanent());
    }
}
