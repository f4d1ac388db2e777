//! The users of a bulk request, as an HR file or an admin sends them.

use crate::event::{LifecycleEvent, Operation};
use crate::policy::GroupInput;
use crate::scim::lenient;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkUser {
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupInput>>,
    #[serde(default = "yes", deserialize_with = "lenient::bool_")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl BulkUser {
    /// The same user as a joiner event, so bulk and webhooks share validation and policy.
    pub fn as_event(&self) -> LifecycleEvent {
        LifecycleEvent {
            operation: Operation::Create,
            user_name: self.user_name.clone(),
            external_id: self.external_id.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            account_enabled: Some(self.active),
            ..LifecycleEvent::default()
        }
    }
}

/// SHA-256 (hex) of the users' canonical JSON: the identity of a run's input, so a resumed run
/// can prove it is the same work.
pub fn input_digest(users: &[BulkUser]) -> String {
    let canonical = serde_json::to_vec(users).unwrap_or_default();
    crate::digest::sha256_hex(&canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn digest_is_stable_and_sensitive() {
        let users: Vec<BulkUser> =
            serde_json::from_str(r#"[{"userName":"a@x.io","active":"True"},{"userName":"b@x.io"}]"#).unwrap();
        let again: Vec<BulkUser> =
            serde_json::from_str(r#"[{"active":true,"userName":"a@x.io"},{"userName":"b@x.io"}]"#).unwrap();
        assert_eq!(
            input_digest(&users),
            input_digest(&again),
            "key order and spelling do not matter"
        );
        assert_eq!(input_digest(&users).len(), 64);
        assert_ne!(input_digest(&users), input_digest(&users[..1]));
    }
}
