//! The SCIM error message (RFC 7644 §3.12).

use super::{lenient, ERROR_SCHEMA};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimError {
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Sent as a string, as RFC 7644 says; read as a string or a number.
    #[serde(deserialize_with = "lenient::status", serialize_with = "status_as_string")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn status_as_string<S: Serializer>(status: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&status.to_string())
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            schemas: vec![ERROR_SCHEMA.to_string()],
            status,
            scim_type: scim_type.map(str::to_string),
            detail: Some(detail.into()),
        }
    }

    /// Reads an error body if it is one; `None` for anything else.
    pub fn from_body(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_standin_errors_and_numeric_status() {
        let e = ScimError::from_body(include_str!("../../tests/fixtures/standin_error_409.json")).unwrap();
        assert_eq!((e.status, e.scim_type.as_deref()), (409, Some("uniqueness")));
        let e = ScimError::from_body(include_str!("../../tests/fixtures/standin_error_invalid_path.json")).unwrap();
        assert_eq!(e.scim_type.as_deref(), Some("invalidPath"));
        let e = ScimError::from_body(r#"{"status":503,"detail":"busy"}"#).unwrap();
        assert_eq!(e.status, 503);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn writes_status_as_string() {
        let v = serde_json::to_value(ScimError::new(400, Some("invalidValue"), "bad")).unwrap();
        assert_eq!(v["status"], "400");
        assert_eq!(v["scimType"], "invalidValue");
        assert_eq!(v["schemas"][0], ERROR_SCHEMA);
    }
}
