//! Reading a Bulk answer: HTTP 200 (what servers send) or 207 (what some documents describe),
//! each result attributed to the operation it answers.
//!
//! RFC 7644 §3.7.3 requires `bulkId` in a result only for POST, so a PATCH, PUT or DELETE result
//! may come back without one. A result is attributed by its bulkId, else by its method and
//! `location`, else by position where the pairing is unambiguous. An operation no result can be
//! attributed to with certainty is [`OpResult::Unknown`], never guessed.

use crate::http::{HttpResponse, Method};
use crate::retry::is_retryable_status;
use crate::scim::{lenient, ScimError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// One operation as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentOp {
    pub bulk_id: String,
    pub method: Method,
    /// As sent: `/Users`, or `/Users/{id}` with the id percent-encoded.
    pub path: String,
}

impl SentOp {
    /// The resource a PATCH, PUT or DELETE addresses: its path's last segment, decoded. A POST
    /// addresses a resource that does not exist yet.
    fn target(&self) -> Option<Cow<'_, str>> {
        match self.method {
            Method::Patch | Method::Put | Method::Delete => last_segment(&self.path).map(percent_decoded),
            Method::Get | Method::Post => None,
        }
    }
}

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
    method: Option<Cow<'a, str>>,
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

    /// The result does not name another method (a result without `method` agrees with any).
    fn method_agrees(&self, method: Method) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.trim().eq_ignore_ascii_case(method.as_str()))
    }

    /// The last segment of `location`, decoded.
    fn located(&self) -> Option<Cow<'_, str>> {
        self.location.as_deref().and_then(last_segment).map(percent_decoded)
    }

    /// Nothing in the result says it answers another operation than `op`: same method, and for
    /// an operation on an existing resource, no `location` pointing elsewhere.
    fn fits(&self, op: &SentOp) -> bool {
        self.method_agrees(op.method)
            && match (op.target(), self.located()) {
                (Some(target), Some(located)) => target == located,
                _ => true,
            }
    }
}

/// The last non-empty path segment of a path or URL (query and fragment left out).
fn last_segment(path: &str) -> Option<&str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty())
}

/// `%XX` sequences decoded; anything else (a stray `%`, invalid UTF-8) kept as it reads.
fn percent_decoded(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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
    /// The server returned fewer results than operations and every result it returned is
    /// accounted for: it stopped early, this operation was not processed.
    Missing,
    /// The server answered, but no result can be attributed to this operation with certainty:
    /// read the resource before deciding to re-send.
    Unknown,
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

/// Which result answers which sent operation.
struct Matching {
    /// Per sent operation: the index of its result.
    answer: Vec<Option<usize>>,
    /// Per result: attributed to an operation.
    used: Vec<bool>,
}

impl Matching {
    fn new(ops: usize, results: usize) -> Self {
        Self {
            answer: vec![None; ops],
            used: vec![false; results],
        }
    }

    fn pair(&mut self, op: usize, result: usize) {
        if let (Some(a), Some(u)) = (self.answer.get_mut(op), self.used.get_mut(result)) {
            *a = Some(result);
            *u = true;
        }
    }

    fn open_ops(&self) -> impl Iterator<Item = usize> + '_ {
        self.answer
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_none())
            .map(|(i, _)| i)
    }

    fn open_results(&self) -> impl Iterator<Item = usize> + '_ {
        self.used.iter().enumerate().filter(|(_, u)| !**u).map(|(i, _)| i)
    }
}

/// Rule 1: a bulkId sent once and answered once attributes its result. A bulkId never sent, or
/// answered twice, attributes nothing (and its results are not attributed by the other rules
/// either: they claim to answer something else).
fn match_by_bulk_id(sent: &[SentOp], results: &[AnswerOp<'_>], m: &mut Matching) {
    let mut sent_at: HashMap<&str, Option<usize>> = HashMap::with_capacity(sent.len());
    for (i, op) in sent.iter().enumerate() {
        sent_at
            .entry(op.bulk_id.as_str())
            .and_modify(|at| *at = None)
            .or_insert(Some(i));
    }
    let mut answered: HashMap<&str, usize> = HashMap::with_capacity(results.len());
    for id in results.iter().filter_map(|r| r.bulk_id.as_deref()) {
        *answered.entry(id).or_default() += 1;
    }
    for (r, res) in results.iter().enumerate() {
        let Some(id) = res.bulk_id.as_deref() else { continue };
        if answered.get(id) == Some(&1) {
            if let Some(&Some(op)) = sent_at.get(id) {
                m.pair(op, r);
            }
        }
    }
}

/// Rule 2: a result without bulkId whose `location` names the resource of exactly one open
/// PATCH, PUT or DELETE of its method, and no other result names that operation.
fn match_by_location(sent: &[SentOp], results: &[AnswerOp<'_>], m: &mut Matching) {
    let targets: Vec<Option<Cow<'_, str>>> = sent.iter().map(SentOp::target).collect();
    let mut claims: Vec<(usize, usize)> = Vec::new();
    for r in m.open_results() {
        let Some(res) = results.get(r).filter(|res| res.bulk_id.is_none()) else {
            continue;
        };
        let Some(located) = res.located() else { continue };
        let mut hits = m.open_ops().filter(|&op| {
            targets.get(op).and_then(Option::as_deref) == Some(&*located)
                && sent.get(op).is_some_and(|o| res.method_agrees(o.method))
        });
        if let (Some(op), None) = (hits.next(), hits.next()) {
            claims.push((op, r));
        }
    }
    let mut claimed = vec![0usize; sent.len()];
    for &(op, _) in &claims {
        if let Some(c) = claimed.get_mut(op) {
            *c += 1;
        }
    }
    for (op, r) in claims {
        if claimed.get(op) == Some(&1) {
            m.pair(op, r);
        }
    }
}

/// Rule 3, by position, only where nothing contradicts it: a server that sends no bulkIds and
/// one fitting result per operation in request order (RFC 7644 keeps request order), or a last
/// operation and a last result without bulkId that fit each other.
fn match_by_position(sent: &[SentOp], results: &[AnswerOp<'_>], m: &mut Matching) {
    let in_order = results.len() == sent.len()
        && results.iter().all(|r| r.bulk_id.is_none())
        && sent
            .iter()
            .zip(results)
            .enumerate()
            .all(|(i, (op, res))| res.fits(op) && m.answer.get(i).copied().flatten().is_none_or(|r| r == i));
    if in_order {
        for i in 0..sent.len() {
            if m.answer.get(i).is_some_and(Option::is_none) {
                m.pair(i, i);
            }
        }
        return;
    }
    let last = {
        let (mut ops, mut open) = (m.open_ops(), m.open_results());
        match (ops.next(), ops.next(), open.next(), open.next()) {
            (Some(op), None, Some(r), None) => Some((op, r)),
            _ => None,
        }
    };
    if let Some((op, r)) = last {
        if let (Some(o), Some(res)) = (sent.get(op), results.get(r)) {
            if res.bulk_id.is_none() && res.fits(o) {
                m.pair(op, r);
            }
        }
    }
}

/// Reads the answer to one user's own request (`POST /Users` or `PATCH /Users/{id}`, for a
/// server without Bulk) as the result of that one operation. A create answered 2xx without a
/// readable id is [`OpResult::Unknown`]: the user is read before anything is sent again.
pub fn single_result(resp: &HttpResponse, sent: &SentOp) -> OpResult {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    let answered_id = || serde_json::from_str::<Id>(&resp.body).ok().and_then(|r| r.id);
    match resp.status {
        200..=299 if sent.method == Method::Post => match answered_id() {
            Some(id) => OpResult::Applied {
                status: resp.status,
                id: Some(id),
            },
            None => OpResult::Unknown,
        },
        200..=299 => OpResult::Applied {
            status: resp.status,
            id: answered_id(),
        },
        409 => OpResult::Conflict,
        s if is_retryable_status(s) => OpResult::Retryable { status: s },
        s => {
            let err = ScimError::from_body(&resp.body);
            OpResult::Permanent {
                status: s,
                scim_type: err.as_ref().and_then(|e| e.scim_type.clone()),
                detail: resp.redirect_detail().or_else(|| err.and_then(|e| e.detail)),
            }
        }
    }
}

/// Parses a Bulk answer and returns one result per sent operation, in the order they were sent.
///
/// A result is attributed to an operation, in this order: by `bulkId`; without bulkId, by
/// method and the resource its `location` names (PATCH, PUT, DELETE); by position, only when the
/// answer has no bulkIds and one fitting result per operation in order, or when one operation
/// and one result remain. An operation left over is [`OpResult::Missing`] when the server
/// returned fewer results than operations and every one of them is attributed, else
/// [`OpResult::Unknown`].
pub fn correlate(resp: &HttpResponse, sent: &[SentOp]) -> Result<Vec<OpResult>, BulkResponseError> {
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
    let results = &parsed.operations;
    if results.len() > sent.len() {
        return Err(BulkResponseError::Malformed {
            reason: format!("{} results for {} operations", results.len(), sent.len()),
            body: keep(&resp.body),
        });
    }
    let mut m = Matching::new(sent.len(), results.len());
    match_by_bulk_id(sent, results, &mut m);
    match_by_location(sent, results, &mut m);
    match_by_position(sent, results, &mut m);
    let stopped_early = results.len() < sent.len() && m.used.iter().all(|u| *u);
    Ok(m.answer
        .iter()
        .map(|a| match a.and_then(|r| results.get(r)) {
            Some(res) => classify(res),
            None if stopped_early => OpResult::Missing,
            None => OpResult::Unknown,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::encode_component;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn post(bulk_id: &str) -> SentOp {
        SentOp {
            bulk_id: bulk_id.into(),
            method: Method::Post,
            path: "/Users".into(),
        }
    }

    fn patch(bulk_id: &str, id: &str) -> SentOp {
        SentOp {
            bulk_id: bulk_id.into(),
            method: Method::Patch,
            path: format!("/Users/{}", encode_component(id)),
        }
    }

    /// `n` creates with bulkIds `u-0`, `u-1`...
    fn posts(n: usize) -> Vec<SentOp> {
        (0..n).map(|i| post(&format!("u-{i}"))).collect()
    }

    fn ok(status: u16, body: &str, sent: &[SentOp]) -> Vec<OpResult> {
        correlate(&HttpResponse::new(status, body), sent).unwrap()
    }

    const MIXED: &str = include_str!("../../tests/fixtures/standin_bulk_200_mixed.json");
    const OUT_OF_ORDER_207: &str = include_str!("../../tests/fixtures/bulk_207_out_of_order.json");
    /// RFC 7644 §3.7.3's shape: bulkId on the POST results only, PATCH results by location.
    const PATCH_WITHOUT_BULK_ID: &str = include_str!("../../tests/fixtures/bulk_response_patch_without_bulkid.json");

    /// What was sent for [`PATCH_WITHOUT_BULK_ID`].
    fn patch_without_bulk_id_sent() -> Vec<SentOp> {
        vec![
            post("u-0"),
            patch("u-1", "b7c14771-226c-4d05-8860-134711653041"),
            post("u-2"),
            patch("u-3", "5d8d29d3-342c-4b5f-8683-a3cb6763ffcc"),
            patch("u-4", "e9025315-6bea-44e1-899c-1e07454e468b"),
        ]
    }

    fn kinds(results: &[OpResult]) -> Vec<&'static str> {
        results
            .iter()
            .map(|r| match r {
                OpResult::Applied { .. } => "applied",
                OpResult::Conflict => "conflict",
                OpResult::Retryable { .. } => "retry",
                OpResult::Permanent { .. } => "permanent",
                OpResult::Missing => "missing",
                OpResult::Unknown => "unknown",
            })
            .collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn correlates_a_200_answer_and_keeps_scim_error_fields() {
        let r = ok(200, MIXED, &posts(4));
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
        let in_order = ok(200, MIXED, &posts(4));
        let reversed = ok(207, OUT_OF_ORDER_207, &posts(4));
        assert_eq!(in_order, reversed);
        // Slicing by success count (the old way) would have blamed u-0 and u-1.
        assert_eq!(kinds(&reversed)[..2], ["applied", "conflict"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn post_results_by_bulk_id_and_patch_results_by_location() {
        let r = ok(200, PATCH_WITHOUT_BULK_ID, &patch_without_bulk_id_sent());
        assert_eq!(kinds(&r), ["applied", "applied", "conflict", "permanent", "retry"]);
        assert_eq!(
            r[0],
            OpResult::Applied {
                status: 201,
                id: Some("92b725cd-9465-4e7d-8c16-01f8e146b87a".into())
            }
        );
        assert_eq!(
            r[1],
            OpResult::Applied {
                status: 200,
                id: Some("b7c14771-226c-4d05-8860-134711653041".into())
            }
        );
        assert_eq!(
            r[3],
            OpResult::Permanent {
                status: 400,
                scim_type: Some("invalidValue".into()),
                detail: Some("Attribute 'active' must be a boolean".into())
            }
        );
        assert_eq!(r[4], OpResult::Retryable { status: 503 });
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn results_in_another_order_are_attributed_the_same() {
        let sent = patch_without_bulk_id_sent();
        let mut doc: serde_json::Value = serde_json::from_str(PATCH_WITHOUT_BULK_ID).unwrap();
        doc["Operations"].as_array_mut().unwrap().reverse();
        let reversed = doc.to_string();
        assert_eq!(ok(207, &reversed, &sent), ok(200, PATCH_WITHOUT_BULK_ID, &sent));
        // Rotated by one: no pairing by position survives it either.
        doc["Operations"].as_array_mut().unwrap().rotate_left(1);
        assert_eq!(ok(200, &doc.to_string(), &sent), ok(200, PATCH_WITHOUT_BULK_ID, &sent));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn absolute_and_relative_locations_and_encoded_ids() {
        let sent = [
            patch("u-0", "abc"),
            patch("u-1", "def"),
            patch("u-2", "ghi"),
            patch("u-3", "a/b c@x"),
            patch("u-4", "jkl"),
        ];
        // Reversed, so position cannot be what pairs them.
        let body = r#"{"Operations":[
            {"method":"patch","location":"https://cxone.example/scim/v2/Users/jkl?attributes=id","status":"500"},
            {"method":"PATCH","location":"Users/a%2fb%20c@x","status":"200"},
            {"location":"ghi","status":"404"},
            {"method":"PATCH","location":"/scim/v2/Users/def/","status":"412"},
            {"method":"PATCH","location":"https://cxone.example/scim/v2/Users/abc","status":"204"}
        ]}"#;
        let r = ok(200, body, &sent);
        assert_eq!(kinds(&r), ["applied", "permanent", "permanent", "applied", "retry"]);
        assert_eq!(
            r[1],
            OpResult::Permanent {
                status: 412,
                scim_type: None,
                detail: None
            }
        );
        assert_eq!(
            r[2],
            OpResult::Permanent {
                status: 404,
                scim_type: None,
                detail: None
            }
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_location_naming_two_operations_is_never_guessed() {
        // Two PATCHes of the same user: which one failed cannot be told.
        let sent = [post("u-0"), patch("u-1", "abc"), patch("u-2", "abc")];
        let body = r#"{"Operations":[
            {"method":"POST","bulkId":"u-0","location":"https://x/Users/new","status":"201"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"200"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"500"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["applied", "unknown", "unknown"]);
        // A result without method names both a PATCH and a DELETE of the same user; the one
        // with a method still finds its operation.
        let delete = SentOp {
            bulk_id: "u-2".into(),
            method: Method::Delete,
            path: "/Users/abc".into(),
        };
        let sent = [post("u-0"), patch("u-1", "abc"), delete, post("u-3")];
        let body = r#"{"Operations":[
            {"method":"POST","bulkId":"u-0","location":"https://x/Users/new","status":"201"},
            {"location":"https://x/Users/abc","status":"204"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"200"}
        ]}"#;
        assert_eq!(
            kinds(&ok(200, body, &sent)),
            ["applied", "applied", "unknown", "unknown"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn two_results_naming_one_operation_attribute_neither() {
        let sent = [post("u-0"), patch("u-1", "abc"), patch("u-2", "def")];
        let body = r#"{"Operations":[
            {"method":"POST","bulkId":"u-0","status":"201"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"200"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"500"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["applied", "unknown", "unknown"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn without_bulk_ids_position_is_used_and_statuses_may_be_numbers() {
        let body = r#"{"Operations":[{"status":201,"location":"https://x/Users/a1"},{"status":"503"}]}"#;
        let r = ok(200, body, &posts(2));
        assert_eq!(
            r[0],
            OpResult::Applied {
                status: 201,
                id: Some("a1".into())
            }
        );
        assert_eq!(r[1], OpResult::Retryable { status: 503 });
        // PATCH results without location, one of them without method either.
        let sent = [post("u-0"), patch("u-1", "abc"), patch("u-2", "def")];
        let body = r#"{"Operations":[
            {"method":"POST","location":"https://x/Users/n1","status":"201"},
            {"method":"PATCH","status":"200"},
            {"status":"400"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["applied", "applied", "permanent"]);
        // A location where it belongs does not stop position from being used.
        let body = r#"{"Operations":[
            {"method":"POST","location":"https://x/Users/n1","status":"201"},
            {"method":"PATCH","status":"200"},
            {"method":"PATCH","location":"https://x/Users/def","status":"400"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["applied", "applied", "permanent"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn position_is_not_used_when_anything_contradicts_it() {
        let sent = [post("u-0"), patch("u-1", "abc"), patch("u-2", "def")];
        // Methods out of order.
        let body = r#"{"Operations":[
            {"method":"PATCH","status":"200"},
            {"method":"POST","status":"201"},
            {"method":"PATCH","status":"200"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["unknown", "unknown", "unknown"]);
        // A location naming a user that was not sent.
        let body = r#"{"Operations":[
            {"method":"POST","status":"201"},
            {"method":"PATCH","location":"https://x/Users/zzz","status":"200"},
            {"method":"PATCH","status":"200"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["unknown", "unknown", "unknown"]);
        // Results attributed by location in another order than sent: order is not kept.
        let body = r#"{"Operations":[
            {"method":"PATCH","location":"https://x/Users/def","status":"200"},
            {"method":"POST","status":"201"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"200"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["applied", "applied", "applied"]);
        let body = r#"{"Operations":[
            {"method":"PATCH","location":"https://x/Users/def","status":"200"},
            {"method":"POST","status":"201"},
            {"method":"PATCH","status":"200"}
        ]}"#;
        // u-2 by location; u-0 and u-1 left with two results: no guess.
        assert_eq!(kinds(&ok(200, body, &sent)), ["unknown", "unknown", "applied"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_location_outranks_position() {
        // No bulkIds and one result per operation, but the first result names the PATCH's user.
        let sent = [post("u-0"), patch("u-1", "abc")];
        let body = r#"{"Operations":[{"location":"/Users/abc","status":"200"},{"status":"201"}]}"#;
        let r = ok(200, body, &sent);
        assert_eq!(r[0], OpResult::Applied { status: 201, id: None });
        assert_eq!(
            r[1],
            OpResult::Applied {
                status: 200,
                id: Some("abc".into())
            }
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_one_operation_left_takes_the_one_result_left_when_they_fit() {
        let sent = [post("u-0"), patch("u-1", "abc"), post("u-2")];
        let body = r#"{"Operations":[
            {"method":"POST","bulkId":"u-0","status":"201"},
            {"method":"POST","bulkId":"u-2","status":"409"},
            {"method":"PATCH","status":"200"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["applied", "applied", "conflict"]);
        let without_method = body.replace(r#"{"method":"PATCH","#, "{");
        assert_eq!(
            kinds(&ok(200, &without_method, &sent)),
            ["applied", "applied", "conflict"]
        );
        // Another method, or a location naming another user: not this operation's result.
        let delete = body.replace(r#""method":"PATCH""#, r#""method":"DELETE""#);
        assert_eq!(kinds(&ok(200, &delete, &sent)), ["applied", "unknown", "conflict"]);
        let elsewhere = body.replace(r#""method":"PATCH""#, r#""method":"PATCH","location":"/Users/xyz""#);
        assert_eq!(kinds(&ok(200, &elsewhere, &sent)), ["applied", "unknown", "conflict"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn operations_the_server_skipped_are_missing() {
        let body = include_str!("../../tests/fixtures/standin_bulk_200_stopped_early.json");
        let r = ok(200, body, &[post("b1"), post("b2"), post("b3")]);
        assert_eq!(kinds(&r), ["applied", "conflict", "missing"]);
        // Stopped after a PATCH answered by location.
        let sent = [post("u-0"), patch("u-1", "abc"), post("u-2"), post("u-3")];
        let body = r#"{"Operations":[
            {"method":"POST","bulkId":"u-0","status":"201"},
            {"method":"PATCH","location":"https://x/Users/abc","status":"400"}
        ]}"#;
        assert_eq!(
            kinds(&ok(200, body, &sent)),
            ["applied", "permanent", "missing", "missing"]
        );
        assert_eq!(
            kinds(&ok(200, r#"{"Operations":[]}"#, &posts(2))),
            ["missing", "missing"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn fewer_results_with_one_unattributed_are_unknown_not_missing() {
        // Without bulkIds a short answer does not say which operations it skipped.
        let body = r#"{"Operations":[{"status":"201"},{"status":"201"}]}"#;
        assert_eq!(kinds(&ok(200, body, &posts(3))), ["unknown", "unknown", "unknown"]);
        let body = r#"{"Operations":[{"bulkId":"u-0","status":"201"},{"method":"POST","status":"201"}]}"#;
        assert_eq!(kinds(&ok(200, body, &posts(3))), ["applied", "unknown", "unknown"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_bulk_id_never_sent_attributes_nothing() {
        let body = r#"{"Operations":[{"bulkId":"u-0","status":"201"},{"bulkId":"u-9","status":"201"}]}"#;
        assert_eq!(kinds(&ok(200, body, &posts(2))), ["applied", "unknown"]);
        // Nor does it leave the answer looking short.
        let body = r#"{"Operations":[{"bulkId":"u-0","status":"201"},{"bulkId":"u-9","status":"201"}]}"#;
        assert_eq!(kinds(&ok(200, body, &posts(3))), ["applied", "unknown", "unknown"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_bulk_id_answered_twice_attributes_neither() {
        let twice = r#"{"Operations":[{"bulkId":"u-0","status":"201"},{"bulkId":"u-0","status":"409"}]}"#;
        assert_eq!(kinds(&ok(200, twice, &posts(2))), ["unknown", "unknown"]);
        let sent = [post("u-0"), patch("u-1", "abc"), post("u-2")];
        let body = r#"{"Operations":[
            {"bulkId":"u-0","status":"201"},
            {"bulkId":"u-0","method":"PATCH","location":"/Users/abc","status":"200"},
            {"bulkId":"u-2","status":"201"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["unknown", "unknown", "applied"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_bulk_id_sent_twice_is_attributed_by_other_means_only() {
        let sent = [post("u-0"), patch("u-0", "abc")];
        let body = r#"{"Operations":[
            {"bulkId":"u-0","method":"POST","status":"201"},
            {"method":"PATCH","location":"/Users/abc","status":"200"}
        ]}"#;
        assert_eq!(kinds(&ok(200, body, &sent)), ["unknown", "applied"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn answers_207_and_200_alike_and_refuses_other_statuses() {
        let sent = patch_without_bulk_id_sent();
        assert_eq!(
            ok(207, PATCH_WITHOUT_BULK_ID, &sent),
            ok(200, PATCH_WITHOUT_BULK_ID, &sent)
        );
        for status in [201, 202, 204] {
            let e = correlate(&HttpResponse::new(status, PATCH_WITHOUT_BULK_ID), &sent).unwrap_err();
            assert!(
                matches!(e, BulkResponseError::Status { status: s, .. } if s == status),
                "{e:?}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_and_truncated_answers_keep_the_body() {
        let truncated = &MIXED[..MIXED.len() / 2];
        let e = correlate(&HttpResponse::new(200, truncated), &posts(4)).unwrap_err();
        let BulkResponseError::Malformed { body, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(body, truncated);
        let e = correlate(&HttpResponse::new(200, MIXED), &posts(2)).unwrap_err();
        assert!(e.to_string().contains("4 results for 2 operations"), "{e}");
        let e = correlate(&HttpResponse::new(413, "too big"), &posts(2)).unwrap_err();
        assert_eq!(
            e,
            BulkResponseError::Status {
                status: 413,
                body: "too big".into()
            }
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn segments_and_decoding() {
        assert_eq!(last_segment("https://h/scim/v2/Users/abc"), Some("abc"));
        assert_eq!(last_segment("/Users/abc/?x=1#f"), Some("abc"));
        assert_eq!(last_segment("abc"), Some("abc"));
        assert_eq!(last_segment("/"), None);
        assert_eq!(percent_decoded("a%2Fb%40x%20y"), "a/b@x y");
        assert_eq!(percent_decoded("100%25%"), "100%%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("%+1"), "%+1");
        assert!(matches!(percent_decoded("plain"), Cow::Borrowed("plain")));
    }
}
