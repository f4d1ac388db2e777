//! `ATTRIBUTE_MAP`: which Graph user property fills which SCIM attribute, and whose value
//! counts afterwards.
//!
//! A JSON object from Graph property name to either the SCIM attribute, or
//! `{"to": "<SCIM attribute>", "owner": "entra" | "cxone"}` (`owner` defaults to `entra`):
//! ```json
//! {"id": "externalId", "userPrincipalName": "userName", "givenName": "name.givenName",
//!  "surname": "name.familyName", "mail": "emails", "accountEnabled": "active",
//!  "jobTitle": {"to": "title", "owner": "cxone"}, "employeeId": "employeeNumber"}
//! ```
//! The SCIM attributes: `userName`, `externalId`, `name.givenName`, `name.familyName`,
//! `emails[type eq "work"].value` (or `emails`, `email`), `active`, `displayName`, `title`, and
//! the enterprise extension's `department` and `employeeNumber`, fully qualified
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`) or not.
//!
//! An `entra` attribute takes Entra's value on every change; a `cxone` one only when the
//! account is created, and is CXone's to change after. `userName` and `externalId` must be
//! mapped; they and `active` (from `accountEnabled` only) are always `entra`'s. One property
//! fills one attribute and one attribute comes from one property. Unset, the map is
//! [`AttributeMap::default`].

use super::target::{Owner, Target};
use crate::event::EventError;
use serde_json::{Map, Value};

/// The one Graph property that may fill `active`.
const ACCOUNT_ENABLED: &str = "accountEnabled";

/// One Graph property onto one SCIM attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub property: String,
    pub target: Target,
    pub owner: Owner,
}

/// The parsed `ATTRIBUTE_MAP`, one mapping per attribute in [`Target::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMap {
    mappings: Vec<Mapping>,
}

/// Why a map was refused, or why a Graph user could not be mapped with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("ATTRIBUTE_MAP is not valid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path} must be {expected}")]
    Shape { path: String, expected: &'static str },
    #[error("{path} is not a member of a mapping (to, owner)")]
    UnknownMember { path: String },
    #[error("{path} is not a Graph property name (a letter, then letters, digits and _)")]
    PropertyName { path: String },
    #[error("{path} names the same property as ATTRIBUTE_MAP.{first}")]
    SameProperty { path: String, first: String },
    #[error("{path}: {target:?} is not a SCIM attribute the map fills")]
    UnknownTarget { path: String, target: String },
    #[error("{path}: {target} is already mapped from {first}")]
    TargetTaken {
        path: String,
        target: &'static str,
        first: String,
    },
    #[error("{path}: {target} must be owned by entra")]
    EntraOnly { path: String, target: &'static str },
    #[error("{path}: active must come from accountEnabled, Graph's boolean account state")]
    ActiveSource { path: String },
    #[error("{path}: accountEnabled is a boolean, only active takes it")]
    BooleanSource { path: String },
    #[error("ATTRIBUTE_MAP must map a Graph property to {target}")]
    Unmapped { target: &'static str },
    #[error("Graph user {id}: {property} must be {expected} for {target}, not {found}")]
    WrongType {
        id: String,
        property: String,
        target: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("Graph user {id}: {property} is missing, and {target} needs it")]
    Missing {
        id: String,
        property: String,
        target: &'static str,
    },
    #[error("Graph user {id}: {property} is empty, and {target} cannot be cleared")]
    NotClearable {
        id: String,
        property: String,
        target: &'static str,
    },
    #[error("Graph user {id}: {error}")]
    Event { id: String, error: EventError },
}

/// The map used when `ATTRIBUTE_MAP` is unset, every attribute Entra's.
const DEFAULT: [(&str, Target); 9] = [
    ("userPrincipalName", Target::UserName),
    ("id", Target::ExternalId),
    ("givenName", Target::GivenName),
    ("surname", Target::FamilyName),
    ("mail", Target::WorkEmail),
    (ACCOUNT_ENABLED, Target::Active),
    ("jobTitle", Target::Title),
    ("department", Target::Department),
    ("employeeId", Target::EmployeeNumber),
];

impl Default for AttributeMap {
    /// id → externalId, userPrincipalName → userName, givenName → name.givenName, surname →
    /// name.familyName, mail → the work email, accountEnabled → active, jobTitle → title,
    /// department → department, employeeId → employeeNumber; all Entra's.
    fn default() -> Self {
        let mappings = DEFAULT
            .iter()
            .map(|(property, target)| Mapping {
                property: property.to_string(),
                target: *target,
                owner: Owner::Entra,
            })
            .collect();
        Self { mappings }
    }
}

fn is_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The target text and the owner of one entry, with the paths they were read at.
fn read_entry(path: &str, spec: &Value) -> Result<(String, String, Owner, String), MapError> {
    let object = match spec {
        Value::String(to) => return Ok((to.clone(), path.to_string(), Owner::Entra, path.to_string())),
        Value::Object(object) => object,
        _ => {
            return Err(MapError::Shape {
                path: path.to_string(),
                expected: "a SCIM attribute or {\"to\", \"owner\"}",
            })
        }
    };
    if let Some(key) = object.keys().find(|k| !matches!(k.as_str(), "to" | "owner")) {
        return Err(MapError::UnknownMember {
            path: format!("{path}.{key}"),
        });
    }
    let to_path = format!("{path}.to");
    let to = match object.get("to") {
        Some(Value::String(to)) => to.clone(),
        _ => {
            return Err(MapError::Shape {
                path: to_path,
                expected: "a SCIM attribute",
            })
        }
    };
    let owner_path = format!("{path}.owner");
    let owner = match object.get("owner") {
        None | Some(Value::Null) => Owner::Entra,
        Some(Value::String(o)) if o.trim().eq_ignore_ascii_case("entra") => Owner::Entra,
        Some(Value::String(o)) if o.trim().eq_ignore_ascii_case("cxone") => Owner::Cxone,
        Some(_) => {
            return Err(MapError::Shape {
                path: owner_path,
                expected: "\"entra\" or \"cxone\"",
            })
        }
    };
    Ok((to, to_path, owner, owner_path))
}

impl AttributeMap {
    /// Reads and checks an `ATTRIBUTE_MAP` document.
    pub fn parse(text: &str) -> Result<Self, MapError> {
        let value: Value = serde_json::from_str(text).map_err(|e| MapError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let Value::Object(entries) = value else {
            return Err(MapError::Shape {
                path: "ATTRIBUTE_MAP".into(),
                expected: "a JSON object from Graph property to SCIM attribute",
            });
        };
        Self::from_entries(&entries)
    }

    fn from_entries(entries: &Map<String, Value>) -> Result<Self, MapError> {
        let mut mappings: Vec<Mapping> = Vec::new();
        for (property, spec) in entries {
            let path = format!("ATTRIBUTE_MAP.{property}");
            if !is_property_name(property) {
                return Err(MapError::PropertyName { path });
            }
            if let Some(first) = mappings.iter().find(|m| m.property.eq_ignore_ascii_case(property)) {
                return Err(MapError::SameProperty {
                    path,
                    first: first.property.clone(),
                });
            }
            let (to, to_path, owner, owner_path) = read_entry(&path, spec)?;
            let target = Target::parse(&to).ok_or_else(|| MapError::UnknownTarget {
                path: to_path.clone(),
                target: to.chars().take(100).collect(),
            })?;
            if let Some(first) = mappings.iter().find(|m| m.target == target) {
                return Err(MapError::TargetTaken {
                    path: to_path,
                    target: target.name(),
                    first: first.property.clone(),
                });
            }
            if target.entra_only() && owner != Owner::Entra {
                return Err(MapError::EntraOnly {
                    path: owner_path,
                    target: target.name(),
                });
            }
            let from_boolean = property.eq_ignore_ascii_case(ACCOUNT_ENABLED);
            if target == Target::Active && !from_boolean {
                return Err(MapError::ActiveSource { path: to_path });
            }
            if target != Target::Active && from_boolean {
                return Err(MapError::BooleanSource { path: to_path });
            }
            mappings.push(Mapping {
                property: property.clone(),
                target,
                owner,
            });
        }
        for target in [Target::UserName, Target::ExternalId] {
            if !mappings.iter().any(|m| m.target == target) {
                return Err(MapError::Unmapped { target: target.name() });
            }
        }
        mappings.sort_by_key(|m| m.target);
        Ok(Self { mappings })
    }

    /// Every mapping, in [`Target::ALL`] order.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    fn mapping(&self, target: Target) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.target == target)
    }

    /// The Graph property that fills `target`, if it is mapped.
    pub fn source(&self, target: Target) -> Option<&str> {
        self.mapping(target).map(|m| m.property.as_str())
    }

    /// Who owns `target`, if it is mapped.
    pub fn owner(&self, target: Target) -> Option<Owner> {
        self.mapping(target).map(|m| m.owner)
    }

    /// The properties to `$select` on `/users/delta`: `id` first, then the mapped ones in
    /// [`Target::ALL`] order.
    pub fn select(&self) -> Vec<String> {
        let mut select = vec!["id".to_string()];
        for m in &self.mappings {
            if !select.iter().any(|s| s.eq_ignore_ascii_case(&m.property)) {
                select.push(m.property.clone());
            }
        }
        select
    }

    /// The externalId of the Graph user `user_id` when the map takes it from `id`: what a
    /// removed entry, which carries only `id`, is found by.
    pub fn external_id_of(&self, user_id: &str) -> Option<String> {
        self.source(Target::ExternalId)
            .filter(|p| p.eq_ignore_ascii_case("id"))
            .map(|_| user_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn the_default_map_is_entras_and_selects_what_it_maps() {
        let map = AttributeMap::default();
        assert_eq!(
            map.select(),
            [
                "id",
                "userPrincipalName",
                "givenName",
                "surname",
                "mail",
                "accountEnabled",
                "jobTitle",
                "department",
                "employeeId"
            ]
        );
        assert!(map.mappings().iter().all(|m| m.owner == Owner::Entra));
        assert_eq!(map.source(Target::ExternalId), Some("id"));
        assert_eq!(map.source(Target::DisplayName), None);
        assert_eq!(map.owner(Target::Title), Some(Owner::Entra));
        assert_eq!(map.owner(Target::DisplayName), None);
        assert_eq!(map.external_id_of("u-1").as_deref(), Some("u-1"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_both_forms_and_the_aliases_in_a_stable_order() {
        let map = AttributeMap::parse(
            r#"{"jobTitle":{"to":"title","owner":"cxone"},"mail":"email","userPrincipalName":"userName",
                "onPremisesImmutableId":"externalId","displayName":{"to":"displayName"},
                "employeeId":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"}"#,
        )
        .unwrap();
        assert_eq!(
            map.select(),
            [
                "id",
                "userPrincipalName",
                "onPremisesImmutableId",
                "mail",
                "displayName",
                "jobTitle",
                "employeeId"
            ]
        );
        assert_eq!(map.owner(Target::Title), Some(Owner::Cxone));
        assert_eq!(map.owner(Target::DisplayName), Some(Owner::Entra));
        assert_eq!(map.source(Target::WorkEmail), Some("mail"));
        assert_eq!(map.owner(Target::Active), None);
        assert_eq!(map.external_id_of("u-1"), None, "externalId is not the Graph id");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_problem_names_its_path() {
        const BASE: &str = r#""id":"externalId","userPrincipalName":"userName""#;
        let with = |extra: &str| format!("{{{BASE},{extra}}}");
        let cases = [
            ("[1]".to_string(), "ATTRIBUTE_MAP must be a JSON object"),
            ("{".to_string(), "ATTRIBUTE_MAP is not valid JSON at line 1"),
            (
                with(r#""jobTitle":7"#),
                "ATTRIBUTE_MAP.jobTitle must be a SCIM attribute or",
            ),
            (
                with(r#""jobTitle":"nickName""#),
                r#"ATTRIBUTE_MAP.jobTitle: "nickName" is not a SCIM attribute"#,
            ),
            (
                with(r#""jobTitle":{"to":"costCenter"}"#),
                r#"ATTRIBUTE_MAP.jobTitle.to: "costCenter" is not"#,
            ),
            (
                with(r#""jobTitle":{"owner":"cxone"}"#),
                "ATTRIBUTE_MAP.jobTitle.to must be a SCIM attribute",
            ),
            (
                with(r#""jobTitle":{"to":"title","owner":"hr"}"#),
                r#"ATTRIBUTE_MAP.jobTitle.owner must be "entra" or "cxone""#,
            ),
            (
                with(r#""jobTitle":{"to":"title","from":"x"}"#),
                "ATTRIBUTE_MAP.jobTitle.from is not a member",
            ),
            (
                with(r#""jobTitle":"title","officeLocation":"title""#),
                "ATTRIBUTE_MAP.officeLocation: title is already mapped from jobTitle",
            ),
            (
                with(r#""mail":"emails","otherMails":"emails[type eq \"work\"].value""#),
                "ATTRIBUTE_MAP.otherMails: emails[type eq \"work\"].value is already mapped from mail",
            ),
            (
                r#"{"id":"externalId","mail":"userName","userPrincipalName":"userName"}"#.to_string(),
                "ATTRIBUTE_MAP.userPrincipalName: userName is already mapped from mail",
            ),
            (
                r#"{"id":"externalId","userPrincipalName":{"to":"userName","owner":"cxone"}}"#.to_string(),
                "ATTRIBUTE_MAP.userPrincipalName.owner: userName must be owned by entra",
            ),
            (
                r#"{"id":{"to":"externalId","owner":"cxone"},"userPrincipalName":"userName"}"#.to_string(),
                "ATTRIBUTE_MAP.id.owner: externalId must be owned by entra",
            ),
            (
                with(r#""accountEnabled":{"to":"active","owner":"cxone"}"#),
                "ATTRIBUTE_MAP.accountEnabled.owner: active must be owned by entra",
            ),
            (
                with(r#""jobTitle":"active""#),
                "ATTRIBUTE_MAP.jobTitle: active must come from accountEnabled",
            ),
            (
                with(r#""accountEnabled":{"to":"title"}"#),
                "ATTRIBUTE_MAP.accountEnabled.to: accountEnabled is a boolean",
            ),
            (
                with(r#""job title":"title""#),
                "ATTRIBUTE_MAP.job title is not a Graph property name",
            ),
            (
                with(r#""mail":"emails","Mail":"title""#),
                "names the same property as ATTRIBUTE_MAP.",
            ),
            (
                r#"{"id":"externalId"}"#.to_string(),
                "ATTRIBUTE_MAP must map a Graph property to userName",
            ),
            (
                r#"{"userPrincipalName":"userName"}"#.to_string(),
                "ATTRIBUTE_MAP must map a Graph property to externalId",
            ),
        ];
        for (text, want) in cases {
            let msg = AttributeMap::parse(&text).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg:?} should contain {want:?}");
        }
    }
}
