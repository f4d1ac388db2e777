//! `PatchOp` messages (RFC 7644 §3.5.2).

use super::{lenient, PATCH_OP_SCHEMA};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(rename = "Operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchOp {
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        Self {
            schemas: vec![PATCH_OP_SCHEMA.to_string()],
            operations,
        }
    }
}

/// One operation (closed: unknown members are rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl PatchOperation {
    pub fn replace(path: &str, value: impl Into<Value>) -> Self {
        Self {
            op: PatchOpKind::Replace,
            path: Some(path.to_string()),
            value: Some(value.into()),
        }
    }

    pub fn add(path: &str, value: impl Into<Value>) -> Self {
        Self {
            op: PatchOpKind::Add,
            path: Some(path.to_string()),
            value: Some(value.into()),
        }
    }

    pub fn remove(path: &str) -> Self {
        Self {
            op: PatchOpKind::Remove,
            path: Some(path.to_string()),
            value: None,
        }
    }
}

/// `add | remove | replace`, written lowercase, read in any case (Entra sends `Replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

impl<'de> Deserialize<'de> for PatchOpKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::one_of(
            d,
            &[("add", Self::Add), ("remove", Self::Remove), ("replace", Self::Replace)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_entra_pascal_case_and_writes_lowercase() {
        let p: PatchOp =
            serde_json::from_str(include_str!("../../tests/fixtures/entra_patch_pascalcase.json")).unwrap();
        let kinds: Vec<_> = p.operations.iter().map(|o| o.op).collect();
        assert_eq!(kinds, [PatchOpKind::Replace, PatchOpKind::Add, PatchOpKind::Remove]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["Operations"][0]["op"], "replace");
        assert!(v["Operations"][2].get("value").is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_unknown_op_and_members() {
        assert!(serde_json::from_str::<PatchOperation>(r#"{"op":"merge","path":"a"}"#).is_err());
        assert!(serde_json::from_str::<PatchOperation>(r#"{"op":"add","path":"a","valu":1}"#).is_err());
    }
}
