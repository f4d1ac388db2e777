//! A person's attributes as the sources name them: a webhook event's `initial` object, a Graph
//! user mapped to values set only at creation, and what the payload builders create an account
//! with ([`crate::scim::build::DesiredUser::at_creation`]). One type wherever they travel.

use serde::{Deserialize, Serialize};

/// A person's attributes by their event names. `null` or absent members give no value; an
/// unknown member is refused (a misspelt attribute never goes silently unwritten).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
}

impl Attributes {
    /// True when no member is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The text members with their JSON names, for validation.
    pub(crate) fn texts(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("initial.firstName", self.first_name.as_deref()),
            ("initial.lastName", self.last_name.as_deref()),
            ("initial.displayName", self.display_name.as_deref()),
            ("initial.title", self.title.as_deref()),
            ("initial.department", self.department.as_deref()),
            ("initial.employeeNumber", self.employee_number.as_deref()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_event_names_and_refuses_unknown_members() {
        let a: Attributes =
            serde_json::from_str(r#"{"firstName":"Jane","employeeNumber":"E-1","title":null}"#).unwrap();
        assert_eq!(a.title, None);
        assert_eq!(
            (a.first_name.as_deref(), a.employee_number.as_deref()),
            (Some("Jane"), Some("E-1"))
        );
        assert!(!a.is_empty() && Attributes::default().is_empty());
        let err = serde_json::from_str::<Attributes>(r#"{"jobTitle":"Agent"}"#).unwrap_err();
        assert!(err.to_string().contains("jobTitle"), "{err}");
    }
}
