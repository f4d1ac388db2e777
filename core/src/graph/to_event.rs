//! A `/users/delta` entry as a [`LifecycleEvent`], through the [`AttributeMap`].
//!
//! The event is always an update: on a first round Graph cannot tell a joiner from a mover, and
//! an update creates the account when CXone has none. Only the properties the entry carries
//! are set. A `null` (or empty) property clears `displayName`, `title`, `department` and
//! `employeeNumber`; the names and the work email, which a CXone user must have, are left as
//! they are; `active` is left as it is; `userName` and `externalId` cannot be cleared.
//! `cxone`-owned values go to `initial` only.

use super::delta::DeltaUser;
use super::map::{AttributeMap, MapError, Mapping};
use super::target::{Owner, Target};
use crate::event::{LifecycleEvent, Operation};
use crate::person::Attributes;
use crate::policy::GroupInput;
use crate::UnixMillis;
use serde_json::Value;

/// A property of one entry, as far as mapping cares.
enum Read<'a> {
    Absent,
    /// `null`, or a blank string.
    Cleared,
    Text(&'a str),
    Bool(bool),
    /// Another JSON type, named.
    Other(&'static str),
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `property` of `user`: exactly as named, else in another case (Graph's names are not
/// case-sensitive in `$select`, but its answers spell them its own way).
fn read<'a>(user: &'a DeltaUser, property: &str) -> Read<'a> {
    if property.eq_ignore_ascii_case("id") {
        return Read::Text(&user.id);
    }
    let value = user.property(property).or_else(|| {
        user.properties
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(property))
            .map(|(_, v)| v)
    });
    match value {
        None => Read::Absent,
        Some(Value::Null) => Read::Cleared,
        Some(Value::String(s)) if s.trim().is_empty() => Read::Cleared,
        Some(Value::String(s)) => Read::Text(s),
        Some(Value::Bool(b)) => Read::Bool(*b),
        Some(other) => Read::Other(kind_of(other)),
    }
}

impl AttributeMap {
    /// The update event for a changed (not removed) Graph user. `groups`: the user's
    /// memberships, when read; `occurred_at`: when the change was read.
    pub fn to_event(
        &self,
        user: &DeltaUser,
        groups: Option<Vec<GroupInput>>,
        occurred_at: UnixMillis,
    ) -> Result<LifecycleEvent, MapError> {
        let mut event = LifecycleEvent {
            operation: Operation::Update,
            groups,
            occurred_at: Some(occurred_at),
            ..LifecycleEvent::default()
        };
        let mut initial = Attributes::default();
        for m in self.mappings() {
            apply(user, m, &mut event, &mut initial)?;
        }
        event.initial = Some(initial).filter(|i| !i.is_empty());
        event.validate().map_err(|error| MapError::Event {
            id: user.id.clone(),
            error,
        })?;
        Ok(event)
    }
}

/// Sets what mapping `m` takes from `user`.
fn apply(user: &DeltaUser, m: &Mapping, event: &mut LifecycleEvent, initial: &mut Attributes) -> Result<(), MapError> {
    let wrong = |expected: &'static str, found: &'static str| MapError::WrongType {
        id: user.id.clone(),
        property: m.property.clone(),
        target: m.target.name(),
        expected,
        found,
    };
    let value = read(user, &m.property);
    if m.target == Target::Active {
        event.account_enabled = match value {
            Read::Absent | Read::Cleared => None,
            Read::Bool(b) => Some(b),
            Read::Text(_) => return Err(wrong("a boolean", "a string")),
            Read::Other(found) => return Err(wrong("a boolean", found)),
        };
        return Ok(());
    }
    let text = match value {
        Read::Absent if m.target.entra_only() => {
            return Err(MapError::Missing {
                id: user.id.clone(),
                property: m.property.clone(),
                target: m.target.name(),
            })
        }
        Read::Cleared if m.target.entra_only() => {
            return Err(MapError::NotClearable {
                id: user.id.clone(),
                property: m.property.clone(),
                target: m.target.name(),
            })
        }
        Read::Absent => return Ok(()),
        Read::Cleared => None,
        Read::Text(t) => Some(t.to_string()),
        Read::Bool(_) => return Err(wrong("a string", "a boolean")),
        Read::Other(found) => return Err(wrong("a string", found)),
    };
    if m.owner == Owner::Cxone {
        // A first value only: nothing to clear on an account that does not exist yet.
        if let (Some(text), Some(slot)) = (text, initial_slot(initial, m.target)) {
            *slot = Some(text);
        }
        return Ok(());
    }
    match m.target {
        // Trimmed as a webhook's is: the same person under the same key.
        Target::UserName => event.user_name = text.unwrap_or_default().trim().to_string(),
        Target::ExternalId => event.external_id = text,
        // CXone needs names and a work email: a cleared one is left as it is.
        Target::GivenName => event.first_name = text,
        Target::FamilyName => event.last_name = text,
        Target::WorkEmail => event.email = text,
        Target::DisplayName => event.display_name = Some(text.unwrap_or_default()),
        Target::Title => event.title = Some(text.unwrap_or_default()),
        Target::Department => event.department = Some(text.unwrap_or_default()),
        Target::EmployeeNumber => event.employee_number = Some(text.unwrap_or_default()),
        Target::Active => {}
    }
    Ok(())
}

/// Where a `cxone`-owned value goes in `initial`; `None` for the identity and `active`, which
/// the map keeps Entra's.
fn initial_slot(initial: &mut Attributes, target: Target) -> Option<&mut Option<String>> {
    match target {
        Target::GivenName => Some(&mut initial.first_name),
        Target::FamilyName => Some(&mut initial.last_name),
        Target::WorkEmail => Some(&mut initial.email),
        Target::DisplayName => Some(&mut initial.display_name),
        Target::Title => Some(&mut initial.title),
        Target::Department => Some(&mut initial.department),
        Target::EmployeeNumber => Some(&mut initial.employee_number),
        Target::UserName | Target::ExternalId | Target::Active => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Command;
    use crate::graph::DeltaPage;
    use crate::policy::RolePolicy;
    use crate::scim::build::{create_payload, patch_to, DesiredUser, DEPARTMENT_PATH};
    use crate::scim::PatchOpKind;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    const INITIAL: &str = include_str!("../../tests/fixtures/graph_users_delta_initial.json");
    const CHANGES: &str = include_str!("../../tests/fixtures/graph_users_delta_changes.json");
    const PAGE: &str = include_str!("../../tests/fixtures/graph_users_delta_page.json");
    const AT: UnixMillis = 1_795_340_957_000;

    fn entry(value: Value) -> DeltaUser {
        serde_json::from_value(value).unwrap()
    }

    fn event(map: &AttributeMap, value: Value) -> LifecycleEvent {
        map.to_event(&entry(value), None, AT).unwrap()
    }

    fn desired(e: &LifecycleEvent) -> DesiredUser {
        let policy = RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap();
        match e.command(&policy, &crate::policy::RoleTarget::Roles).unwrap().0 {
            Command::Upsert { desired, .. } => *desired,
            other => panic!("{other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_documented_samples_through_the_default_map() {
        let map = AttributeMap::default();
        let page = DeltaPage::from_slice(INITIAL.as_bytes()).unwrap();
        // The sample selected no userPrincipalName: an entry without it cannot name the account.
        let err = map.to_event(&page.value[0], None, AT).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Graph user ffff7b1a-13b6-477b-8c0c-380905cd99f7: userPrincipalName is missing, and userName needs it"
        );
        let mut cameron = page.value[0].clone();
        cameron
            .properties
            .insert("userPrincipalName".into(), json!("cameron@contoso.example"));
        let e = map.to_event(&cameron, None, AT).unwrap();
        assert_eq!(
            e.operation,
            Operation::Update,
            "never create: a first round knows no joiners"
        );
        assert_eq!(e.user_name, "cameron@contoso.example");
        assert_eq!(e.external_id.as_deref(), Some("ffff7b1a-13b6-477b-8c0c-380905cd99f7"));
        assert_eq!(
            (e.first_name.as_deref(), e.last_name.as_deref()),
            (Some("Cameron"), Some("White"))
        );
        assert_eq!(e.display_name, None, "displayName is not in the default map");
        assert_eq!(
            (e.title.as_ref(), e.email.as_ref(), e.account_enabled),
            (None, None, None)
        );
        assert_eq!(e.occurred_at, Some(AT));
        let removed = &page.value[2];
        assert!(removed.removed.is_some());
        assert_eq!(
            map.external_id_of(&removed.id).as_deref(),
            Some("86462606-fde0-4fc4-9e0c-a20eb73e54c6")
        );
        let changes = DeltaPage::from_slice(CHANGES.as_bytes()).unwrap();
        let mut admin = changes.value[0].clone();
        admin
            .properties
            .insert("userPrincipalName".into(), json!("admin@contoso.example"));
        let e = map.to_event(&admin, None, AT).unwrap();
        assert_eq!(
            (e.first_name.as_deref(), e.last_name.as_deref()),
            (Some("MOD"), Some("Administrator"))
        );
        assert_eq!(
            map.external_id_of(&changes.value[1].id).as_deref(),
            Some("8ffff70c-1c63-4860-b963-e34ec660931d")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_full_page_maps_every_selected_property() {
        let map = AttributeMap::default();
        let page = DeltaPage::from_slice(PAGE.as_bytes()).unwrap();
        let events: Vec<LifecycleEvent> = page
            .value
            .iter()
            .filter(|u| u.removed.is_none())
            .map(|u| map.to_event(u, Some(vec![]), AT).unwrap())
            .collect();
        assert_eq!(events.len(), 95);
        let e = &events[0];
        assert_eq!(e.user_name, "user0@contoso.example");
        assert_eq!(e.email.as_deref(), Some("user0@contoso.example"));
        assert_eq!(e.account_enabled, Some(true));
        assert_eq!(e.title.as_deref(), Some("Agent"));
        assert_eq!(e.department.as_deref(), Some("Support"));
        assert_eq!(e.employee_number.as_deref(), Some("E00000"));
        assert_eq!(e.groups.as_deref(), Some(&[][..]));
        assert_eq!(e.initial, None);
        let back = LifecycleEvent::from_json(&serde_json::to_vec(e).unwrap()).unwrap();
        assert_eq!(&back, e, "a mapped event can be stored and replayed");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_partial_entry_sets_only_its_properties() {
        let e = event(
            &AttributeMap::default(),
            json!({"id":"u-1","userPrincipalName":"a@b.co","jobTitle":"Lead"}),
        );
        assert_eq!(e.title.as_deref(), Some("Lead"));
        assert_eq!((&e.first_name, &e.last_name, &e.email), (&None, &None, &None));
        assert_eq!(
            (&e.department, &e.employee_number, e.account_enabled),
            (&None, &None, None)
        );
        let d = desired(&e);
        assert_eq!((d.title.as_deref(), d.department.as_ref()), (Some("Lead"), None));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn null_clears_what_may_be_cleared() {
        let map = AttributeMap::parse(
            r#"{"id":"externalId","userPrincipalName":"userName","givenName":"name.givenName","mail":"emails",
                "accountEnabled":"active","jobTitle":"title","department":"department","displayName":"displayName"}"#,
        )
        .unwrap();
        let e = event(
            &map,
            json!({"id":"u-1","userPrincipalName":"a@b.co","jobTitle":null,"department":"","displayName":null,
                   "givenName":null,"mail":null,"accountEnabled":null}),
        );
        assert_eq!(e.title.as_deref(), Some(""));
        assert_eq!(e.department.as_deref(), Some(""));
        assert_eq!(e.display_name.as_deref(), Some(""));
        assert_eq!((&e.first_name, &e.email, e.account_enabled), (&None, &None, None));
        let d = desired(&e);
        let current = create_payload(&DesiredUser {
            title: Some("Agent".into()),
            department: Some("Support".into()),
            ..d.clone()
        });
        let p = patch_to(&current, &d).unwrap();
        let ops: Vec<_> = p.operations.iter().map(|o| (o.path.as_deref(), o.op)).collect();
        assert_eq!(
            ops,
            [
                (Some("title"), PatchOpKind::Remove),
                (Some(DEPARTMENT_PATH), PatchOpKind::Remove)
            ],
            "displayName was never set: nothing to remove"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn cxone_owned_values_are_only_initial() {
        let map = AttributeMap::parse(
            r#"{"id":"externalId","userPrincipalName":"userName","jobTitle":{"to":"title","owner":"cxone"},
                "department":{"to":"department","owner":"cxone"},"givenName":{"to":"name.givenName","owner":"cxone"},
                "mail":"emails"}"#,
        )
        .unwrap();
        let e = event(
            &map,
            json!({"id":"u-1","userPrincipalName":"a@b.co","jobTitle":"Agent","department":null,"givenName":"Al",
                   "mail":"al@b.co"}),
        );
        assert_eq!(
            (e.title.as_ref(), e.department.as_ref(), e.first_name.as_ref()),
            (None, None, None)
        );
        assert_eq!(e.email.as_deref(), Some("al@b.co"), "entra-owned: a normal field");
        let initial = e.initial.clone().unwrap();
        assert_eq!(initial.title.as_deref(), Some("Agent"));
        assert_eq!(initial.first_name.as_deref(), Some("Al"));
        assert_eq!(initial.department, None, "a cleared cxone value gives no first value");
        let d = desired(&e);
        let created = create_payload(&d);
        assert_eq!(created.title.as_deref(), Some("Agent"));
        assert_eq!(created.name.as_ref().and_then(|n| n.given_name.as_deref()), Some("Al"));
        let mut current = created.clone();
        current.title = Some("Senior Agent".into());
        current.name = None;
        current.display_name = Some("Set in CXone".into());
        assert_eq!(
            patch_to(&current, &d),
            None,
            "CXone's title, names and displayName stay"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn values_that_do_not_fit_are_refused_with_the_property() {
        let map = AttributeMap::default();
        let by_employee_id =
            AttributeMap::parse(r#"{"employeeId":"externalId","userPrincipalName":"userName"}"#).unwrap();
        let cases = [
            (
                &map,
                json!({"id":"u-1","userPrincipalName":"a@b.co","accountEnabled":"yes"}),
                "Graph user u-1: accountEnabled must be a boolean for active, not a string",
            ),
            (
                &map,
                json!({"id":"u-1","userPrincipalName":"a@b.co","jobTitle":["a"]}),
                "Graph user u-1: jobTitle must be a string for title, not an array",
            ),
            (
                &map,
                json!({"id":"u-1","userPrincipalName":"a@b.co","surname":false}),
                "Graph user u-1: surname must be a string for name.familyName, not a boolean",
            ),
            (
                &map,
                json!({"id":"u-1","userPrincipalName":null}),
                "Graph user u-1: userPrincipalName is empty, and userName cannot be cleared",
            ),
            (
                &by_employee_id,
                json!({"id":"u-1","userPrincipalName":"a@b.co","employeeId":null}),
                "Graph user u-1: employeeId is empty, and externalId cannot be cleared",
            ),
            (
                &by_employee_id,
                json!({"id":"u-1","userPrincipalName":"a@b.co"}),
                "Graph user u-1: employeeId is missing, and externalId needs it",
            ),
            (
                &map,
                json!({"id":"u-1","userPrincipalName":"a@b.co","mail":"not-an-address"}),
                "Graph user u-1: invalid event: email",
            ),
        ];
        for (map, value, want) in cases {
            let msg = map.to_event(&entry(value), None, AT).unwrap_err().to_string();
            assert!(msg.starts_with(want), "{msg:?} should start with {want:?}");
        }
        let e = event(
            &by_employee_id,
            json!({"id":"u-1","userPrincipalName":"a@b.co","employeeId":"E-1"}),
        );
        assert_eq!(e.external_id.as_deref(), Some("E-1"));
        assert_eq!(by_employee_id.external_id_of("u-1"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn property_names_match_in_any_case() {
        let map =
            AttributeMap::parse(r#"{"ID":"externalId","userprincipalname":"userName","JobTitle":"title"}"#).unwrap();
        let e = event(&map, json!({"id":"u-1","userPrincipalName":"a@b.co","jobTitle":"Lead"}));
        assert_eq!((e.user_name.as_str(), e.title.as_deref()), ("a@b.co", Some("Lead")));
        assert_eq!(e.external_id.as_deref(), Some("u-1"));
        assert_eq!(map.external_id_of("u-1").as_deref(), Some("u-1"));
    }
}
