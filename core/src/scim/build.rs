//! Payload builders: the target state of a user, and the requests that reach it.
//!
//! `None` in a [`DesiredUser`] field means "the source said nothing about it": such attributes
//! are never touched. `Some("")` in `displayName`, `title`, `department` or `employeeNumber`
//! means "clear it". PATCH paths use SCIM filter syntax (`emails[type eq "work"].value`) and
//! fully qualified extension paths (RFC 7644 §3.10), never positional indexes, which real
//! servers reject.
//!
//! The team (NICE's extension, [`TEAM_PATH`]) is set, never removed: `None` leaves it as it is,
//! and a team the account already holds (same `value`, whatever its `display`) is not written.

use super::attr_path::{set_path, text_of, AttrPath};
use super::patch::{PatchOp, PatchOperation};
use super::user::{Email, EnterpriseUser, Name, Role, User};
use super::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use super::user::TeamRef;

const WORK: &str = "work";
const WORK_EMAIL_PATH: &str = "emails[type eq \"work\"].value";
/// `department` of the enterprise extension, fully qualified.
pub const DEPARTMENT_PATH: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
/// `employeeNumber` of the enterprise extension, fully qualified.
pub const EMPLOYEE_NUMBER_PATH: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
/// `team` of NICE's extension, fully qualified.
pub const TEAM_PATH: &str = "urn:ietf:params:scim:schemas:extension:nice:2.0:User:team";

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
    /// Wins over the "Given Family" computed from the names; `Some("")` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `Some("")` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Enterprise extension; `Some("")` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Enterprise extension; `Some("")` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    /// `None`: leave `active` as it is (a new user is created active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `None`: leave roles alone; `Some(vec![])`: the user should hold no role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    /// The role for a single-valued `ROLE_TARGET`, in place of `roles` (which is then `None`
    /// and `roles` on the account is left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_attribute: Option<RoleAttribute>,
    /// The team (NICE extension); `None` leaves the account's team as it is. Written only when
    /// the account holds another team `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamRef>,
    /// Values a new account is created with, never written to an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Box<crate::person::Attributes>>,
}

/// The one role a single-valued attribute should hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAttribute {
    /// The attribute path, as `ROLE_TARGET` gives it.
    pub path: String,
    /// The role's value; `None` (no role granted) removes the attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl RoleAttribute {
    /// The role's value, trimmed; `None` when no role is granted.
    pub(crate) fn wanted(&self) -> Option<&str> {
        self.value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// Whether `path` names this attribute (in any case, with or without the core User URN).
    fn is_at(&self, path: &str) -> bool {
        let (a, b) = (AttrPath::split(&self.path), AttrPath::split(path));
        let same = |x: Option<&str>, y: Option<&str>| match (x, y) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            (None, None) => true,
            _ => false,
        };
        same(a.urn, b.urn) && a.attr.eq_ignore_ascii_case(b.attr) && same(a.sub, b.sub)
    }

    /// Sets or removes the attribute on `user`; a user the edit cannot be read back into (a
    /// sub-attribute its schema does not define) is left as it is.
    fn apply_to(&self, user: &mut User) {
        let Ok(mut resource) = serde_json::to_value(&*user) else {
            return;
        };
        set_path(&mut resource, &AttrPath::split(&self.path), self.wanted());
        if let Ok(edited) = serde_json::from_value(resource) {
            *user = edited;
        }
    }

    /// The operation that writes this role: `replace` of the attribute, or `remove` when no
    /// role is granted.
    pub(crate) fn operation(&self) -> PatchOperation {
        match self.wanted() {
            Some(want) => PatchOperation::replace(&self.path, want),
            None => PatchOperation::remove(&self.path),
        }
    }

    /// [`Self::operation`], unless `current` already holds this role.
    fn patch_for(&self, current: &User) -> Option<PatchOperation> {
        (text_at(current, &self.path).as_deref() != self.wanted()).then(|| self.operation())
    }
}

/// The text `user` holds at the single-valued attribute `path` (blank counts as none).
pub fn text_at(user: &User, path: &str) -> Option<String> {
    text_of(&serde_json::to_value(user).ok()?, path)
}

/// The role values `user` holds in `roles` (`path` `None`) or in the single-valued attribute
/// `path`.
pub fn role_values_at(user: &User, path: Option<&str>) -> Vec<String> {
    match path {
        Some(path) => text_at(user, path).into_iter().collect(),
        None => user.roles.iter().map(|r| r.value.clone()).collect(),
    }
}

/// What one optional text attribute should become.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Keep,
    Set(String),
    Clear,
}

/// `None` keeps, blank clears, anything else (trimmed) is set.
fn change_of(value: Option<&str>) -> Change {
    match value.map(str::trim) {
        None => Change::Keep,
        Some("") => Change::Clear,
        Some(v) => Change::Set(v.to_string()),
    }
}

/// The text attributes a blank value clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    DisplayName,
    Title,
    Department,
    EmployeeNumber,
}

impl Text {
    const ALL: [Text; 4] = [Text::DisplayName, Text::Title, Text::Department, Text::EmployeeNumber];

    fn path(self) -> &'static str {
        match self {
            Text::DisplayName => "displayName",
            Text::Title => "title",
            Text::Department => DEPARTMENT_PATH,
            Text::EmployeeNumber => EMPLOYEE_NUMBER_PATH,
        }
    }

    fn get(self, user: &User) -> Option<&str> {
        let enterprise = user.enterprise.as_ref();
        match self {
            Text::DisplayName => user.display_name.as_deref(),
            Text::Title => user.title.as_deref(),
            Text::Department => enterprise.and_then(|e| e.department.as_deref()),
            Text::EmployeeNumber => enterprise.and_then(|e| e.employee_number.as_deref()),
        }
    }

    /// Sets or removes the attribute; an enterprise extension left empty goes, URN included.
    fn set(self, user: &mut User, value: Option<String>) {
        match self {
            Text::DisplayName => user.display_name = value,
            Text::Title => user.title = value,
            Text::Department | Text::EmployeeNumber => {
                let enterprise = user.enterprise.get_or_insert_with(EnterpriseUser::default);
                if self == Text::Department {
                    enterprise.department = value;
                } else {
                    enterprise.employee_number = value;
                }
                if *enterprise == EnterpriseUser::default() {
                    user.enterprise = None;
                    user.schemas.retain(|s| s != ENTERPRISE_USER_SCHEMA);
                } else if !user.schemas.iter().any(|s| s == ENTERPRISE_USER_SCHEMA) {
                    user.schemas.push(ENTERPRISE_USER_SCHEMA.to_string());
                }
            }
        }
    }
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

    /// What `text` should become over a user named `current`.
    fn change(&self, text: Text, current: Option<&Name>) -> Change {
        match text {
            Text::DisplayName => match &self.display_name {
                Some(explicit) => change_of(Some(explicit)),
                // Computed only when this state names the user: a state that says nothing
                // about the names leaves displayName as it is.
                None if self.name().is_some() => self.display_name_over(current).map_or(Change::Keep, Change::Set),
                None => Change::Keep,
            },
            Text::Title => change_of(self.title.as_deref()),
            Text::Department => change_of(self.department.as_deref()),
            Text::EmployeeNumber => change_of(self.employee_number.as_deref()),
        }
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
        for text in Text::ALL {
            match self.change(text, user.name.as_ref()) {
                Change::Keep => {}
                Change::Set(value) => text.set(user, Some(value)),
                Change::Clear => text.set(user, None),
            }
        }
        if let Some(email) = non_empty(self.email.as_deref()) {
            match user.emails.iter_mut().find(|e| is_work(e)) {
                Some(work) => work.value = email,
                None => {
                    let primary = !user.emails.iter().any(|e| e.primary == Some(true));
                    user.emails.push(work_email(&email, primary));
                }
            }
        }
        if self.active.is_some() {
            user.active = self.active;
        }
        if let Some(roles) = &self.roles {
            user.roles = roles.clone();
        }
        if let Some(team) = self.wanted_team() {
            if !holds_team(user, team) {
                user.set_team(team);
            }
        }
        if let Some(attribute) = &self.role_attribute {
            attribute.apply_to(user);
        }
    }

    /// The team this state sets; a blank `value` counts as none.
    fn wanted_team(&self) -> Option<&TeamRef> {
        self.team.as_ref().filter(|t| !t.value.trim().is_empty())
    }

    /// The role values `user` holds where this state writes them (`roles`, unless the state
    /// names a single-valued attribute).
    pub fn role_values_held_by(&self, user: &User) -> Vec<String> {
        role_values_at(user, self.role_attribute.as_ref().map(|a| a.path.as_str()))
    }

    /// The role values this state writes, wherever the target keeps them; `None` when it
    /// leaves roles alone.
    pub fn role_values(&self) -> Option<Vec<String>> {
        match (&self.roles, &self.role_attribute) {
            (_, Some(attribute)) => Some(attribute.wanted().map(str::to_string).into_iter().collect()),
            (Some(roles), None) => Some(roles.iter().map(|r| r.value.clone()).collect()),
            (None, None) => None,
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

/// Body of `POST /Users`: the desired state over the initial values. A new user is active
/// unless told otherwise, and gets the userName as work email when none is given and the
/// userName is an address.
pub fn create_payload(desired: &DesiredUser) -> User {
    let desired = desired.at_creation();
    let mut user = User {
        schemas: vec![USER_SCHEMA.to_string()],
        active: Some(true),
        ..User::default()
    };
    desired.apply_to(&mut user);
    if user.emails.is_empty() && looks_like_email(&desired.user_name) {
        user.emails.push(work_email(desired.user_name.trim(), true));
    }
    user
}

/// Body of `PUT /Users/{id}`: the current resource with the managed attributes set, so that
/// attributes cxone-scim does not manage survive the full replace. Read-only `meta` and
/// `groups` are dropped; initial values are not applied.
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

/// The minimal PATCH that takes `current` to `desired`; `None` when nothing differs. Initial
/// values are never sent.
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
    ] {
        if let Some(want) = want {
            if have.as_ref() != Some(&want) {
                ops.push(PatchOperation::replace(path, want));
            }
        }
    }
    for text in Text::ALL {
        let have = text.get(current);
        match desired.change(text, name) {
            Change::Set(want) if have != Some(want.as_str()) => ops.push(PatchOperation::replace(text.path(), want)),
            Change::Clear if have.is_some_and(|h| !h.trim().is_empty()) => {
                ops.push(PatchOperation::remove(text.path()))
            }
            _ => {}
        }
    }
    if let Some(email) = non_empty(desired.email.as_deref()) {
        match current.emails.iter().find(|e| is_work(e)) {
            Some(work) if work.value.eq_ignore_ascii_case(&email) => {}
            Some(_) => ops.push(PatchOperation::replace(WORK_EMAIL_PATH, email)),
            None => {
                let primary = !current.emails.iter().any(|e| e.primary == Some(true));
                ops.push(PatchOperation::add("emails", json!([work_email(&email, primary)])));
            }
        }
    }
    if let Some(active) = desired.active.filter(|&a| a != current.is_active()) {
        ops.push(PatchOperation::replace("active", active));
    }
    ops.extend(desired.wanted_team().and_then(|team| team_patch(current, team)));
    if let Some(attribute) = &desired.role_attribute {
        // The role owns its attribute: no other change of the same path goes alongside.
        ops.retain(|op| !op.path.as_deref().is_some_and(|p| attribute.is_at(p)));
        ops.extend(attribute.patch_for(current));
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

/// Whether `user` holds `team` (the same `value`).
fn holds_team(user: &User, team: &TeamRef) -> bool {
    user.team().is_some_and(|held| held.same_team(team))
}

/// The `replace` of [`TEAM_PATH`] with `{"value", "display"?}` that puts `current` in `team`;
/// `None` when it already holds that team `value` (or `team`'s value is blank).
pub fn team_patch(current: &User, team: &TeamRef) -> Option<PatchOperation> {
    (!team.value.trim().is_empty() && !holds_team(current, team))
        .then(|| PatchOperation::replace(TEAM_PATH, Value::from(team)))
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
            ..DesiredUser::default()
        }
    }

    fn staffed() -> DesiredUser {
        DesiredUser {
            title: Some("Agent".into()),
            department: Some("Support".into()),
            employee_number: Some("E-17".into()),
            ..jane()
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

    #[wasm_bindgen_test(unsupported = test)]
    fn create_sets_title_and_the_enterprise_attributes() {
        let v = serde_json::to_value(create_payload(&staffed())).unwrap();
        assert_eq!(v["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(v["title"], "Agent");
        assert_eq!(
            v[ENTERPRISE_USER_SCHEMA],
            json!({"department":"Support","employeeNumber":"E-17"})
        );
        let plain = serde_json::to_value(create_payload(&jane())).unwrap();
        assert_eq!(plain["schemas"], json!([USER_SCHEMA]), "no extension, no URN");
        assert!(plain.get(ENTERPRISE_USER_SCHEMA).is_none() && plain.get("title").is_none());
        assert!(
            DEPARTMENT_PATH.starts_with(ENTERPRISE_USER_SCHEMA)
                && EMPLOYEE_NUMBER_PATH.starts_with(ENTERPRISE_USER_SCHEMA)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_explicit_display_name_wins_and_blank_removes() {
        let d = DesiredUser {
            display_name: Some("Jane D.".into()),
            ..jane()
        };
        assert_eq!(create_payload(&d).display_name.as_deref(), Some("Jane D."));
        let current = create_payload(&jane());
        let p = patch_to(&current, &d).unwrap();
        assert_eq!(paths(&p), [("displayName", PatchOpKind::Replace)]);
        assert_eq!(p.operations[0].value, Some(json!("Jane D.")));
        let cleared = DesiredUser {
            display_name: Some(String::new()),
            ..jane()
        };
        assert_eq!(
            paths(&patch_to(&current, &cleared).unwrap()),
            [("displayName", PatchOpKind::Remove)]
        );
        assert_eq!(create_payload(&cleared).display_name, None);
        let mut bare = current.clone();
        bare.display_name = None;
        assert_eq!(patch_to(&bare, &cleared), None, "nothing to remove");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn patch_sets_changes_and_removes_only_what_differs() {
        let current = create_payload(&staffed());
        assert_eq!(patch_to(&current, &staffed()), None);
        let d = DesiredUser {
            title: Some("Supervisor".into()),
            department: Some(String::new()),
            employee_number: None,
            ..staffed()
        };
        let p = patch_to(&current, &d).unwrap();
        assert_eq!(
            paths(&p),
            [("title", PatchOpKind::Replace), (DEPARTMENT_PATH, PatchOpKind::Remove)]
        );
        assert_eq!(p.operations[1].value, None);
        let bare = create_payload(&jane());
        let cleared = DesiredUser {
            title: Some(" ".into()),
            department: Some(String::new()),
            employee_number: Some(String::new()),
            ..jane()
        };
        assert_eq!(patch_to(&bare, &cleared), None, "no remove of what is absent");
        let p = patch_to(&bare, &staffed()).unwrap();
        assert_eq!(
            paths(&p),
            [
                ("title", PatchOpKind::Replace),
                (DEPARTMENT_PATH, PatchOpKind::Replace),
                (EMPLOYEE_NUMBER_PATH, PatchOpKind::Replace),
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn replace_sets_and_clears_the_new_attributes() {
        let current: User =
            serde_json::from_str(include_str!("../../tests/fixtures/rfc7643_enterprise_user.json")).unwrap();
        let d = DesiredUser {
            user_name: "bjensen@example.com".into(),
            title: Some(String::new()),
            department: Some("Support".into()),
            employee_number: Some(String::new()),
            ..DesiredUser::default()
        };
        let put = replace_payload(&current, &d);
        assert_eq!(put.title, None);
        let ent = put.enterprise.as_ref().unwrap();
        assert_eq!(
            (ent.department.as_deref(), ent.employee_number.as_deref()),
            (Some("Support"), None)
        );
        assert_eq!(
            ent.manager,
            current.enterprise.as_ref().unwrap().manager,
            "unmanaged kept"
        );
        assert_eq!(put.display_name, current.display_name, "no names: displayName kept");
        let mut bare = create_payload(&staffed());
        bare.enterprise.as_mut().unwrap().employee_number = None;
        let put = replace_payload(
            &bare,
            &DesiredUser {
                department: Some(String::new()),
                ..jane()
            },
        );
        assert_eq!(put.enterprise, None);
        assert_eq!(put.schemas, [USER_SCHEMA], "an emptied extension takes its URN along");
    }

    const PRIMARY: &str = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole";
    const CXONE: &str = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User";

    fn single(path: &str, value: Option<&str>) -> DesiredUser {
        DesiredUser {
            roles: None,
            role_attribute: Some(RoleAttribute {
                path: path.into(),
                value: value.map(str::to_string),
            }),
            ..jane()
        }
    }

    /// Jane as CXone holds her: already as `jane()` asks, with `Agent` in `roles` and
    /// `primary` (when given) in the CXone extension.
    fn held(primary: Option<&str>) -> User {
        let mut user = create_payload(&jane());
        user.id = Some("u-1".into());
        if let Some(p) = primary {
            user.schemas.push(CXONE.into());
            user.extra
                .insert(CXONE.into(), json!({"primaryRole": p, "skill": "fr"}));
        }
        user
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_single_valued_role_target_patches_only_its_attribute() {
        let p = patch_to(&held(Some("Agent")), &single(PRIMARY, Some("Supervisor"))).unwrap();
        assert_eq!(paths(&p), [(PRIMARY, PatchOpKind::Replace)], "roles left alone");
        assert_eq!(p.operations[0].value, Some(json!("Supervisor")));
        assert_eq!(patch_to(&held(Some("Agent")), &single(PRIMARY, Some("Agent"))), None);
        // In any case, with the extension's URN as CXone spells it.
        assert_eq!(
            patch_to(&held(Some("Agent")), &single(&PRIMARY.to_uppercase(), Some("Agent"))),
            None
        );
        let p = patch_to(&held(None), &single(PRIMARY, Some("Agent"))).unwrap();
        assert_eq!(paths(&p), [(PRIMARY, PatchOpKind::Replace)], "added when missing");
        let p = patch_to(&held(Some("Agent")), &single(PRIMARY, None)).unwrap();
        assert_eq!(paths(&p), [(PRIMARY, PatchOpKind::Remove)], "no role granted: removed");
        assert_eq!(patch_to(&held(None), &single(PRIMARY, None)), None, "nothing to remove");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_role_owns_its_attribute_over_the_same_field_in_the_event() {
        let mut d = single("Title", Some("Supervisor"));
        d.title = Some("Night shift".into());
        let p = patch_to(&held(None), &d).unwrap();
        assert_eq!(
            paths(&p),
            [("Title", PatchOpKind::Replace)],
            "one operation on the path"
        );
        assert_eq!(p.operations[0].value, Some(json!("Supervisor")));
        assert_eq!(create_payload(&d).title.as_deref(), Some("Supervisor"));
        let mut current = held(None);
        current.title = Some("Supervisor".into());
        assert_eq!(
            patch_to(&current, &d),
            None,
            "the title the event carries is not written over the role"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_and_replace_write_the_role_to_the_target_and_keep_the_rest() {
        let created = serde_json::to_value(create_payload(&single(PRIMARY, Some("Agent")))).unwrap();
        assert_eq!(created[CXONE], json!({"primaryRole": "Agent"}));
        assert_eq!(created["schemas"], json!([USER_SCHEMA, CXONE]));
        assert!(created.get("roles").is_none());
        let put =
            serde_json::to_value(replace_payload(&held(Some("Agent")), &single(PRIMARY, Some("Billing")))).unwrap();
        assert_eq!(
            put[CXONE],
            json!({"primaryRole": "Billing", "skill": "fr"}),
            "the extension's other attributes stay"
        );
        assert_eq!(put["roles"][0]["value"], "Agent", "roles is not the target: untouched");
        let put = serde_json::to_value(replace_payload(&held(Some("Agent")), &single(PRIMARY, None))).unwrap();
        assert_eq!(put[CXONE], json!({"skill": "fr"}));
    }

    const NICE: &str = crate::scim::user::NICE_USER_SCHEMA;

    fn team(value: &str, display: Option<&str>) -> TeamRef {
        TeamRef {
            value: value.into(),
            display: display.map(str::to_string),
        }
    }

    fn in_team(value: &str, display: Option<&str>) -> DesiredUser {
        DesiredUser {
            team: Some(team(value, display)),
            ..jane()
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_payload_carries_the_team_in_the_nice_extension() {
        let v = serde_json::to_value(create_payload(&in_team("t-1", Some("Support EMEA")))).unwrap();
        assert_eq!(v["schemas"], json!([USER_SCHEMA, NICE]));
        assert_eq!(v[NICE], json!({"team": {"value": "t-1", "display": "Support EMEA"}}));
        assert!(TEAM_PATH.starts_with(NICE) && TEAM_PATH.ends_with(":team"));
        let v = serde_json::to_value(create_payload(&DesiredUser {
            team: Some(team("t-1", None)),
            ..staffed()
        }))
        .unwrap();
        assert_eq!(v["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA, NICE]));
        assert_eq!(
            v[NICE],
            json!({"team": {"value": "t-1"}}),
            "no display when none is known"
        );
        let plain = serde_json::to_value(create_payload(&jane())).unwrap();
        assert!(plain.get(NICE).is_none(), "no team: no extension");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_team_is_patched_only_when_its_value_differs() {
        let current = create_payload(&in_team("t-1", Some("Support")));
        assert_eq!(patch_to(&current, &in_team("t-1", Some("Support"))), None);
        // By value only: another display, case or blanks around the id are the same team.
        assert_eq!(patch_to(&current, &in_team(" T-1 ", Some("Renamed"))), None);
        assert_eq!(patch_to(&current, &in_team("t-1", None)), None);
        let p = patch_to(&current, &in_team("t-2", Some("Billing"))).unwrap();
        assert_eq!(paths(&p), [(TEAM_PATH, PatchOpKind::Replace)]);
        assert_eq!(
            p.operations[0].value,
            Some(json!({"value": "t-2", "display": "Billing"}))
        );
        // An account without a team gets one; display left out when unknown.
        let p = patch_to(&create_payload(&jane()), &in_team("t-2", None)).unwrap();
        assert_eq!(paths(&p), [(TEAM_PATH, PatchOpKind::Replace)]);
        assert_eq!(p.operations[0].value, Some(json!({"value": "t-2"})));
        assert_eq!(
            team_patch(&current, &team("t-1", None)),
            None,
            "the same check for the role sync"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn no_team_leaves_the_team_untouched() {
        let current = create_payload(&in_team("t-1", Some("Support")));
        assert_eq!(patch_to(&current, &jane()), None, "no remove of the team");
        assert_eq!(patch_to(&current, &in_team(" ", None)), None, "a blank team is none");
        let put = serde_json::to_value(replace_payload(&current, &jane())).unwrap();
        assert_eq!(put[NICE], json!({"team": {"value": "t-1", "display": "Support"}}));
        assert!(create_payload(&in_team("", None)).team().is_none());
        // As JSON: `team` only when set.
        assert!(serde_json::to_value(jane()).unwrap().get("team").is_none());
        let d = serde_json::to_value(in_team("t-1", None)).unwrap();
        assert_eq!(d["team"], json!({"value": "t-1"}));
        assert_eq!(serde_json::from_value::<DesiredUser>(d).unwrap(), in_team("t-1", None));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn replace_sets_the_team_and_keeps_the_extension() {
        let mut current = held(None);
        current.schemas.push(NICE.into());
        current.extra.insert(
            NICE.into(),
            json!({"team": {"value": "t-1", "display": "Support"}, "skills": ["fr"]}),
        );
        let put = serde_json::to_value(replace_payload(&current, &in_team("t-2", Some("Billing")))).unwrap();
        assert_eq!(
            put[NICE],
            json!({"team": {"value": "t-2", "display": "Billing"}, "skills": ["fr"]})
        );
        assert_eq!(put["schemas"], json!([USER_SCHEMA, NICE]), "the URN listed once");
        let same = serde_json::to_value(replace_payload(&current, &in_team("T-1", Some("Renamed")))).unwrap();
        assert_eq!(
            same[NICE]["team"],
            json!({"value": "t-1", "display": "Support"}),
            "the same team is left as held"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn role_values_are_read_and_written_where_the_target_keeps_them() {
        let d = single(PRIMARY, Some(" Supervisor "));
        assert_eq!(d.role_values(), Some(vec!["Supervisor".to_string()]));
        assert_eq!(d.role_values_held_by(&held(Some("Agent"))), ["Agent"]);
        assert!(d.role_values_held_by(&held(None)).is_empty());
        assert_eq!(single(PRIMARY, None).role_values(), Some(vec![]));
        assert_eq!(jane().role_values(), Some(vec!["Agent".to_string()]));
        assert_eq!(jane().role_values_held_by(&held(Some("Billing"))), ["Agent"]);
        let no_roles = DesiredUser { roles: None, ..jane() };
        assert_eq!(no_roles.role_values(), None);
    }
}
