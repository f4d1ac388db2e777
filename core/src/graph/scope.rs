//! Who gets a CXone account, and which of a person's groups count.
//!
//! `GRAPH_USER_SCOPE`: `mapped-groups` (the default) gives an account only to people in at
//! least one group a policy mapping names; `all` to every user the sync reads.
//! `GRAPH_GROUP_SCOPE`: an optional displayName prefix (`CXone-`) for groups that count even
//! when the policy does not name them, so that a new CXone group nobody mapped yet is reported
//! (and, in strict mode, refused) instead of passing unnoticed.
//!
//! Entra users are in many groups that have nothing to do with CXone (All Staff, Finance,
//! Building 4). Those are dropped before the policy resolves roles, so that strict mode never
//! rejects a person for them.

use crate::policy::{GroupInput, RbacViolation, RolePolicy};
use serde::{Deserialize, Serialize};

/// The longest prefix taken: an Entra group's displayName has at most 256 characters.
const MAX_PREFIX_CHARS: usize = 256;

/// `GRAPH_USER_SCOPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserScope {
    /// People in at least one group a policy mapping names.
    #[default]
    MappedGroups,
    /// Every user.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub users: UserScope,
    /// Groups whose displayName starts with this (case-insensitively) count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("GRAPH_USER_SCOPE must be mapped-groups or all, not {0:?}")]
    UserScope(String),
    #[error("GRAPH_GROUP_SCOPE must be a group name prefix of at most {MAX_PREFIX_CHARS} characters without control characters")]
    GroupPrefix,
}

/// How the policy names a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// A mapping matches it.
    Mapped,
    /// `ignoreGroups` lists it.
    Ignored,
    /// Only a team mapping matches it: it sets the person's team, and admits nobody.
    Team,
    No,
}

/// Asks the policy itself about the one group, so that a group counted here as mapped is
/// exactly one [`RolePolicy::resolve`] maps (id first, then displayName, case-insensitively).
fn named(policy: &RolePolicy, group: &GroupInput) -> Named {
    match policy.resolve(std::slice::from_ref(group)) {
        Ok(r) if !r.roles.is_empty() => Named::Mapped,
        Ok(r) if !r.ignored_groups.is_empty() => Named::Ignored,
        Ok(_) if policy.maps_group(group) => Named::Team,
        Ok(_) | Err(RbacViolation::UnmappedGroups { .. }) => Named::No,
        // One mapped group is over the limit only when the limit is 0: it is still mapped.
        Err(RbacViolation::TooManyRoles { .. }) => Named::Mapped,
    }
}

fn starts_with_ignoring_case(name: &str, prefix: &str) -> bool {
    let mut name = name.chars().flat_map(char::to_lowercase);
    prefix
        .chars()
        .flat_map(char::to_lowercase)
        .all(|p| name.next() == Some(p))
}

impl Scope {
    /// Reads `GRAPH_USER_SCOPE` and `GRAPH_GROUP_SCOPE`; unset or blank values take the
    /// defaults (`mapped-groups`, no prefix).
    pub fn parse(user_scope: Option<&str>, group_prefix: Option<&str>) -> Result<Scope, ScopeError> {
        let users = match user_scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => UserScope::MappedGroups,
            Some(s) if s.eq_ignore_ascii_case("mapped-groups") => UserScope::MappedGroups,
            Some(s) if s.eq_ignore_ascii_case("all") => UserScope::All,
            Some(s) => return Err(ScopeError::UserScope(s.chars().take(64).collect())),
        };
        let group_prefix = match group_prefix.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(p) if p.chars().count() > MAX_PREFIX_CHARS || p.chars().any(char::is_control) => {
                return Err(ScopeError::GroupPrefix)
            }
            Some(p) => Some(p.to_string()),
        };
        Ok(Scope { users, group_prefix })
    }

    /// Whether deciding who gets an account needs the person's groups (`mapped-groups`). Roles
    /// come from groups either way: a host that resolves roles reads them for `all` too.
    pub fn needs_groups(&self) -> bool {
        self.users == UserScope::MappedGroups
    }

    fn has_prefix(&self, group: &GroupInput) -> bool {
        match (&self.group_prefix, &group.display_name) {
            (Some(prefix), Some(name)) => starts_with_ignoring_case(name, prefix),
            _ => false,
        }
    }

    /// The groups the policy resolves roles from: those a mapping or `ignoreGroups` names, and
    /// those with the prefix. Every other membership is dropped, in Graph's order otherwise.
    pub fn groups_that_count(&self, policy: &RolePolicy, groups: &[GroupInput]) -> Vec<GroupInput> {
        groups
            .iter()
            .filter(|g| self.has_prefix(g) || named(policy, g) != Named::No)
            .cloned()
            .collect()
    }

    /// Whether the person gets an account: always for `all`; for `mapped-groups` when at least
    /// one of their groups (nested ones included, as transitiveMemberOf lists them) is mapped.
    pub fn admits(&self, policy: &RolePolicy, groups: &[GroupInput]) -> bool {
        match self.users {
            UserScope::All => true,
            UserScope::MappedGroups => groups.iter().any(|g| named(policy, g) == Named::Mapped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::{Flow, Step};
    use crate::graph::{MemberOfFlow, Membership};
    use crate::http::HttpResponse;
    use crate::policy::Mode;
    use crate::retry::RetryPolicy;
    use serde_json::{json, Value};
    use wasm_bindgen_test::wasm_bindgen_test;

    const SAMPLE: &str = include_str!("../../tests/fixtures/graph_transitive_member_of.json");

    fn policy() -> RolePolicy {
        RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap()
    }

    fn group(name: &str, id: &str) -> GroupInput {
        GroupInput {
            display_name: Some(name.into()),
            id: Some(id.into()),
        }
    }

    /// A transitiveMemberOf answer shaped as the documented sample: a user directly in
    /// "Contact Centre North", which is nested in the mapped "CXone-Agent", plus unrelated
    /// groups. Graph's transitive list already names the parent.
    fn nested_membership() -> Vec<GroupInput> {
        let mut doc: Value = serde_json::from_str(SAMPLE).unwrap();
        doc["value"] = json!([
            {"displayName": "Contact Centre North", "id": "0b4f6c1a-0000-4000-8000-000000000001"},
            {"displayName": "CXone-Agent", "id": "0b4f6c1a-0000-4000-8000-000000000002"},
            {"displayName": "Contoso-tier Query Notification", "id": "11111111-2222-3333-4444-555555555555"},
            {"displayName": "All Staff", "id": "0b4f6c1a-0000-4000-8000-000000000003"},
        ]);
        let mut f = MemberOfFlow::new("https://graph.microsoft.com/v1.0", "u1", RetryPolicy::default(), 1);
        assert!(matches!(f.next_step(0), Step::Send(_)));
        f.on_response(HttpResponse::new(200, doc.to_string()), 0);
        match f.next_step(0) {
            Step::Done(Ok(Membership::Groups(groups))) => groups,
            other => panic!("{other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_group_mapped_to_a_team_alone_is_passed_on_and_admits_nobody() {
        let policy = RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy_teams.json")).unwrap();
        let scope = Scope::default();
        let team = group("support-emea", "0b4f6c1a-0000-4000-8000-0000000000aa");
        let agent = group("cxone-agent", "0b4f6c1a-0000-4000-8000-0000000000ab");
        let alone = std::slice::from_ref(&team);
        assert_eq!(scope.groups_that_count(&policy, alone), alone);
        assert!(!scope.admits(&policy, alone));
        assert!(scope.admits(&policy, &[team.clone(), agent.clone()]));
        let counted = scope.groups_that_count(&policy, &[team.clone(), agent]);
        assert_eq!(
            policy.team_for(&counted).map(|t| t.value),
            policy.team_for(alone).map(|t| t.value)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn nested_membership_admits_and_unrelated_groups_are_dropped() {
        let scope = Scope::default();
        let groups = nested_membership();
        assert!(scope.needs_groups());
        assert!(scope.admits(&policy(), &groups), "in CXone-Agent through nesting");
        let counted = scope.groups_that_count(&policy(), &groups);
        assert_eq!(
            counted,
            [
                group("CXone-Agent", "0b4f6c1a-0000-4000-8000-000000000002"),
                group("All Staff", "0b4f6c1a-0000-4000-8000-000000000003"),
            ]
        );
        // Strict mode resolves what counts, where it refuses the whole membership.
        let p = policy();
        assert_eq!(p.mode, Mode::Strict);
        assert!(p.resolve(&groups).is_err());
        let r = p.resolve(&counted).unwrap();
        assert_eq!(r.roles.len(), 1);
        assert_eq!(r.roles[0].value, "Agent");
        assert_eq!(r.ignored_groups, ["All Staff"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_mapping_by_object_id_counts_whatever_the_name() {
        let renamed = group("Renamed in Entra", "6F1C2D3E-0000-4000-8000-00000000A001");
        let scope = Scope::default();
        assert!(scope.admits(&policy(), std::slice::from_ref(&renamed)));
        assert_eq!(
            scope.groups_that_count(&policy(), std::slice::from_ref(&renamed)),
            [renamed]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn mapped_groups_admits_only_people_in_a_mapped_group() {
        let scope = Scope::default();
        let unrelated = [group("Finance", "f1"), group("All Staff", "a1")];
        assert!(
            !scope.admits(&policy(), &unrelated),
            "an ignored group is not a mapping"
        );
        assert!(!scope.admits(&policy(), &[]));
        assert!(scope.groups_that_count(&policy(), &[group("Finance", "f1")]).is_empty());
        let all = Scope::parse(Some("all"), None).unwrap();
        assert!(!all.needs_groups());
        assert!(all.admits(&policy(), &[]));
        assert!(all.admits(&policy(), &unrelated));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_prefix_counts_unmapped_cxone_groups() {
        let scope = Scope::parse(None, Some(" cxone- ")).unwrap();
        assert_eq!(scope.group_prefix.as_deref(), Some("cxone-"));
        let groups = [
            group("CXone-Agent", "g1"),
            group("CXone-Night-Shift", "g2"),
            group("Finance", "g3"),
            group("XCXone-Other", "g4"),
        ];
        let counted = scope.groups_that_count(&policy(), &groups);
        assert_eq!(counted, [group("CXone-Agent", "g1"), group("CXone-Night-Shift", "g2")]);
        // The unmapped CXone group is then reported by the policy: refused in strict mode.
        let err = policy().resolve(&counted).unwrap_err();
        assert_eq!(
            err,
            RbacViolation::UnmappedGroups {
                groups: vec!["CXone-Night-Shift".into()]
            }
        );
        // A prefix alone does not admit.
        assert!(!scope.admits(&policy(), &[group("CXone-Night-Shift", "g2")]));
        assert!(starts_with_ignoring_case("ÉQUIPE Nord", "équipe"));
        assert!(!starts_with_ignoring_case("CX", "CXone"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parse_defaults_and_errors() {
        assert_eq!(Scope::parse(None, None).unwrap(), Scope::default());
        assert_eq!(Scope::parse(Some("  "), Some("")).unwrap(), Scope::default());
        assert_eq!(Scope::parse(Some("ALL"), None).unwrap().users, UserScope::All);
        assert_eq!(
            Scope::parse(Some("Mapped-Groups"), None).unwrap().users,
            UserScope::MappedGroups
        );
        let err = Scope::parse(Some("everyone"), None).unwrap_err();
        assert_eq!(err, ScopeError::UserScope("everyone".into()));
        assert!(err.to_string().contains("mapped-groups or all"), "{err}");
        assert_eq!(Scope::parse(None, Some("a\u{7}b")), Err(ScopeError::GroupPrefix));
        assert_eq!(Scope::parse(None, Some(&"x".repeat(257))), Err(ScopeError::GroupPrefix));
        assert!(Scope::parse(None, Some(&"x".repeat(256))).is_ok());
        assert_eq!(
            serde_json::to_string(&Scope::default()).unwrap(),
            r#"{"users":"mapped-groups"}"#
        );
    }
}
