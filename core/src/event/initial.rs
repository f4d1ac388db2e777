//! `initial` of a joiner or mover: values the account gets only when it is created.

use crate::scim::build::InitialValues;
use serde::{Deserialize, Serialize};

/// The event's `initial` object. `null` or absent members give no value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitialAttributes {
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

impl InitialAttributes {
    /// True when no member is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The text members with their JSON names, for validation.
    pub(super) fn texts(&self) -> [(&'static str, Option<&str>); 6] {
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

impl From<&InitialAttributes> for InitialValues {
    fn from(a: &InitialAttributes) -> Self {
        Self {
            given_name: a.first_name.clone(),
            family_name: a.last_name.clone(),
            email: a.email.clone(),
            display_name: a.display_name.clone(),
            title: a.title.clone(),
            department: a.department.clone(),
            employee_number: a.employee_number.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_event_names_and_refuses_unknown_members() {
        let a: InitialAttributes =
            serde_json::from_str(r#"{"firstName":"Jane","employeeNumber":"E-1","title":null}"#).unwrap();
        assert_eq!(a.title, None);
        let v = InitialValues::from(&a);
        assert_eq!(
            (v.given_name.as_deref(), v.employee_number.as_deref()),
            (Some("Jane"), Some("E-1"))
        );
        assert!(!a.is_empty() && InitialAttributes::default().is_empty());
        let err = serde_json::from_str::<InitialAttributes>(r#"{"jobTitle":"Agent"}"#).unwrap_err();
        assert!(err.to_string().contains("jobTitle"), "{err}");
    }
}
