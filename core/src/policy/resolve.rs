//! Turning a user's groups into CXone roles, and into their CXone team, under the policy.

use super::document::{Mapping, Mode, RolePolicy};
use crate::scim::user::TeamRef;
use crate::scim::Role;
use serde::{Deserialize, Serialize};

/// A group as the identity provider names it: display name, object id, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl GroupInput {
    fn label(&self) -> String {
        match (&self.display_name, &self.id) {
            (Some(n), _) => n.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => String::new(),
        }
    }
}

/// The roles a user should hold, and the groups that were set aside.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub roles: Vec<Role>,
    /// Unmapped groups skipped in lenient mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_groups: Vec<String>,
}

/// The user's groups break the policy: answered as HTTP 400 "RBAC violation".
/// As JSON: `{"kind":"unmapped_groups","groups":[...]}`, `{"kind":"too_many_roles","count":6,"max":5}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RbacViolation {
    #[error("RBAC violation: group(s) {} not mapped to a CXone role", quoted(.groups))]
    UnmappedGroups { groups: Vec<String> },
    #[error("RBAC violation: {count} roles exceed maxRolesPerUser {max}")]
    TooManyRoles { count: usize, max: usize },
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|g| format!("'{g}'")).collect::<Vec<_>>().join(", ")
}

/// Group names and object ids compare case-insensitively (Unicode-aware past ASCII).
fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!a.is_ascii() || !b.is_ascii()) && a.to_lowercase() == b.to_lowercase()
}

impl Mapping {
    /// Whether the group is this mapping's: `groupId` against the group's object id, `group`
    /// against its display name.
    fn by_id(&self, g: &GroupInput) -> bool {
        matches!((&self.group_id, &g.id), (Some(mid), Some(id)) if same(mid, id))
    }

    fn by_name(&self, g: &GroupInput) -> bool {
        matches!((&self.group, &g.display_name), (Some(mg), Some(name)) if same(mg, name))
    }

    fn matches(&self, g: &GroupInput) -> bool {
        self.by_id(g) || self.by_name(g)
    }

    /// The team id, trimmed; `None` for a role mapping.
    fn team_id(&self) -> Option<&str> {
        self.team.as_deref().map(str::trim).filter(|t| !t.is_empty())
    }
}

impl RolePolicy {
    /// Whether `ignoreGroups` names the group, by display name or by object id.
    fn ignores(&self, g: &GroupInput) -> bool {
        self.ignore_groups.iter().any(|ig| {
            g.display_name.as_deref().is_some_and(|n| same(ig, n)) || g.id.as_deref().is_some_and(|id| same(ig, id))
        })
    }

    /// Maps groups to roles. A group matches a role mapping by object id first, then by display
    /// name (both case-insensitively). Duplicate roles collapse; their order follows the groups.
    /// A group mapped only to a team grants no role and is not unmapped (unless `ignoreGroups`
    /// names it: then it is ignored, as [`RolePolicy::team_for`] ignores it).
    pub fn resolve(&self, groups: &[GroupInput]) -> Result<Resolution, RbacViolation> {
        let mut out = Resolution::default();
        let mut unmapped = Vec::new();
        let role_mappings = || self.mappings.iter().filter_map(|m| m.role.as_deref().map(|r| (m, r)));
        for g in groups {
            let granted = role_mappings()
                .find(|(m, _)| m.by_id(g))
                .or_else(|| role_mappings().find(|(m, _)| m.by_name(g)));
            if let Some((_, role)) = granted {
                if !out.roles.iter().any(|r| r.value == role) {
                    out.roles.push(Role {
                        value: role.to_string(),
                        display: Some(self.display_name(role).unwrap_or(role).to_string()),
                        ..Role::default()
                    });
                }
                continue;
            }
            if self.ignores(g) {
                out.ignored_groups.push(g.label());
            } else if !self.mappings.iter().any(|m| m.team_id().is_some() && m.matches(g)) {
                unmapped.push(g.label());
            }
        }
        if !unmapped.is_empty() {
            match self.mode {
                Mode::Strict => return Err(RbacViolation::UnmappedGroups { groups: unmapped }),
                Mode::Lenient => out.skipped_groups = unmapped,
            }
        }
        if out.roles.len() > self.max_roles_per_user {
            return Err(RbacViolation::TooManyRoles {
                count: out.roles.len(),
                max: self.max_roles_per_user,
            });
        }
        Ok(out)
    }

    /// Whether a mapping, role or team, matches the group (as [`RolePolicy::resolve`] and
    /// [`RolePolicy::team_for`] match; `ignoreGroups` aside). A group for which this is false
    /// and `resolve` grants nothing and ignores nothing plays no part in the policy.
    pub fn maps_group(&self, group: &GroupInput) -> bool {
        self.mappings
            .iter()
            .any(|m| (m.role.is_some() || m.team_id().is_some()) && m.matches(group))
    }

    /// The team the groups put a person in: that of the first team mapping, in policy order,
    /// one of the groups matches (`groupId` by object id, `group` by display name, in any case,
    /// as [`RolePolicy::resolve`] matches). Groups `ignoreGroups` names (by display name or id)
    /// select no team. `None` when no team mapping matches: the team is then left as it is.
    ///
    /// One team per person: later matching team mappings are not consulted. Team mappings never
    /// grant roles, and role mappings never select a team.
    pub fn team_for(&self, groups: &[GroupInput]) -> Option<TeamRef> {
        let considered: Vec<&GroupInput> = groups.iter().filter(|g| !self.ignores(g)).collect();
        self.mappings
            .iter()
            .filter_map(|m| m.team_id().map(|t| (m, t)))
            .find(|(m, _)| considered.iter().any(|g| m.matches(g)))
            .map(|(m, team)| TeamRef {
                value: team.to_string(),
                display: m
                    .team_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RolePolicy;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn policy() -> RolePolicy {
        RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap()
    }

    fn named(n: &str) -> GroupInput {
        GroupInput {
            display_name: Some(n.into()),
            id: None,
        }
    }

    fn values(r: &Resolution) -> Vec<&str> {
        r.roles.iter().map(|r| r.value.as_str()).collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn maps_by_name_and_by_id_and_ignores() {
        let by_id = GroupInput {
            display_name: Some("Renamed in Entra".into()),
            id: Some("6F1C2D3E-0000-4000-8000-00000000A001".into()),
        };
        let r = policy()
            .resolve(&[named("CXone-Agent"), by_id, named("all staff")])
            .unwrap();
        assert_eq!(values(&r), ["Agent", "Supervisor"]);
        assert_eq!(r.ignored_groups, ["all staff"]);
        assert_eq!(r.roles[0].display.as_deref(), Some("Agent"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn strict_rejects_unmapped_lenient_skips() {
        let groups = [named("cxone-agent"), named("Finance")];
        let e = policy().resolve(&groups).unwrap_err();
        assert_eq!(
            e,
            RbacViolation::UnmappedGroups {
                groups: vec!["Finance".into()]
            }
        );
        assert!(e.to_string().starts_with("RBAC violation"));
        let mut lenient = policy();
        lenient.mode = Mode::Lenient;
        let r = lenient.resolve(&groups).unwrap();
        assert_eq!(values(&r), ["Agent"]);
        assert_eq!(r.skipped_groups, ["Finance"]);
    }

    fn teams() -> RolePolicy {
        RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy_teams.json")).unwrap()
    }

    fn with_id(name: &str, id: &str) -> GroupInput {
        GroupInput {
            display_name: Some(name.into()),
            id: Some(id.into()),
        }
    }

    const EMEA: &str = "5f0c7e2a-1d2b-4c3d-8e4f-a1b2c3d4e5f6";
    const BILLING: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
    const AGENTS: &str = "0d1e2f3a-4b5c-4d6e-8f7a-8b9c0d1e2f3a";

    fn team_of(p: &RolePolicy, groups: &[GroupInput]) -> Option<(String, Option<String>)> {
        p.team_for(groups).map(|t| (t.value, t.display))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_first_team_mapping_in_policy_order_wins() {
        let p = teams();
        // Whatever the order of the groups, the mapping listed first in the policy wins.
        let by_id = GroupInput {
            display_name: None,
            id: Some("6F1C2D3E-0000-4000-8000-00000000A002".into()),
        };
        for groups in [
            vec![named("cxone-agent"), by_id.clone(), named("Support-EMEA")],
            vec![named("Support-EMEA"), by_id.clone(), named("cxone-agent")],
        ] {
            assert_eq!(
                team_of(&p, &groups),
                Some((EMEA.into(), Some("Support EMEA".into()))),
                "{groups:?}"
            );
        }
        assert_eq!(
            team_of(&p, &[named("cxone-agent"), by_id]),
            Some((BILLING.into(), Some("Billing".into()))),
            "matched by object id"
        );
        assert_eq!(
            team_of(&p, &[named("cxone-agent")]),
            Some((AGENTS.into(), None)),
            "no teamName: no display"
        );
        // A groupId mapping matches the id only, a group mapping the display name only.
        assert_eq!(team_of(&p, &[named("6f1c2d3e-0000-4000-8000-00000000a002")]), None);
        assert_eq!(
            team_of(&p, &[with_id("Renamed", "support-emea"), named("cxone-supervisor")]),
            None
        );
        assert_eq!(team_of(&p, &[]), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ignored_groups_select_no_team() {
        let p = teams();
        // The display name is mapped to a team, the object id is ignored: no team.
        let ignored = with_id("all-staff-emea", "0B8E7C6D-0000-4000-8000-00000000B0FF");
        assert_eq!(team_of(&p, std::slice::from_ref(&ignored)), None);
        let r = p.resolve(&[ignored]).unwrap();
        assert_eq!(r.ignored_groups, ["all-staff-emea"]);
        assert_eq!(
            team_of(&p, &[named("All-Staff-EMEA")]),
            Some(("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".into(), Some("Everyone".into())))
        );
        assert_eq!(team_of(&p, &[named("all staff")]), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn team_mappings_grant_no_role_and_are_not_unmapped() {
        let p = teams();
        assert_eq!(p.mode, Mode::Strict);
        // Mapped to a team only: strict mode does not refuse it, and it grants nothing.
        let r = p.resolve(&[named("support-emea")]).unwrap();
        assert!(r.roles.is_empty() && r.skipped_groups.is_empty() && r.ignored_groups.is_empty());
        // Mapped to a role and to a team: the role from the role mapping.
        let r = p.resolve(&[named("cxone-agent"), named("support-emea")]).unwrap();
        assert_eq!(values(&r), ["Agent"]);
        // Role mappings select no team.
        assert_eq!(team_of(&p, &[named("cxone-supervisor")]), None);
        // Unmapped groups still break a strict policy.
        assert_eq!(
            p.resolve(&[named("support-emea"), named("Finance")]).unwrap_err(),
            RbacViolation::UnmappedGroups {
                groups: vec!["Finance".into()]
            }
        );
        // A policy without team mappings never names a team.
        assert_eq!(team_of(&policy(), &[named("cxone-agent")]), None);
        // Mapped: to a role, to a team, or to both; by id or by name.
        assert!(p.maps_group(&named("Support-EMEA")) && p.maps_group(&named("cxone-supervisor")));
        assert!(p.maps_group(&GroupInput {
            display_name: None,
            id: Some("6f1c2d3e-0000-4000-8000-00000000a002".into()),
        }));
        assert!(!p.maps_group(&named("Finance")) && !p.maps_group(&named("All Staff")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_event_with_groups_carries_its_team() {
        use crate::event::{Command, LifecycleEvent};
        let desired = |json: &str| {
            let event = LifecycleEvent::from_json(json.as_bytes()).unwrap();
            match event.command(&teams(), &crate::policy::RoleTarget::Roles).unwrap().0 {
                Command::Upsert { desired, .. } => Some(*desired),
                _ => None,
            }
        };
        let d = desired(
            r#"{"operation":"create","userName":"jdoe@example.com",
                "groups":[{"displayName":"cxone-agent"},{"displayName":"support-emea"}]}"#,
        )
        .unwrap();
        assert_eq!(
            d.team,
            Some(TeamRef {
                value: EMEA.into(),
                display: Some("Support EMEA".into())
            })
        );
        assert_eq!(d.roles.map(|r| r.len()), Some(1), "the team grants no role");
        // No groups: the team is left alone; groups without a team mapping: the same.
        let d = desired(r#"{"operation":"update","userName":"jdoe@example.com"}"#).unwrap();
        assert_eq!(d.team, None);
        let d = desired(
            r#"{"operation":"update","userName":"jdoe@example.com","groups":[{"displayName":"cxone-supervisor"}]}"#,
        )
        .unwrap();
        assert_eq!(d.team, None);
        assert!(desired(r#"{"operation":"disable","userName":"jdoe@example.com","groups":[]}"#).is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn duplicates_collapse_and_limit_applies() {
        let r = policy().resolve(&[named("cxone-agent"), named("cxone-agent")]).unwrap();
        assert_eq!(values(&r), ["Agent"]);
        let mut p = policy();
        p.max_roles_per_user = 1;
        let e = p
            .resolve(&[named("cxone-agent"), named("cxone-supervisor")])
            .unwrap_err();
        assert_eq!(e, RbacViolation::TooManyRoles { count: 2, max: 1 });
        assert!(policy().resolve(&[]).unwrap().roles.is_empty());
    }
}
