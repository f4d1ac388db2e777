//! Building one `POST /Bulk` from the ready rows of the window: a bulkId on every operation,
//! within the server's operation count and payload size; or, for a server without Bulk, the
//! next ready row's own `POST /Users` or `PATCH /Users/{id}`.

use super::entry::{Entry, Stage};
use super::response::SentOp;
use crate::http::{HttpRequest, Method};
use crate::profile::Capabilities;
use crate::scim::build::create_payload;
use crate::scim::bulk::{BulkOperation, BulkRequest, BULK_REQUEST_SCHEMA};
use crate::UnixMillis;
use std::collections::BTreeMap;

/// Room left in a payload for the envelope around the operations.
const ENVELOPE_BYTES: usize = 256;

/// Limits one Bulk request keeps to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub operations: usize,
    pub payload_bytes: usize,
    pub fail_on_errors: Option<u32>,
    pub caps: Capabilities,
}

/// A request ready to send, with what was sent for each row.
pub(super) struct Batch {
    pub request: HttpRequest,
    pub indexes: Vec<usize>,
    pub sent: Vec<SentOp>,
}

pub(super) fn bulk_id(index: usize) -> String {
    format!("u-{index}")
}

/// Why no operation can be sent for a row: it fails with this status, type and detail.
type Unsendable = (u16, Option<String>, String);

fn operation(index: usize, e: &Entry, caps: &Capabilities) -> Result<BulkOperation, Unsendable> {
    let unbuilt = || (500, None, "no operation could be built for this user".to_string());
    let (method, path, data) = match &e.stage {
        Stage::Create => {
            let payload = create_payload(e.desired.as_ref().ok_or_else(unbuilt)?);
            // Refused before anything is sent when it lacks what the server requires.
            caps.check_create(&payload)
                .map_err(|m| (422, Some("invalidValue".to_string()), m.to_string()))?;
            (Method::Post, "/Users".to_string(), serde_json::to_string(&payload))
        }
        Stage::Patch { id, patch } => (
            Method::Patch,
            format!("/Users/{}", crate::http::encode_component(id)),
            serde_json::to_string(patch),
        ),
        _ => return Err(unbuilt()),
    };
    let data = data
        .ok()
        .and_then(|d| serde_json::value::RawValue::from_string(d).ok())
        .ok_or_else(unbuilt)?;
    Ok(BulkOperation {
        method,
        path,
        bulk_id: Some(bulk_id(index)),
        version: None,
        data: Some(data),
    })
}

/// The next batch of ready rows (those to create or patch, not waiting for a retry, and
/// `held` as the run requires), in index order. A row whose operation cannot be built, or alone exceeds the payload limit, fails (the
/// caller notes the rows it changed through `failed`).
pub(super) fn next(
    window: &mut BTreeMap<usize, Entry>,
    base_url: &str,
    limits: Limits,
    now: UnixMillis,
    failed: &mut Vec<usize>,
    held: impl Fn(&Entry) -> bool,
) -> Option<Batch> {
    let single = !limits.caps.bulk;
    let most = if single { 1 } else { limits.operations.max(1) };
    let budget = limits.payload_bytes.saturating_sub(ENVELOPE_BYTES);
    let mut ops = Vec::new();
    let mut indexes = Vec::new();
    let mut bytes = 0;
    for (&i, e) in window.iter_mut() {
        if ops.len() >= most {
            break;
        }
        // A row already sent (in a request still out) is not sent twice.
        if !matches!(e.stage, Stage::Create | Stage::Patch { .. }) || e.sent || e.not_before > now || !held(e) {
            continue;
        }
        let op = match operation(i, e, &limits.caps) {
            Ok(op) => op,
            // Nothing can be sent for it: it would wait for ever.
            Err((status, scim_type, detail)) => {
                e.fail(status, scim_type, detail);
                failed.push(i);
                continue;
            }
        };
        // The payload dominates; the rest of the operation is a short, bounded envelope.
        let size = op.data.as_ref().map_or(0, |d| d.get().len()) + op.path.len() + 64;
        if size > budget {
            e.fail(
                413,
                Some("tooLarge".into()),
                format!("operation of {size} bytes exceeds the Bulk payload limit"),
            );
            failed.push(i);
            continue;
        }
        if bytes + size > budget {
            break;
        }
        bytes += size;
        ops.push(op);
        indexes.push(i);
    }
    if ops.is_empty() {
        return None;
    }
    let sent = ops
        .iter()
        .map(|op| SentOp {
            bulk_id: op.bulk_id.clone().unwrap_or_default(),
            method: op.method,
            path: op.path.clone(),
        })
        .collect();
    if single {
        let op = ops.pop()?;
        return Some(Batch {
            request: HttpRequest::scim_json(op.method, format!("{base_url}{}", op.path), &op.data),
            indexes,
            sent,
        });
    }
    let body = BulkRequest {
        schemas: vec![BULK_REQUEST_SCHEMA.into()],
        fail_on_errors: limits.fail_on_errors,
        operations: ops,
    };
    Some(Batch {
        request: HttpRequest::scim_json(Method::Post, format!("{base_url}/Bulk"), &body),
        indexes,
        sent,
    })
}
