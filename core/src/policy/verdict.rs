//! Inheritance that counts: each role's closure, and the verdict on the roles a person may hold.
//!
//! A role's *closure* is the role and everything it inherits through `inheritsFrom`,
//! transitively. The person's groups grant roles ([`RolePolicy::resolve`]); a granted role also
//! covers its closure, so a request for `Agent` from someone granted `Supervisor` (which inherits
//! `Agent`) is within what they hold. A request for anything outside that coverage is an
//! escalation, and is reported as such rather than as an ordinary failure.

use super::document::RolePolicy;
use super::resolve::{GroupInput, RbacViolation};
use crate::scim::Role;
use serde::{Deserialize, Serialize};

/// What the policy says about one person's roles.
///
/// ```json
/// {"verdict":"pass","roles":[{"value":"Supervisor","display":"Supervisor"}]}
/// {"verdict":"fail","reason":{"kind":"too_many_roles","count":6,"max":5}}
/// {"verdict":"escalation_detected","role":"Admin","via":{"inherited":"Billing"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The roles to write: the granted ones, followed by what they inherit when the policy has
    /// `expandInherited`.
    Pass { roles: Vec<Role> },
    /// The groups break the policy (unmapped group in strict mode, too many roles).
    Fail { reason: RbacViolation },
    /// A requested role the person's groups do not cover.
    EscalationDetected { role: String, via: Via },
}

/// Why a requested role is an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The requested role itself: unknown to the policy, or not granted while everything it
    /// inherits is. Serialized as `"request"`.
    Request,
    /// A role the requested one inherits that the groups do not grant (the first in closure
    /// order). Serialized as `{"inherited":"<roleId>"}`.
    Inherited(String),
}

impl RolePolicy {
    /// Whether the policy knows a role: listed in `roles`, or, when `roles` is empty, named by a
    /// mapping. Role ids compare exactly (case-sensitively), as the document does.
    pub fn knows_role(&self, role_id: &str) -> bool {
        if self.roles.is_empty() {
            self.mappings.iter().any(|m| m.role.as_deref() == Some(role_id))
        } else {
            self.roles.iter().any(|r| r.role_id == role_id)
        }
    }

    /// The role and every role it inherits, transitively: the role first, then breadth-first in
    /// `inheritsFrom` order, each once. `None` for a role the policy does not know.
    ///
    /// The walk keeps a visited set, so it ends even on a policy whose fields were edited after
    /// [`RolePolicy::from_json`] checked them for cycles.
    pub fn closure<'a>(&'a self, role_id: &str) -> Option<Vec<&'a str>> {
        if self.roles.is_empty() {
            return self
                .mappings
                .iter()
                .find_map(|m| m.role.as_deref().filter(|r| *r == role_id))
                .map(|r| vec![r]);
        }
        let start = self.roles.iter().find(|r| r.role_id == role_id)?;
        let mut out = vec![start.role_id.as_str()];
        let mut next = 0;
        while let Some(&id) = out.get(next) {
            next += 1;
            let parents = self
                .roles
                .iter()
                .find(|r| r.role_id == id)
                .map(|r| r.inherits_from.as_slice())
                .unwrap_or_default();
            for parent in parents {
                if !out.contains(&parent.as_str()) {
                    out.push(parent.as_str());
                }
            }
        }
        Some(out)
    }

    /// A role's priority for a single-valued target; absent (or not in `roles`) counts as 0.
    pub fn priority(&self, role_id: &str) -> i64 {
        self.roles
            .iter()
            .find(|r| r.role_id == role_id)
            .and_then(|r| r.priority)
            .unwrap_or(0)
    }

    /// The one role a single-valued target receives: highest `priority`, ties to the lowest
    /// `value` (roleId, byte order). `None` when `roles` is empty.
    pub fn pick_for_target<'r>(&self, roles: &'r [Role]) -> Option<&'r Role> {
        roles.iter().max_by(|a, b| {
            self.priority(&a.value)
                .cmp(&self.priority(&b.value))
                .then_with(|| b.value.cmp(&a.value))
        })
    }

    /// The verdict on a person: their groups grant roles (via [`RolePolicy::resolve`]), and every
    /// role in `requested`, when given, must lie within the closures of the granted roles.
    ///
    /// Order of checks: the groups first (a [`Verdict::Fail`] from `resolve`), then each
    /// requested role in order (the first escalation wins), then the size of the written set.
    /// A request only ever narrows what passes: the written set is the granted roles (and, with
    /// `expandInherited`, what they inherit), never the request.
    pub fn verdict(&self, groups: &[GroupInput], requested: Option<&[String]>) -> Verdict {
        let resolution = match self.resolve(groups) {
            Ok(r) => r,
            Err(reason) => return Verdict::Fail { reason },
        };
        // Granted roles first (in resolve order), then what they inherit.
        let mut covered: Vec<&str> = resolution.roles.iter().map(|r| r.value.as_str()).collect();
        for granted in &resolution.roles {
            for id in self.closure(&granted.value).unwrap_or_default() {
                if !covered.contains(&id) {
                    covered.push(id);
                }
            }
        }
        for role in requested.unwrap_or_default() {
            let Some(closure) = self.closure(role) else {
                return Verdict::EscalationDetected {
                    role: role.clone(),
                    via: Via::Request,
                };
            };
            if let Some(missing) = closure.iter().skip(1).find(|id| !covered.contains(id)) {
                return Verdict::EscalationDetected {
                    role: role.clone(),
                    via: Via::Inherited((*missing).to_string()),
                };
            }
            if !covered.contains(&role.as_str()) {
                return Verdict::EscalationDetected {
                    role: role.clone(),
                    via: Via::Request,
                };
            }
        }
        let inherited: Vec<Role> = if self.expand_inherited {
            covered
                .iter()
                .skip(resolution.roles.len())
                .map(|id| Role {
                    value: (*id).to_string(),
                    display: Some(self.display_name(id).unwrap_or(id).to_string()),
                    ..Role::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut roles = resolution.roles;
        roles.extend(inherited);
        if roles.len() > self.max_roles_per_user {
            return Verdict::Fail {
                reason: RbacViolation::TooManyRoles {
                    count: roles.len(),
                    max: self.max_roles_per_user,
                },
            };
        }
        Verdict::Pass { roles }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Mode, PolicyError};
    use wasm_bindgen_test::wasm_bindgen_test;

    const LADDER: &str = include_str!("../../tests/fixtures/role_policy_inheritance.json");

    fn ladder() -> RolePolicy {
        RolePolicy::from_json(LADDER).unwrap()
    }

    fn named(n: &str) -> GroupInput {
        GroupInput {
            display_name: Some(n.into()),
            id: None,
        }
    }

    fn req(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn passed(v: &Verdict) -> Vec<&str> {
        match v {
            Verdict::Pass { roles } => roles.iter().map(|r| r.value.as_str()).collect(),
            other => panic!("expected pass, got {other:?}"),
        }
    }

    fn role(id: &str) -> Role {
        Role {
            value: id.into(),
            ..Role::default()
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn closures_follow_inheritance_breadth_first() {
        let p = ladder();
        assert_eq!(p.closure("Agent").unwrap(), ["Agent"]);
        assert_eq!(p.closure("Supervisor").unwrap(), ["Supervisor", "Agent"]);
        assert_eq!(p.closure("Admin").unwrap(), ["Admin", "Supervisor", "Billing", "Agent"]);
        assert!(p.closure("Root").is_none());
        assert!(p.knows_role("Billing") && !p.knows_role("billing"));
        // Without a roles list, a role is known by its mapping and inherits nothing.
        let flat =
            RolePolicy::from_json(r#"{"version":1,"mode":"strict","mappings":[{"group":"g","role":"R"}]}"#).unwrap();
        assert_eq!(flat.closure("R").unwrap(), ["R"]);
        assert!(flat.closure("S").is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_request_within_what_is_inherited_passes() {
        let p = ladder();
        let groups = [named("cxone-supervisor")];
        // Supervisor inherits Agent: requesting either (or both) is covered by the Supervisor grant.
        for request in [req(&["Supervisor"]), req(&["Agent"]), req(&["Supervisor", "Agent"])] {
            let v = p.verdict(&groups, Some(&request));
            assert_eq!(passed(&v), ["Supervisor"], "{request:?}");
        }
        // No request at all: the granted roles.
        assert_eq!(passed(&p.verdict(&groups, None)), ["Supervisor"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn escalation_through_inheritance_names_the_role_not_granted() {
        let p = ladder();
        // Admin inherits Supervisor (granted) and Billing (not granted).
        let v = p.verdict(&[named("cxone-supervisor")], Some(&req(&["Supervisor", "Admin"])));
        assert_eq!(
            v,
            Verdict::EscalationDetected {
                role: "Admin".into(),
                via: Via::Inherited("Billing".into())
            }
        );
        // Everything Admin inherits is granted, Admin itself is not: the request is the escalation.
        let v = p.verdict(
            &[named("cxone-supervisor"), named("cxone-billing")],
            Some(&req(&["Admin"])),
        );
        assert_eq!(
            v,
            Verdict::EscalationDetected {
                role: "Admin".into(),
                via: Via::Request
            }
        );
        // Granted Admin covers all of it.
        assert_eq!(
            passed(&p.verdict(&[named("cxone-admin")], Some(&req(&["Billing"])))),
            ["Admin"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unknown_requested_role_is_an_escalation() {
        let v = ladder().verdict(&[named("cxone-admin")], Some(&req(&["Agent", "Root"])));
        assert_eq!(
            v,
            Verdict::EscalationDetected {
                role: "Root".into(),
                via: Via::Request
            }
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"verdict":"escalation_detected","role":"Root","via":"request"})
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn groups_that_break_the_policy_fail() {
        let p = ladder();
        let v = p.verdict(&[named("cxone-agent"), named("Finance")], Some(&req(&["Agent"])));
        assert_eq!(
            v,
            Verdict::Fail {
                reason: RbacViolation::UnmappedGroups {
                    groups: vec!["Finance".into()]
                }
            }
        );
        let mut lenient = ladder();
        lenient.mode = Mode::Lenient;
        assert_eq!(
            passed(&lenient.verdict(&[named("cxone-agent"), named("Finance")], None)),
            ["Agent"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn expand_inherited_writes_the_closure_and_counts_it() {
        let mut p = ladder();
        p.expand_inherited = true;
        let v = p.verdict(&[named("cxone-admin"), named("cxone-agent")], None);
        assert_eq!(passed(&v), ["Admin", "Agent", "Supervisor", "Billing"]);
        if let Verdict::Pass { roles } = &v {
            assert_eq!(roles[2].display.as_deref(), Some("Team Supervisor"));
        }
        // Four roles written; a limit of three refuses what one granted role would have passed.
        p.max_roles_per_user = 3;
        assert_eq!(
            p.verdict(&[named("cxone-admin")], None),
            Verdict::Fail {
                reason: RbacViolation::TooManyRoles { count: 4, max: 3 }
            }
        );
        p.expand_inherited = false;
        assert_eq!(passed(&p.verdict(&[named("cxone-admin")], None)), ["Admin"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn too_many_granted_roles_fail() {
        let mut p = ladder();
        p.max_roles_per_user = 2;
        let groups = [named("cxone-agent"), named("cxone-billing"), named("cxone-supervisor")];
        let v = p.verdict(&groups, None);
        assert_eq!(
            v,
            Verdict::Fail {
                reason: RbacViolation::TooManyRoles { count: 3, max: 2 }
            }
        );
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"verdict":"fail","reason":{"kind":"too_many_roles","count":3,"max":2}})
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn verdicts_round_trip_as_json() {
        let v = ladder().verdict(&[named("cxone-agent")], None);
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(
            text,
            r#"{"verdict":"pass","roles":[{"value":"Agent","display":"Agent"}]}"#
        );
        assert_eq!(serde_json::from_str::<Verdict>(&text).unwrap(), v);
        let e = Verdict::EscalationDetected {
            role: "Admin".into(),
            via: Via::Inherited("Billing".into()),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"verdict":"escalation_detected","role":"Admin","via":{"inherited":"Billing"}}"#
        );
        assert_eq!(serde_json::from_str::<Verdict>(&text).unwrap(), e);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn single_valued_target_takes_the_highest_priority() {
        let p = ladder();
        // Admin 30, Supervisor 20, Billing 20, Agent absent (0).
        let three = [role("Agent"), role("Supervisor"), role("Admin")];
        assert_eq!(p.pick_for_target(&three).map(|r| r.value.as_str()), Some("Admin"));
        // A tie goes to the lower roleId, whatever the input order.
        for order in [
            [role("Supervisor"), role("Billing")],
            [role("Billing"), role("Supervisor")],
        ] {
            assert_eq!(p.pick_for_target(&order).map(|r| r.value.as_str()), Some("Billing"));
        }
        assert_eq!(
            p.pick_for_target(&[role("Agent")]).map(|r| r.value.as_str()),
            Some("Agent")
        );
        assert!(p.pick_for_target(&[]).is_none());
        // Negative priorities rank below the default of 0.
        let mut q = ladder();
        q.roles.iter_mut().for_each(|r| r.priority = Some(-1));
        assert_eq!(
            q.pick_for_target(&[role("Admin"), role("Zeta")])
                .map(|r| r.value.as_str()),
            Some("Zeta")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn document_limits_on_inheritance() {
        let rule_path = |doc: &str| match RolePolicy::from_json(doc) {
            Err(PolicyError::Rule { path, message }) => (path, message),
            other => panic!("{doc}: {other:?}"),
        };
        // Unknown parent, with the JSON path of the entry.
        let (path, message) = rule_path(
            r#"{"version":1,"mode":"strict","mappings":[],"roles":[{"roleId":"A"},{"roleId":"B","inheritsFrom":["A","C"]}]}"#,
        );
        assert_eq!(path, "$.roles[1].inheritsFrom[1]");
        assert!(message.contains("\"C\""), "{message}");
        // A three-role cycle and a role inheriting itself.
        let (path, message) = rule_path(
            r#"{"version":1,"mode":"strict","mappings":[],"roles":[
                {"roleId":"A","inheritsFrom":["B"]},{"roleId":"B","inheritsFrom":["C"]},{"roleId":"C","inheritsFrom":["A"]}]}"#,
        );
        assert_eq!(path, "$.roles[0].inheritsFrom");
        assert!(message.contains("A -> B -> C -> A"), "{message}");
        let (_, message) =
            rule_path(r#"{"version":1,"mode":"strict","mappings":[],"roles":[{"roleId":"A","inheritsFrom":["A"]}]}"#);
        assert!(message.contains("cycle A -> A"), "{message}");
        // Depth: the example's longest chain is Admin -> Supervisor -> Agent (2).
        let shallow = LADDER.replace("\"maxInheritanceDepth\": 3", "\"maxInheritanceDepth\": 1");
        assert_ne!(shallow, LADDER);
        let (path, message) = rule_path(&shallow);
        assert!(
            path.starts_with("$.roles[") && path.ends_with("].inheritsFrom"),
            "{path}"
        );
        assert!(message.contains("Admin -> Supervisor -> Agent"), "{message}");
        // A mapping to a role the roles list does not define.
        let (path, _) = rule_path(&LADDER.replace("\"role\": \"Billing\"", "\"role\": \"Finance\""));
        assert_eq!(path, "$.mappings[3].role");
    }
}
