//! `ListResponse` (RFC 7644 §3.4.2).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    #[serde(default)]
    pub schemas: Vec<String>,
    pub total_results: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_per_page: Option<u64>,
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::User;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_standin_listing_and_empty_result() {
        let l: ListResponse<User> =
            serde_json::from_str(include_str!("../../tests/fixtures/standin_list_users.json")).unwrap();
        assert_eq!(l.total_results as usize, l.resources.len());
        assert!(l.total_results >= 1);
        // RFC 7644: Resources may be omitted when totalResults is 0.
        let empty: ListResponse<User> = serde_json::from_str(r#"{"schemas":[],"totalResults":0}"#).unwrap();
        assert!(empty.resources.is_empty());
    }
}
