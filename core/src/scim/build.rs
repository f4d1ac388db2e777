//! Payload builders: the target state of a user, and the requests that reach it.
//!
//! `None` in a [`DesiredUser`] field means "the source said nothing about it": such attributes
//! are never touched. PATCH paths use SCIM filter syntax (`emails[type eq "work"].value`),
//! never positional indexes, which real servers reject.

use super::patch::{PatchOp, PatchOperation};
use super::user::{Email, Name, Role, User};
use super::USER_SCHEMA;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const WORK: &str = "work";
const WORK_EMAIL_PATH: &str = "emails[type eq \"work\"].value";

/// The state a user should have in CXone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredUser {
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `None`: leave `active` as it is (a new user is created active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `None`: leave roles alone; `Some(vec![])`: the user should hold no role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
}

/// "Given Family", when either part is known.
fn display_of(given: Option<&str>, family: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [given, family]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Loosely an email address: `local@domain.tld`, no whitespace.
pub(crate) fn looks_like_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

impl DesiredUser {
    /// "Given Family" from the names this state sets and, where it sets none, `current`'s.
    pub fn display_name_over(&self, current: Option<&Name>) -> Option<String> {
        let given = non_empty(self.given_name.as_deref()).or_else(|| current.and_then(|n| n.given_name.clone()));
        let family = non_empty(self.family_name.as_deref()).or_else(|| current.and_then(|n| n.family_name.clone()));
        display_of(given.as_deref(), family.as_deref())
    }

    fn name(&self) -> Option<Name> {
        let given = non_empty(self.given_name.as_deref());
        let family = non_empty(self.family_name.as_deref());
        (given.is_some() || family.is_some()).then(|| Name {
            given_name: given,
            family_name: family,
            ..Name::default()
        })
    }

    fn apply_to(&self, user: &mut User) {
        user.user_name = self.user_name.clone();
        if self.external_id.is_some() {
            user.external_id = self.external_id.clone();
        }
        if let Some(name) = self.name() {
            let current = user.name.get_or_insert_with(Name::default);
            if name.given_name.is_some() {
                current.given_name = name.given_name;
            }
            if name.family_name.is_some() {
                current.family_name = name.family_name;
            }
        }
        if let Some(display) = self.display_name_over(user.name.as_ref()) {
            user.display_name = Some(display);
        }
        if let Some(email) = &self.email {
            match user.emails.iter_mut().find(|e| is_work(e)) {
                Some(work) => work.value = email.clone(),
                None => user
                    .emails
                    .push(work_email(email, !user.emails.iter().any(|e| e.primary == Some(true)))),
            }
        }
        if self.active.is_some() {
            user.active = self.active;
        }
        if let Some(roles) = &self.roles {
            user.roles = roles.clone();
        }
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn is_work(e: &Email) -> bool {
    e.kind.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(WORK))
}

fn work_email(value: &str, primary: bool) -> Email {
    Email {
        value: value.to_string(),
        kind: Some(WORK.to_string()),
        primary: primary.then_some(true),
        display: None,
    }
}

/// Body of `POST /Users`. A new user is active unless told otherwise, and gets the userName
/// as work email when none is given and the userName is an address.
pub fn create_payload(desired: &DesiredUser) -> User {
    let mut user = User {
        schemas: vec![USER_SCHEMA.to_string()],
        active: Some(true),
        ..User::default()
    };
    desired.apply_to(&mut user);
    if desired.email.is_none() && looks_like_email(&desired.user_name) {
        user.emails.push(work_email(desired.user_name.trim(), true));
    }
    user
}

/// Body of `PUT /Users/{id}`: the current resource with the managed attributes set, so that
/// attributes cxone-scim does not manage survive the full replace. Read-only `meta` and
/// `groups` are dropped.
pub fn replace_payload(current: &User, desired: &DesiredUser) -> User {
    let mut user = current.clone();
    if user.schemas.is_empty() {
        user.schemas.push(USER_SCHEMA.to_string());
    }
    user.meta = None;
    user.groups.clear();
    desired.apply_to(&mut user);
    user
}

/// `PATCH` body for `active = false`.
pub fn disable_patch() -> PatchOp {
    PatchOp::new(vec![PatchOperation::replace("active", false)])
}

/// The minimal PATCH that takes `current` to `desired`; `None` when nothing differs.
pub fn patch_to(current: &User, desired: &DesiredUser) -> Option<PatchOp> {
    let mut ops = Vec::new();
    if current.user_name != desired.user_name {
        ops.push(PatchOperation::replace("userName", desired.user_name.as_str()));
    }
    if let Some(ext) = &desired.external_id {
        if current.external_id.as_ref() != Some(ext) {
            ops.push(PatchOperation::replace("externalId", ext.as_str()));
        }
    }
    let name = current.name.as_ref();
    for (path, want, have) in [
        (
            "name.givenName",
            non_empty(desired.given_name.as_deref()),
            name.and_then(|n| n.given_name.clone()),
        ),
        (
            "name.familyName",
            non_empty(desired.family_name.as_deref()),
            name.and_then(|n| n.family_name.clone()),
        ),
        (
            "displayName",
            desired.display_name_over(name),
            current.display_name.clone(),
        ),
    ] {
        if let Some(want) = want {
            if have.as_ref() != Some(&want) {
                ops.push(PatchOperation::replace(path, want));
            }
        }
    }
    if let Some(email) = &desired.email {
        match current.emails.iter().find(|e| is_work(e)) {
            Some(work) if work.value.eq_ignore_ascii_case(email) => {}
            Some(_) => ops.push(PatchOperation::replace(WORK_EMAIL_PATH, email.as_str())),
            None => {
                let primary = !current.emails.iter().any(|e| e.primary == Some(true));
                ops.push(PatchOperation::add("emails", json!([work_email(email, primary)])));
            }
        }
    }
    if let Some(active) = desired.active.filter(|&a| a != current.is_active()) {
        ops.push(PatchOperation::replace("active", active));
    }
    if let Some(roles) = &desired.roles {
        if !same_role_values(&current.roles, roles) {
            ops.push(if roles.is_empty() {
                PatchOperation::remove("roles")
            } else {
                PatchOperation::replace("roles", serde_json::to_value(roles).unwrap_or(Value::Null))
            });
        }
    }
    (!ops.is_empty()).then(|| PatchOp::new(ops))
}

fn same_role_values(a: &[Role], b: &[Role]) -> bool {
    let mut a: Vec<&str> = a.iter().map(|r| r.value.as_str()).collect();
    let mut b: Vec<&str> = b.iter().map(|r| r.value.as_str()).collect();
    a.sort_unstable();
    a.dedup();
    b.sort_unstable();
    b.dedup();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::PatchOpKind;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn role(v: &str) -> Role {
        Role {
            value: v.into(),
            display: Some(v.into()),
            ..Role::default()
        }
    }

    fn jane() -> DesiredUser {
        DesiredUser {
            user_name: "jdoe@example.com".into(),
            external_id: Some("e-1".into()),
            given_name: Some("Jane".into()),
            family_name: Some("Doe".into()),
            email: Some("jdoe@example.com".into()),
            active: Some(true),
            roles: Some(vec![role("Agent")]),
        }
    }

    fn paths(p: &PatchOp) -> Vec<(&str, PatchOpKind)> {
        p.operations
            .iter()
            .map(|o| (o.path.as_deref().unwrap_or(""), o.op))
            .collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_payload_has_everything() {
        let v = serde_json::to_value(create_payload(&jane())).unwrap();
        assert_eq!(v["schemas"][0], USER_SCHEMA);
        assert_eq!(v["name"]["givenName"], "Jane");
        assert_eq!(v["displayName"], "Jane Doe");
        assert_eq!(
            v["emails"][0],
            json!({"value":"jdoe@example.com","type":"work","primary":true})
        );
        assert_eq!(v["roles"][0]["value"], "Agent");
        assert_eq!(v["active"], true);
        assert!(v.get("id").is_none() && v.get("meta").is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn no_patch_when_already_in_state() {
        let current = create_payload(&jane());
        assert_eq!(patch_to(&current, &jane()), None);
        // Role order and email case do not count as differences.
        let mut d = jane();
        d.roles = Some(vec![role("Agent"), role("Agent")]);
        d.email = Some("JDOE@example.com".into());
        assert_eq!(patch_to(&current, &d), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn minimal_patch_touches_only_what_changed() {
        let current = create_payload(&jane());
        let mut d = jane();
        d.family_name = Some("Roe".into());
        d.email = Some("jroe@example.com".into());
        d.roles = Some(vec![role("Supervisor")]);
        let p = patch_to(&current, &d).unwrap();
        assert_eq!(
            paths(&p),
            [
                ("name.familyName", PatchOpKind::Replace),
                ("displayName", PatchOpKind::Replace),
                ("emails[type eq \"work\"].value", PatchOpKind::Replace),
                ("roles", PatchOpKind::Replace),
            ]
        );
        assert!(!serde_json::to_string(&p).unwrap().contains("emails[0]"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unknown_fields_are_left_alone_and_empty_roles_remove() {
        let current = create_payload(&jane());
        let d = DesiredUser {
            given_name: None,
            family_name: None,
            email: None,
            roles: Some(vec![]),
            ..jane()
        };
        let p = patch_to(&current, &d).unwrap();
        assert_eq!(paths(&p), [("roles", PatchOpKind::Remove)]);
        let d = DesiredUser {
            roles: None,
            active: Some(false),
            ..jane()
        };
        assert_eq!(
            paths(&patch_to(&current, &d).unwrap()),
            [("active", PatchOpKind::Replace)]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn partial_updates_keep_what_the_source_did_not_say() {
        let mut current = create_payload(&jane());
        current.active = Some(false);
        let only_first = DesiredUser {
            user_name: "jdoe@example.com".into(),
            given_name: Some("Janet".into()),
            ..DesiredUser::default()
        };
        let p = patch_to(&current, &only_first).unwrap();
        assert_eq!(
            paths(&p),
            [
                ("name.givenName", PatchOpKind::Replace),
                ("displayName", PatchOpKind::Replace)
            ],
            "no familyName, email, active or roles operation"
        );
        assert_eq!(p.operations[1].value, Some(json!("Janet Doe")));
        let nothing = DesiredUser {
            user_name: "jdoe@example.com".into(),
            ..DesiredUser::default()
        };
        assert_eq!(patch_to(&current, &nothing), None, "an inactive user stays inactive");
        let created = create_payload(&nothing);
        assert_eq!(created.active, Some(true));
        assert_eq!(
            created.emails[0].value, "jdoe@example.com",
            "email defaults to the userName"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn adds_a_work_email_without_a_second_primary() {
        let mut current = create_payload(&jane());
        current.emails = vec![Email {
            value: "h@x.org".into(),
            kind: Some("home".into()),
            primary: Some(true),
            display: None,
        }];
        let p = patch_to(&current, &jane()).unwrap();
        let op = &p.operations[0];
        assert_eq!((op.path.as_deref(), op.op), (Some("emails"), PatchOpKind::Add));
        assert_eq!(op.value, Some(json!([{"value":"jdoe@example.com","type":"work"}])));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn replace_keeps_unmanaged_attributes_and_drops_read_only() {
        let current: User =
            serde_json::from_str(include_str!("../../tests/fixtures/rfc7643_enterprise_user.json")).unwrap();
        let d = DesiredUser {
            user_name: "bjensen@example.com".into(),
            active: Some(false),
            ..DesiredUser::default()
        };
        let put = replace_payload(&current, &d);
        assert!(put.meta.is_none());
        assert_eq!(put.active, Some(false));
        assert!(put.extra.contains_key("addresses"));
        assert_eq!(put.enterprise, current.enterprise);
        assert_eq!(put.name, current.name);
    }
}
