//! A page of `GET /users/delta`: changed users, and either `@odata.nextLink` (more pages of
//! this round) or `@odata.deltaLink` (the cursor for the next round, to be stored only after
//! every change before it has been applied).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaPage {
    #[serde(rename = "@odata.nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default, skip_serializing_if = "Option::is_none")]
    pub delta_link: Option<String>,
    #[serde(default)]
    pub value: Vec<DeltaUser>,
}

/// One entry of a page: the user's `id`, `@removed` when they left, and every other property
/// as Graph sent it. A property present as `null` was cleared; an absent one is unknown (after
/// the first round Graph may send only what changed). `@odata.*` annotations are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "WireDeltaUser")]
pub struct DeltaUser {
    pub id: String,
    /// Present when the user was deleted (or left the tracked scope).
    #[serde(rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

/// A [`DeltaUser`] as it comes, annotations included.
#[derive(Deserialize)]
struct WireDeltaUser {
    id: String,
    #[serde(rename = "@removed", default)]
    removed: Option<Removed>,
    #[serde(flatten)]
    properties: Map<String, Value>,
}

impl From<WireDeltaUser> for DeltaUser {
    fn from(wire: WireDeltaUser) -> Self {
        let mut properties = wire.properties;
        properties.retain(|name, _| !is_annotation(name));
        Self {
            id: wire.id,
            removed: wire.removed,
            properties,
        }
    }
}

/// `@odata.type`, `manager@odata.navigationLink`, ...: about the payload, not the user.
fn is_annotation(name: &str) -> bool {
    name.contains("@odata.")
}

impl DeltaUser {
    /// A property other than `id` as Graph sent it: `Some(Value::Null)` when cleared, `None`
    /// when absent.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }

    /// A property as text: `None` when absent, `null` or not a string.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.property(name).and_then(Value::as_str)
    }
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
        assert_eq!(page.value[0].property("accountEnabled"), Some(&Value::Bool(true)));
        assert_eq!(page.value[0].text("department"), Some("Support"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keeps_every_property_tells_null_from_absent_and_drops_annotations() {
        let page = DeltaPage::from_slice(PAGE.as_bytes()).unwrap();
        let first = &page.value[0];
        assert_eq!(first.property("mobilePhone"), Some(&Value::Null), "cleared");
        assert_eq!(first.property("faxNumber"), None, "not sent");
        assert_eq!(first.text("mobilePhone"), None);
        assert!(first.property("businessPhones").is_some_and(Value::is_array));
        assert!(
            !first.properties.keys().any(|k| k.contains('@')),
            "{:?}",
            first.properties
        );
        assert!(!first.properties.contains_key("id"), "id is its own field");
        let entry: DeltaUser = serde_json::from_str(
            r##"{"id":"u-1","@odata.type":"#microsoft.graph.user","manager@odata.navigationLink":"x","jobTitle":null}"##,
        )
        .unwrap();
        assert_eq!(entry.properties.len(), 1);
        assert_eq!(entry.property("jobTitle"), Some(&Value::Null));
        let back: DeltaUser = serde_json::from_value(serde_json::to_value(&entry).unwrap()).unwrap();
        assert_eq!(back, entry);
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
