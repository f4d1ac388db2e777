//! What one delta change asks of CXone: the attribute map, the scope and the role policy turn an
//! entry of `/users/delta` (and the person's groups) into a lifecycle event, or nothing.
//!
//! - `@removed` `changed` (soft-deleted, restorable) → disable; `deleted` → the leaver
//!   `GRAPH_DELETE_MODE` names (`disable` by default, or `delete`).
//! - In scope → an update event with the mapped attributes the entry carries and the roles of
//!   the groups that count (those the policy names, or in `GRAPH_GROUP_SCOPE`).
//! - Out of scope → a leaver (disable) when the person was in scope before, else nothing.

use super::map::AttributeMap;
use super::members::Membership;
use super::pass::{Plan, Skip};
use super::reader::{Change, Removal};
use super::scope::Scope;
use super::target::Target;
use super::DeltaUser;
use crate::event::{LifecycleEvent, Operation};
use crate::policy::RolePolicy;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// `GRAPH_DELETE_MODE`: what a user deleted for good in Entra becomes in CXone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    #[default]
    Disable,
    Delete,
}

impl DeleteMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "disable" => Some(Self::Disable),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// What planning reads besides the change.
#[derive(Debug, Clone, Copy)]
pub struct Planner<'a> {
    pub map: &'a AttributeMap,
    pub scope: &'a Scope,
    pub policy: &'a RolePolicy,
    pub delete_mode: DeleteMode,
}

impl<'a> Planner<'a> {
    /// The planner the settings describe: their attribute map and role policy, Graph's scope
    /// and delete mode.
    pub fn of(settings: &'a crate::settings::Settings, graph: &'a crate::settings::GraphSettings) -> Self {
        Self {
            map: &settings.attribute_map,
            scope: &graph.scope,
            policy: &settings.policy,
            delete_mode: graph.delete_mode,
        }
    }
}

/// What an earlier pass left about a person (the host keeps it per Entra object id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnownPerson {
    /// cxone-scim gave the person an account (and has not taken it away since).
    pub in_scope: bool,
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// Why a change could not be planned; the host parks it as a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("Graph user {id}: {detail}")]
    Unmappable { id: String, detail: String },
    #[error("Graph user {0} left, but its externalId is not its object id and no earlier pass recorded it")]
    UnknownLeaver(String),
}

impl Planner<'_> {
    /// Whether planning an upsert needs the person's groups (scope or roles come from them).
    pub fn needs_groups(&self) -> bool {
        self.scope.needs_groups() || !self.policy.mappings.is_empty()
    }

    /// Whether `user` lacks what finds or creates the person (a delta entry with only its
    /// changed properties): the host reads the whole user first ([`super::UserReadFlow`]).
    pub fn needs_full_read(&self, user: &DeltaUser) -> bool {
        let needed = [Target::UserName, Target::ExternalId];
        needed
            .iter()
            .filter_map(|t| self.map.source(*t))
            .any(|p| !p.eq_ignore_ascii_case("id") && user.property(p).is_none())
    }

    /// A leaver found by what is known of them: externalId (the object id when the map says
    /// so, else what an earlier pass recorded), and userName when known.
    fn leaver(
        &self,
        id: &str,
        known: Option<&KnownPerson>,
        user_name: Option<String>,
        operation: Operation,
        at: UnixMillis,
    ) -> Result<Plan, PlanError> {
        let external_id = self
            .map
            .external_id_of(id)
            .or_else(|| known.map(|k| k.external_id.clone()))
            .ok_or_else(|| PlanError::UnknownLeaver(id.to_string()))?;
        let user_name = user_name.or_else(|| known.and_then(|k| k.user_name.clone()));
        Ok(Plan::Leaver(Box::new(LifecycleEvent {
            operation,
            user_name: user_name.unwrap_or_default(),
            external_id: Some(external_id),
            occurred_at: Some(at),
            ..LifecycleEvent::default()
        })))
    }

    /// The plan for `change`, read at `read_at`. `membership`: the person's groups (upserts,
    /// when [`Planner::needs_groups`]); `known`: what earlier passes recorded of the person.
    pub fn plan(
        &self,
        change: &Change,
        membership: Option<&Membership>,
        known: Option<&KnownPerson>,
        read_at: UnixMillis,
    ) -> Result<Plan, PlanError> {
        let user = match change {
            Change::Removed { id, removal } => {
                let operation = match (removal, self.delete_mode) {
                    (Removal::Deleted, DeleteMode::Delete) => Operation::Delete,
                    _ => Operation::Disable,
                };
                return self.leaver(id, known, None, operation, read_at);
            }
            Change::Upsert { user } => user,
        };
        let groups = match membership {
            Some(Membership::UserGone) => return Ok(Plan::Ignore(Skip::Gone)),
            Some(Membership::Groups(groups)) => Some(groups.as_slice()),
            None => None,
        };
        let in_scope = groups.map_or(!self.scope.needs_groups(), |g| self.scope.admits(self.policy, g));
        if !in_scope {
            if !known.is_some_and(|k| k.in_scope) {
                return Ok(Plan::Ignore(Skip::OutOfScope));
            }
            let user_name = self
                .map
                .source(Target::UserName)
                .and_then(|p| user.text(p))
                .map(str::to_string);
            return self.leaver(&user.id, known, user_name, Operation::Disable, read_at);
        }
        let counted = groups.map(|g| self.scope.groups_that_count(self.policy, g));
        let event = self
            .map
            .to_event(user, counted, read_at)
            .map_err(|e| PlanError::Unmappable {
                id: user.id.clone(),
                detail: e.to_string(),
            })?;
        if event.account_enabled == Some(false) && known.is_some_and(|k| k.in_scope) {
            // Disabled in Entra while its account is live: a leaver like any other, so the
            // deletion guard counts it (a script that disables 500 accounts is held like one
            // that removes them). Once disabled the person is out of scope, and later rounds
            // that still read it disabled are upserts that change nothing.
            return Ok(Plan::Leaver(Box::new(LifecycleEvent {
                operation: Operation::Disable,
                user_name: event.user_name,
                external_id: event.external_id,
                occurred_at: event.occurred_at,
                ..LifecycleEvent::default()
            })));
        }
        Ok(Plan::Upsert(Box::new(event)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::scope::UserScope;
    use crate::policy::GroupInput;
    use wasm_bindgen_test::wasm_bindgen_test;

    const POLICY: &str = r#"{"version":1,"mode":"strict","mappings":[{"group":"cxone-agent","role":"Agent"},
        {"groupId":"g-sup","role":"Supervisor"}]}"#;

    fn user(json: &str) -> Change {
        Change::Upsert {
            user: Box::new(serde_json::from_str(json).unwrap()),
        }
    }

    fn jane() -> Change {
        user(
            r#"{"id":"u1","userPrincipalName":"jane@contoso.com","givenName":"Jane","surname":"Doe","jobTitle":"Agent"}"#,
        )
    }

    fn group(name: &str, id: &str) -> GroupInput {
        GroupInput {
            display_name: Some(name.into()),
            id: Some(id.into()),
        }
    }

    struct Fixture {
        map: AttributeMap,
        scope: Scope,
        policy: RolePolicy,
    }

    fn fixture(map: AttributeMap) -> Fixture {
        Fixture {
            map,
            scope: Scope::parse(None, None).unwrap(),
            policy: RolePolicy::from_json(POLICY).unwrap(),
        }
    }

    impl Fixture {
        fn planner(&self, delete_mode: DeleteMode) -> Planner<'_> {
            Planner {
                map: &self.map,
                scope: &self.scope,
                policy: &self.policy,
                delete_mode,
            }
        }
    }

    fn event(plan: Plan) -> LifecycleEvent {
        match plan {
            Plan::Upsert(e) | Plan::Leaver(e) => *e,
            Plan::Ignore(s) => panic!("ignored: {s:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn removals_are_leavers_found_by_their_object_id() {
        let f = fixture(AttributeMap::default());
        let soft = Change::Removed {
            id: "u1".into(),
            removal: Removal::Changed,
        };
        let hard = Change::Removed {
            id: "u1".into(),
            removal: Removal::Deleted,
        };
        let p = f.planner(DeleteMode::Delete);
        let e = event(p.plan(&soft, None, None, 7).unwrap());
        assert_eq!(
            (e.operation, e.external_id.as_deref(), e.occurred_at),
            (Operation::Disable, Some("u1"), Some(7))
        );
        assert_eq!(
            event(p.plan(&hard, None, None, 7).unwrap()).operation,
            Operation::Delete
        );
        let p = f.planner(DeleteMode::default());
        assert!(matches!(p.plan(&hard, None, None, 7).unwrap(), Plan::Leaver(e) if e.operation == Operation::Disable));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn nested_membership_counts_and_unrelated_groups_do_not_fail_strict_mode() {
        let f = fixture(AttributeMap::default());
        let p = f.planner(DeleteMode::default());
        // Transitive: the user is in team-x, which is in cxone-agent.
        let groups = Membership::Groups(vec![
            group("team-x", "g-x"),
            group("cxone-agent", "g-a"),
            group("All Hands", "g-h"),
        ]);
        let plan = p.plan(&jane(), Some(&groups), None, 5).unwrap();
        let Plan::Upsert(e) = plan else { panic!("{plan:?}") };
        let names: Vec<_> = e
            .groups
            .iter()
            .flatten()
            .filter_map(|g| g.display_name.clone())
            .collect();
        assert_eq!(names, ["cxone-agent"]);
        let (command, _) = e
            .command(&f.policy, &crate::policy::RoleTarget::Roles)
            .expect("strict mode passes");
        let crate::event::Command::Upsert { desired, .. } = command else {
            panic!()
        };
        let roles: Vec<_> = desired.roles.unwrap().into_iter().map(|r| r.value).collect();
        assert_eq!(roles, ["Agent"]);
        assert_eq!(desired.title.as_deref(), Some("Agent"));
        assert_eq!(e.external_id.as_deref(), Some("u1"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_user_disabled_in_entra_is_a_leaver_the_guard_counts() {
        let f = fixture(AttributeMap::default());
        let p = f.planner(DeleteMode::default());
        let agents = Membership::Groups(vec![group("cxone-agent", "g-a")]);
        let disabled =
            user(r#"{"id":"u1","userPrincipalName":"jane@contoso.com","accountEnabled":false,"jobTitle":"Gone"}"#);
        let live = KnownPerson {
            in_scope: true,
            external_id: "u1".into(),
            user_name: None,
        };
        let plan = p.plan(&disabled, Some(&agents), Some(&live), 5).unwrap();
        assert!(matches!(plan, Plan::Leaver(_)), "{plan:?}");
        let e = event(plan);
        assert_eq!(
            (
                e.operation,
                e.user_name.as_str(),
                e.external_id.as_deref(),
                e.occurred_at
            ),
            (Operation::Disable, "jane@contoso.com", Some("u1"), Some(5))
        );
        // Not (or no longer) an account of ours: an upsert with active=false, as before, which
        // disables an account made elsewhere and changes nothing on one disabled already.
        let gone = KnownPerson {
            in_scope: false,
            ..live.clone()
        };
        for known in [None, Some(&gone)] {
            let plan = p.plan(&disabled, Some(&agents), known, 5).unwrap();
            assert!(
                matches!(&plan, Plan::Upsert(e) if e.account_enabled == Some(false)),
                "{plan:?}"
            );
        }
        // Enabled, or not said: an upsert as before.
        let enabled = user(r#"{"id":"u1","userPrincipalName":"jane@contoso.com","accountEnabled":true}"#);
        assert!(matches!(
            p.plan(&enabled, Some(&agents), None, 5).unwrap(),
            Plan::Upsert(_)
        ));
        assert!(matches!(
            p.plan(&jane(), Some(&agents), None, 5).unwrap(),
            Plan::Upsert(_)
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn out_of_scope_is_nothing_unless_the_person_was_in_scope() {
        let f = fixture(AttributeMap::default());
        let p = f.planner(DeleteMode::default());
        let none = Membership::Groups(vec![group("All Hands", "g-h")]);
        assert_eq!(
            p.plan(&jane(), Some(&none), None, 5).unwrap(),
            Plan::Ignore(Skip::OutOfScope)
        );
        let known = KnownPerson {
            in_scope: true,
            external_id: "u1".into(),
            user_name: None,
        };
        let e = event(p.plan(&jane(), Some(&none), Some(&known), 5).unwrap());
        assert_eq!(e.operation, Operation::Disable);
        assert_eq!(e.user_name, "jane@contoso.com");
        let left = KnownPerson {
            in_scope: false,
            ..known
        };
        assert_eq!(
            p.plan(&jane(), Some(&none), Some(&left), 5).unwrap(),
            Plan::Ignore(Skip::OutOfScope)
        );
        assert_eq!(
            p.plan(&jane(), Some(&Membership::UserGone), None, 5).unwrap(),
            Plan::Ignore(Skip::Gone)
        );
        // Scope `all`: everyone is in, with no group read at all.
        let all = Fixture {
            scope: Scope {
                users: UserScope::All,
                group_prefix: None,
            },
            ..fixture(AttributeMap::default())
        };
        assert!(matches!(
            all.planner(DeleteMode::Disable).plan(&jane(), None, None, 5).unwrap(),
            Plan::Upsert(_)
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_partial_entry_is_read_in_full_and_a_leaver_keyed_elsewhere_needs_a_record() {
        let f = fixture(AttributeMap::default());
        let p = f.planner(DeleteMode::default());
        let Change::Upsert { user: partial } = user(r#"{"id":"u1","jobTitle":"Lead"}"#) else {
            panic!()
        };
        assert!(p.needs_full_read(&partial));
        let Change::Upsert { user: full } = jane() else {
            panic!()
        };
        assert!(!p.needs_full_read(&full));
        let by_employee = AttributeMap::parse(
            r#"{"employeeId":"externalId","userPrincipalName":"userName","accountEnabled":"active"}"#,
        )
        .unwrap();
        let f = fixture(by_employee);
        let p = f.planner(DeleteMode::default());
        let gone = Change::Removed {
            id: "u1".into(),
            removal: Removal::Changed,
        };
        assert_eq!(p.plan(&gone, None, None, 1), Err(PlanError::UnknownLeaver("u1".into())));
        let known = KnownPerson {
            in_scope: true,
            external_id: "E-100".into(),
            user_name: Some("jane@contoso.com".into()),
        };
        let e = event(p.plan(&gone, None, Some(&known), 1).unwrap());
        assert_eq!(
            (e.external_id.as_deref(), e.user_name.as_str()),
            (Some("E-100"), "jane@contoso.com")
        );
    }
}
