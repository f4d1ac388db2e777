//! A page of `GET /users/delta`: changed users, and either `@odata.nextLink` (more pages of
//! this round) or `@odata.deltaLink` (the cursor for the next round, to be stored only after
//! every change before it has been applied).

use crate::scim::lenient;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaPage {
    #[serde(rename = "@odata.nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default, skip_serializing_if = "Option::is_none")]
    pub delta_link: Option<String>,
    #[serde(default)]
    pub value: Vec<DeltaUser>,
}

/// The user properties cxone-scim reads; Graph's others are skipped without being kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaUser {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub account_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// Present when the user was deleted (or left the tracked scope).
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub reason: String,
}

impl DeltaPage {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const PAGE: &str = include_str!("../../tests/fixtures/graph_users_delta_page.json");

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_a_delta_page_with_removals() {
        let page = DeltaPage::from_slice(PAGE.as_bytes()).unwrap();
        assert!(page.next_link.is_some() && page.delta_link.is_none());
        assert_eq!(page.value.len(), 100);
        let removed: Vec<_> = page.value.iter().filter(|u| u.removed.is_some()).collect();
        assert_eq!(removed.len(), 5);
        assert_eq!(removed[0].removed.as_ref().unwrap().reason, "changed");
        assert_eq!(page.value[0].account_enabled, Some(true));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_last_page_carries_the_delta_link() {
        let last = br#"{"@odata.context":"x","@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc","value":[]}"#;
        let page = DeltaPage::from_slice(last).unwrap();
        assert_eq!(
            page.delta_link.as_deref(),
            Some("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc")
        );
        assert!(page.value.is_empty());
    }
}
