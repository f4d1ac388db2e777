//! Reading a Bulk answer: HTTP 200 (what servers send) or 207 (what some documents describe),
//! results correlated to their operations by `bulkId`, by position only when the server
//! leaves bulkIds out.

use crate::http::HttpResponse;
use crate::retry::is_retryable_status;
use crate::scim::{lenient, ScimError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// The answer as read for correlation: strings borrowed from the body where they can be, error
/// bodies left unparsed until an operation turns out to have failed.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "Operations", default, borrow)]
    operations: Vec<AnswerOp<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerOp<'a> {
    #[serde(default, borrow)]
    bulk_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    location: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient::status")]
    status: u16,
    #[serde(default, borrow)]
    response: Option<&'a RawValue>,
}

impl AnswerOp<'_> {
    /// The resource id: `response.id`, else the last segment of `location`.
    fn resource_id(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Id {
            id: Option<String>,
        }
        self.response
            .and_then(|r| serde_json::from_str::<Id>(r.get()).ok())
            .and_then(|r| r.id)
            .or_else(|| {
                let loc = self.location.as_deref()?.trim_end_matches('/');
                loc.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string)
            })
    }
}

const RAW_BODY_LIMIT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkResponseError {
    #[error("Bulk answered {status}")]
    Status { status: u16, body: String },
    #[error("Bulk response unreadable: {reason}")]
    Malformed { reason: String, body: String },
}

fn keep(body: &str) -> String {
    crate::http::truncated(body, RAW_BODY_LIMIT)
}

/// What one operation's result means for the user behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum OpResult {
    /// 201 (create) or 200/204 (update).
    Applied { status: u16, id: Option<String> },
    /// 409 on a create: the user exists already.
    Conflict,
    /// 429 or 5xx: worth another try.
    Retryable { status: u16 },
    /// Any other failure: another try will not help.
    Permanent {
        status: u16,
        scim_type: Option<String>,
        detail: Option<String>,
    },
    /// The server said nothing about this operation (stopped early, truncated answer).
    Missing,
}

fn classify(r: &AnswerOp<'_>) -> OpResult {
    match r.status {
        200..=299 => OpResult::Applied {
            status: r.status,
            id: r.resource_id(),
        },
        409 => OpResult::Conflict,
        s if is_retryable_status(s) => OpResult::Retryable { status: s },
        s => {
            let err = r.response.and_then(|v| serde_json::from_str::<ScimError>(v.get()).ok());
            OpResult::Permanent {
                status: s,
                scim_type: err.as_ref().and_then(|e| e.scim_type.clone()),
                detail: err.and_then(|e| e.detail),
            }
        }
    }
}

/// Parses a Bulk answer and returns one result per sent bulkId, in the order they were sent.
pub fn correlate(resp: &HttpResponse, sent_bulk_ids: &[String]) -> Result<Vec<OpResult>, BulkResponseError> {
    if resp.status != 200 && resp.status != 207 {
        return Err(BulkResponseError::Status {
            status: resp.status,
            body: keep(&resp.body),
        });
    }
    let parsed: Answer<'_> = serde_json::from_str(&resp.body).map_err(|e| BulkResponseError::Malformed {
        reason: e.to_string(),
        body: keep(&resp.body),
    })?;
    if parsed.operations.len() > sent_bulk_ids.len() {
        return Err(BulkResponseError::Malformed {
            reason: format!(
                "{} results for {} operations",
                parsed.operations.len(),
                sent_bulk_ids.len()
            ),
            body: keep(&resp.body),
        });
    }
    let with_ids = parsed.operations.iter().filter(|o| o.bulk_id.is_some()).count();
    if with_ids == 0 {
        // No bulkIds: RFC 7644 keeps results in request order; a shorter list means the
        // server stopped, so the tail is missing.
        let mut out: Vec<OpResult> = parsed.operations.iter().map(classify).collect();
        out.resize(sent_bulk_ids.len(), OpResult::Missing);
        return Ok(out);
    }
    let mut by_id: HashMap<&str, &AnswerOp<'_>> = HashMap::new();
    for op in &parsed.operations {
        let Some(id) = op.bulk_id.as_deref() else {
            return Err(BulkResponseError::Malformed {
                reason: "some results carry a bulkId and some do not".into(),
                body: keep(&resp.body),
            });
        };
        if by_id.insert(id, op).is_some() {
            return Err(BulkResponseError::Malformed {
                reason: format!("bulkId {id:?} answered twice"),
                body: keep(&resp.body),
            });
        }
    }
    if let Some(unknown) = by_id.keys().find(|k| !sent_bulk_ids.iter().any(|s| s == *k)) {
        return Err(BulkResponseError::Malformed {
            reason: format!("unknown bulkId {unknown:?}"),
            body: keep(&resp.body),
        });
    }
    Ok(sent_bulk_ids
        .iter()
        .map(|id| by_id.get(id.as_str()).map_or(OpResult::Missing, |r| classify(r)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u-{i}")).collect()
    }

    const MIXED: &str = include_str!("../../tests/fixtures/standin_bulk_200_mixed.json");
    const OUT_OF_ORDER_207: &str = include_str!("../../tests/fixtures/bulk_207_out_of_order.json");

    fn kinds(results: &[OpResult]) -> Vec<&'static str> {
        results
            .iter()
            .map(|r| match r {
                OpResult::Applied { .. } => "applied",
                OpResult::Conflict => "conflict",
                OpResult::Retryable { .. } => "retry",
                OpResult::Permanent { .. } => "permanent",
                OpResult::Missing => "missing",
            })
            .collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn correlates_a_200_answer_and_keeps_scim_error_fields() {
        let r = correlate(&HttpResponse::new(200, MIXED), &ids(4)).unwrap();
        assert_eq!(kinds(&r), ["applied", "conflict", "permanent", "applied"]);
        let OpResult::Permanent {
            status,
            scim_type,
            detail,
        } = &r[2]
        else {
            panic!()
        };
        assert_eq!((*status, scim_type.as_deref()), (400, Some("invalidValue")));
        assert!(detail.as_deref().unwrap().contains("active"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_207_out_of_order_is_correlated_by_bulk_id_not_position() {
        let in_order = correlate(&HttpResponse::new(200, MIXED), &ids(4)).unwrap();
        let reversed = correlate(&HttpResponse::new(207, OUT_OF_ORDER_207), &ids(4)).unwrap();
        assert_eq!(in_order, reversed);
        // Slicing by success count (the old way) would have blamed u-0 and u-1.
        assert_eq!(kinds(&reversed)[..2], ["applied", "conflict"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn operations_the_server_skipped_are_missing() {
        let body = include_str!("../../tests/fixtures/standin_bulk_200_stopped_early.json");
        let r = correlate(&HttpResponse::new(200, body), &["b1".into(), "b2".into(), "b3".into()]).unwrap();
        assert_eq!(kinds(&r), ["applied", "conflict", "missing"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn without_bulk_ids_position_is_used_and_statuses_may_be_numbers() {
        let body = r#"{"Operations":[{"status":201,"location":"https://x/Users/a1"},{"status":"503"}]}"#;
        let r = correlate(&HttpResponse::new(200, body), &ids(3)).unwrap();
        assert_eq!(
            r[0],
            OpResult::Applied {
                status: 201,
                id: Some("a1".into())
            }
        );
        assert_eq!(r[1], OpResult::Retryable { status: 503 });
        assert_eq!(r[2], OpResult::Missing);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_and_truncated_answers_keep_the_body() {
        let truncated = &MIXED[..MIXED.len() / 2];
        let e = correlate(&HttpResponse::new(200, truncated), &ids(4)).unwrap_err();
        let BulkResponseError::Malformed { body, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(body, truncated);
        let e = correlate(&HttpResponse::new(200, MIXED), &ids(2)).unwrap_err();
        assert!(
            e.to_string().contains("4 results for 2 operations") || e.to_string().contains("unknown bulkId"),
            "{e}"
        );
        let twice = r#"{"Operations":[{"bulkId":"u-0","status":"201"},{"bulkId":"u-0","status":"201"}]}"#;
        assert!(correlate(&HttpResponse::new(200, twice), &ids(2))
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let e = correlate(&HttpResponse::new(413, "too big"), &ids(2)).unwrap_err();
        assert_eq!(
            e,
            BulkResponseError::Status {
                status: 413,
                body: "too big".into()
            }
        );
    }
}
