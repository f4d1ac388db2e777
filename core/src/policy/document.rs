//! Loading and checking the policy document, with errors that say where.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};

pub const SUPPORTED_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A user in a group that is neither mapped nor ignored is rejected.
    Strict,
    /// Such groups are skipped and reported.
    Lenient,
}

/// One group (by display name or object id) mapped to a CXone role, or to a CXone team:
/// `{"group"|"groupId", "role"}` or `{"group"|"groupId", "team", "teamName"?}`, never both.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    /// The role the group grants.
    #[serde(default)]
    pub role: Option<String>,
    /// The id of the team the group puts its members in (NICE extension `team.value`).
    #[serde(default)]
    pub team: Option<String>,
    /// The team's name, written as `team.display`; only with `team`.
    #[serde(default)]
    pub team_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDef {
    pub role_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub inherits_from: Vec<String>,
    /// Which role a single-valued role target receives when several are granted: the highest
    /// priority wins (absent counts as 0), ties go to the lowest `roleId` (byte order).
    #[serde(default)]
    pub priority: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolePolicy {
    pub version: u32,
    pub mode: Mode,
    #[serde(default)]
    pub ignore_groups: Vec<String>,
    pub mappings: Vec<Mapping>,
    #[serde(default)]
    pub roles: Vec<RoleDef>,
    #[serde(default = "default_max_roles")]
    pub max_roles_per_user: usize,
    #[serde(default = "default_max_depth")]
    pub max_inheritance_depth: usize,
    /// Write every role a granted role inherits as well, not only the granted ones.
    #[serde(default)]
    pub expand_inherited: bool,
}

fn default_max_roles() -> usize {
    5
}

fn default_max_depth() -> usize {
    3
}

/// Why a policy document was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("ROLE_POLICY is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("ROLE_POLICY {path} (line {line}, column {column}): {message}")]
    Shape {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("ROLE_POLICY {path}: {message}")]
    Rule { path: String, message: String },
}

fn rule(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Rule {
        path: path.into(),
        message: message.into(),
    }
}

impl RolePolicy {
    /// Parses and checks a policy document.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let policy: RolePolicy = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = format!("$.{}", e.path())
                .replace("$..", "$")
                .trim_end_matches('.')
                .to_string();
            let inner = e.into_inner();
            let (line, column) = (inner.line(), inner.column());
            if inner.is_syntax() || inner.is_eof() {
                PolicyError::Syntax {
                    line,
                    column,
                    message: inner.to_string(),
                }
            } else {
                PolicyError::Shape {
                    path,
                    line,
                    column,
                    message: strip_position(&inner.to_string()),
                }
            }
        })?;
        policy.check()?;
        Ok(policy)
    }

    fn check(&self) -> Result<(), PolicyError> {
        if self.version != SUPPORTED_VERSION {
            return Err(rule(
                "$.version",
                format!(
                    "unsupported version {}; this build reads version {SUPPORTED_VERSION}",
                    self.version
                ),
            ));
        }
        if self.max_roles_per_user == 0 {
            return Err(rule("$.maxRolesPerUser", "must be at least 1"));
        }
        let mut role_ids = HashSet::new();
        for (i, r) in self.roles.iter().enumerate() {
            if r.role_id.trim().is_empty() {
                return Err(rule(format!("$.roles[{i}].roleId"), "must not be empty"));
            }
            if !role_ids.insert(r.role_id.as_str()) {
                return Err(rule(
                    format!("$.roles[{i}].roleId"),
                    format!("role {:?} is defined twice", r.role_id),
                ));
            }
        }
        for (i, r) in self.roles.iter().enumerate() {
            for (j, parent) in r.inherits_from.iter().enumerate() {
                if !role_ids.contains(parent.as_str()) {
                    return Err(rule(
                        format!("$.roles[{i}].inheritsFrom[{j}]"),
                        format!("unknown role {parent:?}"),
                    ));
                }
                if r.inherits_from[..j].contains(parent) {
                    return Err(rule(
                        format!("$.roles[{i}].inheritsFrom[{j}]"),
                        format!("role {parent:?} is listed twice"),
                    ));
                }
            }
        }
        self.check_inheritance()?;
        if self.expand_inherited {
            // Every role written with its inherited roles must fit in one user.
            for (i, r) in self.roles.iter().enumerate() {
                let size = self.closure(&r.role_id).map_or(0, |c| c.len());
                if size > self.max_roles_per_user {
                    return Err(rule(
                        format!("$.roles[{i}].inheritsFrom"),
                        format!(
                            "with expandInherited, role {:?} and what it inherits are {size} roles, \
                             more than maxRolesPerUser {}",
                            r.role_id, self.max_roles_per_user
                        ),
                    ));
                }
            }
        }
        let ignored: HashSet<String> = self.ignore_groups.iter().map(|g| g.to_lowercase()).collect();
        // A group may be mapped once to a role and once to a team.
        let mut seen = HashMap::new();
        for (i, m) in self.mappings.iter().enumerate() {
            let path = format!("$.mappings[{i}]");
            let group = match (&m.group, &m.group_id) {
                (Some(g), None) if !g.trim().is_empty() => format!("name:{}", g.to_lowercase()),
                (None, Some(id)) if !id.trim().is_empty() => format!("id:{}", id.to_lowercase()),
                _ => return Err(rule(path, "needs exactly one non-empty \"group\" or \"groupId\"")),
            };
            let kind = match (&m.role, &m.team) {
                (Some(_), Some(_)) => {
                    return Err(rule(
                        path,
                        "has both \"role\" and \"team\"; a mapping grants a role or sets a team, not both",
                    ))
                }
                (None, None) => return Err(rule(path, "needs a \"role\" or a \"team\"")),
                (Some(role), None) => {
                    if role.trim().is_empty() {
                        return Err(rule(format!("{path}.role"), "must not be empty"));
                    }
                    if !self.roles.is_empty() && !role_ids.contains(role.as_str()) {
                        return Err(rule(
                            format!("{path}.role"),
                            format!("role {role:?} is not defined in $.roles"),
                        ));
                    }
                    if m.team_name.is_some() {
                        return Err(rule(
                            format!("{path}.teamName"),
                            "goes with \"team\"; this mapping grants a role",
                        ));
                    }
                    "role"
                }
                (None, Some(team)) => {
                    if team.trim().is_empty() {
                        return Err(rule(format!("{path}.team"), "must not be empty"));
                    }
                    if m.team_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                        return Err(rule(format!("{path}.teamName"), "must not be empty when given"));
                    }
                    "team"
                }
            };
            let label = m.group.as_deref().or(m.group_id.as_deref()).unwrap_or_default();
            if ignored.contains(&label.to_lowercase()) {
                return Err(rule(
                    path,
                    format!("group {label:?} is both mapped and in $.ignoreGroups"),
                ));
            }
            if let Some(first) = seen.insert((kind, group), i) {
                return Err(rule(
                    path,
                    format!("group {label:?} is already mapped to a {kind} at $.mappings[{first}]"),
                ));
            }
        }
        Ok(())
    }

    /// Rejects inheritance cycles and chains deeper than `maxInheritanceDepth`.
    fn check_inheritance(&self) -> Result<(), PolicyError> {
        let by_id: HashMap<&str, &RoleDef> = self.roles.iter().map(|r| (r.role_id.as_str(), r)).collect();
        for (i, r) in self.roles.iter().enumerate() {
            // Depth-first walk with an explicit stack: (role, depth, path so far).
            let mut stack = vec![(r.role_id.as_str(), 0usize, vec![r.role_id.as_str()])];
            while let Some((id, depth, trail)) = stack.pop() {
                if depth > self.max_inheritance_depth {
                    return Err(rule(
                        format!("$.roles[{i}].inheritsFrom"),
                        format!(
                            "inheritance chain {} is deeper than maxInheritanceDepth {}",
                            trail.join(" -> "),
                            self.max_inheritance_depth
                        ),
                    ));
                }
                for parent in by_id.get(id).map(|d| d.inherits_from.as_slice()).unwrap_or_default() {
                    let mut next = trail.clone();
                    next.push(parent.as_str());
                    if trail.contains(&parent.as_str()) {
                        return Err(rule(
                            format!("$.roles[{i}].inheritsFrom"),
                            format!("inheritance cycle {}", next.join(" -> ")),
                        ));
                    }
                    stack.push((parent.as_str(), depth + 1, next));
                }
            }
        }
        Ok(())
    }

    /// Display name of a role, when the policy defines one.
    pub fn display_name(&self, role_id: &str) -> Option<&str> {
        self.roles
            .iter()
            .find(|r| r.role_id == role_id)
            .and_then(|r| r.display_name.as_deref())
    }
}

/// serde_json appends " at line L column C"; the error carries those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/role_policy.json");
    const TEAMS: &str = include_str!("../../tests/fixtures/role_policy_teams.json");

    fn err(text: &str) -> PolicyError {
        RolePolicy::from_json(text).unwrap_err()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn loads_the_example() {
        let p = RolePolicy::from_json(EXAMPLE).unwrap();
        assert_eq!(p.mode, Mode::Strict);
        assert_eq!(p.mappings.len(), 3);
        assert_eq!(p.display_name("Supervisor"), Some("Supervisor"));
        assert_eq!(p.max_roles_per_user, 5);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn syntax_errors_have_line_and_column() {
        let e = err("{\n  \"version\": 1,\n  \"mode\": \"strict\"\n  \"mappings\": []\n}");
        assert!(matches!(e, PolicyError::Syntax { line: 4, column: 3, .. }), "{e:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn shape_errors_have_a_json_path() {
        let e = err(r#"{"version":1,"mode":"strict","mappings":[{"group":"a","role":"R"},{"group":"b","rol":"R"}]}"#);
        match e {
            PolicyError::Shape { path, .. } => assert_eq!(path, "$.mappings[1].rol"),
            other => panic!("{other:?}"),
        }
        let e = err(r#"{"version":1,"mode":"loose","mappings":[]}"#);
        assert!(
            matches!(&e, PolicyError::Shape { path, .. } if path == "$.mode"),
            "{e:?}"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rule_errors_name_the_offending_entry() {
        let cases = [
            (r#"{"version":2,"mode":"strict","mappings":[]}"#, "$.version"),
            (
                r#"{"version":1,"mode":"strict","mappings":[{"role":"A"}]}"#,
                "$.mappings[0]",
            ),
            (
                r#"{"version":1,"mode":"strict","mappings":[{"group":"g","groupId":"i","role":"A"}]}"#,
                "$.mappings[0]",
            ),
            (
                r#"{"version":1,"mode":"strict","mappings":[{"group":"g","role":"X"}],"roles":[{"roleId":"A"}]}"#,
                "$.mappings[0].role",
            ),
            (
                r#"{"version":1,"mode":"strict","mappings":[{"group":"g","role":"A"},{"group":"G","role":"A"}]}"#,
                "$.mappings[1]",
            ),
            (
                r#"{"version":1,"mode":"strict","ignoreGroups":["g"],"mappings":[{"group":"G","role":"A"}]}"#,
                "$.mappings[0]",
            ),
            (
                r#"{"version":1,"mode":"strict","mappings":[],"roles":[{"roleId":"A","inheritsFrom":["B"]}]}"#,
                "$.roles[0].inheritsFrom[0]",
            ),
            (
                r#"{"version":1,"mode":"strict","mappings":[],"roles":[{"roleId":"A"},{"roleId":"A"}]}"#,
                "$.roles[1].roleId",
            ),
            (
                r#"{"version":1,"mode":"strict","mappings":[],"maxRolesPerUser":0}"#,
                "$.maxRolesPerUser",
            ),
        ];
        for (doc, want) in cases {
            match err(doc) {
                PolicyError::Rule { path, .. } => assert_eq!(path, want, "{doc}"),
                other => panic!("{doc}: {other:?}"),
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn team_mappings_are_accepted_beside_role_mappings() {
        let p = RolePolicy::from_json(TEAMS).unwrap();
        assert_eq!(p.mappings.len(), 6);
        let team = &p.mappings[2];
        assert_eq!(
            (team.role.as_deref(), team.team.as_deref(), team.team_name.as_deref()),
            (None, Some("5f0c7e2a-1d2b-4c3d-8e4f-a1b2c3d4e5f6"), Some("Support EMEA"))
        );
        assert_eq!(p.mappings[0].role.as_deref(), Some("Agent"));
        // A teamName is optional; a group may be mapped once to a role and once to a team.
        let doc = r#"{"version":1,"mode":"strict","mappings":[
            {"group":"g","role":"A"},{"group":"G","team":"t-1"},{"groupId":"i","team":"t-2"}]}"#;
        let p = RolePolicy::from_json(doc).unwrap();
        assert_eq!(p.mappings[1].team_name, None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_mapping_has_a_role_or_a_team() {
        let cases = [
            (r#"{"group":"g","role":"A","team":"t"}"#, "$.mappings[0]", "not both"),
            (r#"{"group":"g"}"#, "$.mappings[0]", "needs a \"role\" or a \"team\""),
            (r#"{"group":"g","teamName":"T"}"#, "$.mappings[0]", "needs a"),
            (r#"{"group":"g","team":" "}"#, "$.mappings[0].team", "must not be empty"),
            (
                r#"{"group":"g","team":"t","teamName":""}"#,
                "$.mappings[0].teamName",
                "must not be empty",
            ),
            (
                r#"{"group":"g","role":"A","teamName":"T"}"#,
                "$.mappings[0].teamName",
                "goes with",
            ),
            (r#"{"team":"t"}"#, "$.mappings[0]", "\"groupId\""),
        ];
        for (mapping, want_path, want_message) in cases {
            let doc = format!(r#"{{"version":1,"mode":"strict","mappings":[{mapping}]}}"#);
            match err(&doc) {
                PolicyError::Rule { path, message } => {
                    assert_eq!(path, want_path, "{mapping}");
                    assert!(message.contains(want_message), "{mapping}: {message}");
                }
                other => panic!("{mapping}: {other:?}"),
            }
        }
        // Two teams for one group, or a team mapping on an ignored group: refused like roles.
        let twice =
            r#"{"version":1,"mode":"strict","mappings":[{"group":"g","team":"t-1"},{"group":"G","team":"t-2"}]}"#;
        match err(twice) {
            PolicyError::Rule { path, message } => {
                assert_eq!(path, "$.mappings[1]");
                assert!(
                    message.contains("already mapped to a team at $.mappings[0]"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let ignored = r#"{"version":1,"mode":"strict","ignoreGroups":["g"],"mappings":[{"group":"G","team":"t"}]}"#;
        assert!(matches!(err(ignored), PolicyError::Rule { path, .. } if path == "$.mappings[0]"));
        // The team is text: anything else is a shape error with its path.
        let e = err(r#"{"version":1,"mode":"strict","mappings":[{"group":"g","team":7}]}"#);
        assert!(
            matches!(&e, PolicyError::Shape { path, .. } if path == "$.mappings[0].team"),
            "{e:?}"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn inheritance_cycles_and_depth_are_refused() {
        let cyc = r#"{"version":1,"mode":"strict","mappings":[],"roles":[
            {"roleId":"A","inheritsFrom":["B"]},{"roleId":"B","inheritsFrom":["A"]}]}"#;
        assert!(err(cyc).to_string().contains("cycle"), "{}", err(cyc));
        let deep = r#"{"version":1,"mode":"strict","mappings":[],"maxInheritanceDepth":1,"roles":[
            {"roleId":"A","inheritsFrom":["B"]},{"roleId":"B","inheritsFrom":["C"]},{"roleId":"C"}]}"#;
        assert!(err(deep).to_string().contains("A -> B -> C"), "{}", err(deep));
        let ok = deep.replace("\"maxInheritanceDepth\":1", "\"maxInheritanceDepth\":2");
        assert!(RolePolicy::from_json(&ok).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn priority_and_expand_inherited_are_optional() {
        let p = RolePolicy::from_json(EXAMPLE).unwrap();
        assert!(!p.expand_inherited);
        assert!(p.roles.iter().all(|r| r.priority.is_none()));
        let doc = r#"{"version":1,"mode":"strict","mappings":[],"expandInherited":true,
            "roles":[{"roleId":"A","priority":-3},{"roleId":"B","inheritsFrom":["A"],"priority":7}]}"#;
        let p = RolePolicy::from_json(doc).unwrap();
        assert!(p.expand_inherited);
        assert_eq!(p.roles[0].priority, Some(-3));
        assert_eq!(p.roles[1].priority, Some(7));
        let e = err(r#"{"version":1,"mode":"strict","mappings":[],"roles":[{"roleId":"A","priority":"high"}]}"#);
        assert!(
            matches!(&e, PolicyError::Shape { path, .. } if path == "$.roles[0].priority"),
            "{e:?}"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parents_listed_twice_and_closures_too_large_to_write_are_refused() {
        let twice = r#"{"version":1,"mode":"strict","mappings":[],"roles":[
            {"roleId":"A"},{"roleId":"B","inheritsFrom":["A","A"]}]}"#;
        match err(twice) {
            PolicyError::Rule { path, message } => {
                assert_eq!(path, "$.roles[1].inheritsFrom[1]");
                assert!(message.contains("twice"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // C and what it inherits are three roles: fine to write unless expanded past the limit.
        let doc = r#"{"version":1,"mode":"strict","mappings":[],"maxRolesPerUser":2,"expandInherited":false,
            "roles":[{"roleId":"A"},{"roleId":"B"},{"roleId":"C","inheritsFrom":["A","B"]}]}"#;
        assert!(RolePolicy::from_json(doc).is_ok());
        let expanded = doc.replace("\"expandInherited\":false", "\"expandInherited\":true");
        match err(&expanded) {
            PolicyError::Rule { path, message } => {
                assert_eq!(path, "$.roles[2].inheritsFrom");
                assert!(
                    message.contains("3 roles") && message.contains("maxRolesPerUser 2"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
