//! Values a user's account is created with and never updated from: how an attribute that CXone
//! owns gets its first value from the source without being overwritten later.

use super::build::DesiredUser;

/// `field` from `initial` when `field` is unset or blank and `initial` is not blank.
fn fill(field: &mut Option<String>, initial: Option<String>) {
    let unset = field.as_deref().is_none_or(|v| v.trim().is_empty());
    if unset && initial.as_deref().is_some_and(|v| !v.trim().is_empty()) {
        *field = initial;
    }
}

impl DesiredUser {
    /// The state a new account is created with: the initial values fill what this state leaves
    /// unset or blank, and are then dropped.
    pub fn at_creation(&self) -> DesiredUser {
        let mut d = self.clone();
        if let Some(initial) = d.initial.take() {
            let i = *initial;
            fill(&mut d.given_name, i.first_name);
            fill(&mut d.family_name, i.last_name);
            fill(&mut d.email, i.email);
            fill(&mut d.display_name, i.display_name);
            fill(&mut d.title, i.title);
            fill(&mut d.department, i.department);
            fill(&mut d.employee_number, i.employee_number);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::person::Attributes;
    use crate::scim::build::{create_payload, patch_to, replace_payload, DEPARTMENT_PATH};
    use crate::scim::ENTERPRISE_USER_SCHEMA;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn with_initial() -> DesiredUser {
        DesiredUser {
            user_name: "jdoe@example.com".into(),
            given_name: Some("Jane".into()),
            title: Some("Agent".into()),
            initial: Some(Box::new(Attributes {
                title: Some("Trainee".into()),
                department: Some("Support".into()),
                display_name: Some("Jane D.".into()),
                email: Some("jane@example.com".into()),
                ..Attributes::default()
            })),
            ..DesiredUser::default()
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_takes_initial_values_where_the_state_sets_none() {
        let user = create_payload(&with_initial());
        assert_eq!(user.title.as_deref(), Some("Agent"), "the state wins");
        assert_eq!(
            user.enterprise.as_ref().and_then(|e| e.department.as_deref()),
            Some("Support")
        );
        assert_eq!(user.display_name.as_deref(), Some("Jane D."));
        assert_eq!(user.emails[0].value, "jane@example.com", "not the userName default");
        assert!(user.schemas.iter().any(|s| s == ENTERPRISE_USER_SCHEMA));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn updates_never_touch_initial_values() {
        let mut current = create_payload(&with_initial());
        current.enterprise = None;
        current.display_name = Some("Jane Doe (CXone)".into());
        let mut d = with_initial();
        d.given_name = None;
        assert_eq!(patch_to(&current, &d), None, "no department, displayName or email");
        let put = replace_payload(&current, &d);
        assert_eq!(put.enterprise, None);
        assert_eq!(put.display_name.as_deref(), Some("Jane Doe (CXone)"));
        d.department = Some("Sales".into());
        let p = patch_to(&current, &d).unwrap();
        assert_eq!(p.operations.len(), 1);
        assert_eq!(p.operations[0].path.as_deref(), Some(DEPARTMENT_PATH));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn blank_initial_values_fill_nothing() {
        let d = DesiredUser {
            user_name: "a@b.co".into(),
            title: Some(String::new()),
            initial: Some(Box::new(Attributes {
                title: Some(" ".into()),
                last_name: Some("Doe".into()),
                ..Attributes::default()
            })),
            ..DesiredUser::default()
        };
        let created = d.at_creation();
        assert_eq!(created.title.as_deref(), Some(""));
        assert_eq!(created.family_name.as_deref(), Some("Doe"));
        assert_eq!(created.initial, None);
        assert!(Attributes::default().is_empty());
        assert!(!d.initial.as_deref().is_some_and(Attributes::is_empty));
    }
}
