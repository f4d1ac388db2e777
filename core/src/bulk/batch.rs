//! Building one `POST /Bulk` from the ready rows of the window: a bulkId on every operation,
//! within the server's operation count and payload size.

use super::entry::{Entry, Stage};
use super::response::SentOp;
use crate::http::{HttpRequest, Method};
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

fn operation(index: usize, e: &Entry) -> Option<BulkOperation> {
    let (method, path, data) = match &e.stage {
        Stage::Create => (
            Method::Post,
            "/Users".to_string(),
            serde_json::to_string(&create_payload(e.desired.as_ref()?)),
        ),
        Stage::Patch { id, patch } => (
            Method::Patch,
            format!("/Users/{}", crate::http::encode_component(id)),
            serde_json::to_string(patch),
        ),
        _ => return None,
    };
    let data = serde_json::value::RawValue::from_string(data.ok()?).ok()?;
    Some(BulkOperation {
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
    let budget = limits.payload_bytes.saturating_sub(ENVELOPE_BYTES);
    let mut ops = Vec::new();
    let mut indexes = Vec::new();
    let mut bytes = 0;
    for (&i, e) in window.iter_mut() {
        if ops.len() >= limits.operations.max(1) {
            break;
        }
        if !matches!(e.stage, Stage::Create | Stage::Patch { .. }) || e.not_before > now || !held(e) {
            continue;
        }
        let Some(op) = operation(i, e) else {
            // Nothing can be sent for it (no payload could be built): it would wait for ever.
            e.fail(500, None, "no operation could be built for this user");
            failed.push(i);
            continue;
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
