//! Bulk messages (RFC 7644 §3.7).

use super::lenient;
use crate::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRequest {
    pub schemas: Vec<String>,
    /// Errors the server accepts before it stops; absent = process every operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_errors: Option<u32>,
    #[serde(rename = "Operations")]
    pub operations: Vec<BulkOperation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    pub method: Method,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The resource or PatchOp, already serialised (built once, copied into the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl PartialEq for BulkOperation {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method
            && self.path == other.path
            && self.bulk_id == other.bulk_id
            && self.version == other.version
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkResponse {
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(rename = "Operations", default)]
    pub operations: Vec<BulkOperationResult>,
}

/// One operation's result. `status` comes as `"201"` (RFC 7644) or `201`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperationResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(deserialize_with = "lenient::status")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

impl BulkOperationResult {
    /// The resource id: from `response.id`, else the last segment of `location`.
    pub fn resource_id(&self) -> Option<String> {
        self.response
            .as_ref()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                self.location
                    .as_deref()
                    .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_standin_bulk_response() {
        let r: BulkResponse =
            serde_json::from_str(include_str!("../../tests/fixtures/standin_bulk_200_mixed.json")).unwrap();
        let statuses: Vec<u16> = r.operations.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [201, 409, 400, 201]);
        assert_eq!(r.operations[0].resource_id().map(|s| s.len()), Some(32));
        assert_eq!(r.operations[1].resource_id(), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn writes_a_request_without_fail_on_errors_by_default() {
        let req = BulkRequest {
            schemas: vec![BULK_REQUEST_SCHEMA.into()],
            fail_on_errors: None,
            operations: vec![BulkOperation {
                method: Method::Post,
                path: "/Users".into(),
                bulk_id: Some("u-0".into()),
                version: None,
                data: RawValue::from_string(r#"{"userName":"a"}"#.into()).ok(),
            }],
        };
        let v = serde_json::to_value(&req).unwrap();
        assert!(v.get("failOnErrors").is_none());
        assert_eq!(v["Operations"][0]["method"], "POST");
        assert_eq!(v["Operations"][0]["bulkId"], "u-0");
    }
}
