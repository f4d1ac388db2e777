//! Turning a user's groups into CXone roles under the policy.

use super::document::{Mode, RolePolicy};
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

impl RolePolicy {
    /// Maps groups to roles. A group matches a mapping by object id first, then by display name
    /// (both case-insensitively). Duplicate roles collapse; their order follows the groups.
    pub fn resolve(&self, groups: &[GroupInput]) -> Result<Resolution, RbacViolation> {
        let mut out = Resolution::default();
        let mut unmapped = Vec::new();
        for g in groups {
            let by_id = g.id.as_deref().and_then(|id| {
                self.mappings
                    .iter()
                    .find(|m| m.group_id.as_deref().is_some_and(|mid| same(mid, id)))
            });
            let by_name = || {
                g.display_name.as_deref().and_then(|name| {
                    self.mappings
                        .iter()
                        .find(|m| m.group.as_deref().is_some_and(|mg| same(mg, name)))
                })
            };
            if let Some(m) = by_id.or_else(by_name) {
                if !out.roles.iter().any(|r| r.value == m.role) {
                    out.roles.push(Role {
                        value: m.role.clone(),
                        display: Some(self.display_name(&m.role).unwrap_or(&m.role).to_string()),
                        ..Role::default()
                    });
                }
                continue;
            }
            let ignored = self.ignore_groups.iter().any(|ig| {
                g.display_name.as_deref().is_some_and(|n| same(ig, n)) || g.id.as_deref().is_some_and(|id| same(ig, id))
            });
            if ignored {
                out.ignored_groups.push(g.label());
            } else {
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
