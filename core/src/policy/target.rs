//! Where roles are written (`ROLE_TARGET`): the core multi-valued `roles` attribute, or one
//! single-valued attribute that receives the one role the policy's priorities pick.

use super::document::RolePolicy;
use crate::scim::build::RoleAttribute;
use crate::scim::Role;
use std::fmt;

const CORE_USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// Multi-valued attributes of the core User schema (RFC 7643 §4.1.2, §4.1.3): none of them, nor
/// their sub-attributes, can be a single-valued target.
const MULTI_VALUED: [&str; 9] = [
    "emails",
    "phonenumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509certificates",
];

/// Core attributes that identify or control the account, or that the service provider owns.
const RESERVED: [&str; 7] = ["id", "meta", "schemas", "username", "externalid", "active", "password"];

/// The attribute that holds a user's roles; (de)serialized as its path.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum RoleTarget {
    /// The core `roles` attribute, every written role in it (the default).
    #[default]
    Roles,
    /// A single-valued attribute path, as given (`title`,
    /// `urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole`).
    Single(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleTargetError {
    #[error(
        "ROLE_TARGET {0:?} is not a SCIM attribute path \
         (e.g. roles, title, urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole)"
    )]
    InvalidPath(String),
    #[error("ROLE_TARGET {0:?} is multi-valued; roles go to \"roles\" or to one single-valued attribute")]
    MultiValued(String),
    #[error("ROLE_TARGET {0:?} identifies or controls the account; roles cannot be written there")]
    Reserved(String),
}

/// What to write for a user's roles under a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetWrite {
    /// Every role, to `roles`.
    Roles(Vec<Role>),
    /// The picked role's `value` to its `path`; `None` clears the attribute (no role granted).
    Single(RoleAttribute),
}

impl RoleTarget {
    /// Reads `ROLE_TARGET`. Empty, `roles` or the core schema's full `…:User:roles` (any case)
    /// is [`RoleTarget::Roles`]; anything else must be an attribute path `[URN:]name[.sub]`
    /// (names: a letter, then letters, digits, `-`, `_`) that is neither multi-valued nor an
    /// identifying attribute of the core User schema.
    pub fn parse(text: &str) -> Result<Self, RoleTargetError> {
        let text = text.trim();
        let invalid = || RoleTargetError::InvalidPath(text.to_string());
        if text.is_empty() {
            return Ok(Self::Roles);
        }
        let (urn, attr) = match text.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("urn:") => {
                let i = text.rfind(':').ok_or_else(invalid)?;
                (Some(&text[..i]), &text[i + 1..])
            }
            _ => (None, text),
        };
        if let Some(urn) = urn {
            let urn_ok = urn.len() > 4
                && !urn.ends_with(':')
                && urn
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'-' | b'_'));
            if !urn_ok {
                return Err(invalid());
            }
        }
        let segments: Vec<&str> = attr.split('.').collect();
        if segments.len() > 2 || !segments.iter().all(|s| is_attr_name(s)) {
            return Err(invalid());
        }
        let core = urn.is_none_or(|u| u.eq_ignore_ascii_case(CORE_USER_URN));
        if core {
            let top = segments[0].to_ascii_lowercase();
            if top == "roles" && segments.len() == 1 {
                return Ok(Self::Roles);
            }
            if MULTI_VALUED.contains(&top.as_str()) {
                return Err(RoleTargetError::MultiValued(text.to_string()));
            }
            if RESERVED.contains(&top.as_str()) {
                return Err(RoleTargetError::Reserved(text.to_string()));
            }
        }
        Ok(Self::Single(text.to_string()))
    }

    /// The attribute path: `roles`, or the single-valued path.
    pub fn path(&self) -> &str {
        match self {
            Self::Roles => "roles",
            Self::Single(path) => path,
        }
    }

    /// The single-valued attribute path; `None` for `roles`.
    pub fn single_path(&self) -> Option<&str> {
        match self {
            Self::Roles => None,
            Self::Single(path) => Some(path),
        }
    }

    /// What to write for `roles` (the [`super::Verdict::Pass`] roles) under this target.
    pub fn write(&self, policy: &RolePolicy, roles: &[Role]) -> TargetWrite {
        match self {
            Self::Roles => TargetWrite::Roles(roles.to_vec()),
            Self::Single(path) => TargetWrite::Single(RoleAttribute {
                path: path.clone(),
                value: policy.pick_for_target(roles).map(|r| r.value.clone()),
            }),
        }
    }
}

impl fmt::Display for RoleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

impl From<RoleTarget> for String {
    fn from(target: RoleTarget) -> Self {
        target.path().to_string()
    }
}

impl TryFrom<String> for RoleTarget {
    type Error = RoleTargetError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl std::str::FromStr for RoleTarget {
    type Err = RoleTargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// RFC 7643 §2.1: `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`.
fn is_attr_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const PRIMARY: &str = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole";

    fn role(id: &str) -> Role {
        Role {
            value: id.into(),
            ..Role::default()
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn roles_is_the_default_in_every_spelling() {
        for text in [
            "",
            "  ",
            "roles",
            "Roles",
            "urn:ietf:params:scim:schemas:core:2.0:User:roles",
        ] {
            assert_eq!(RoleTarget::parse(text), Ok(RoleTarget::Roles), "{text:?}");
        }
        assert_eq!(RoleTarget::default().to_string(), "roles");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn single_valued_paths_are_kept_as_given() {
        for text in [
            PRIMARY,
            "title",
            "userType",
            "name.honorificPrefix",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            // An extension may call its own attribute "roles"; only the core one is multi-valued.
            "urn:ietf:params:scim:schemas:extension:cxone:2.0:User:roles",
        ] {
            let t: RoleTarget = text.parse().unwrap();
            assert_eq!(t, RoleTarget::Single(text.into()));
            assert_eq!(t.path(), text);
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_what_cannot_hold_one_role() {
        for text in [
            "emails",
            "roles.value",
            "urn:ietf:params:scim:schemas:core:2.0:User:groups",
        ] {
            assert_eq!(
                RoleTarget::parse(text),
                Err(RoleTargetError::MultiValued(text.into())),
                "{text}"
            );
        }
        for text in ["userName", "externalId", "active", "id"] {
            assert_eq!(
                RoleTarget::parse(text),
                Err(RoleTargetError::Reserved(text.into())),
                "{text}"
            );
        }
        for text in [
            "1title",
            "title value",
            "emails[type eq \"work\"].value",
            "name.a.b",
            "urn:",
            "urn::title",
            "urn:x:",
            "title.",
            "ti$tle",
        ] {
            assert_eq!(
                RoleTarget::parse(text),
                Err(RoleTargetError::InvalidPath(text.into())),
                "{text}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_single_target_gets_the_priority_pick() {
        let policy = RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy_inheritance.json")).unwrap();
        let roles = [role("Agent"), role("Supervisor"), role("Billing")];
        let single = RoleTarget::parse(PRIMARY).unwrap();
        assert_eq!(
            single.write(&policy, &roles),
            TargetWrite::Single(RoleAttribute {
                path: PRIMARY.into(),
                value: Some("Billing".into())
            })
        );
        assert_eq!(
            single.write(&policy, &[]),
            TargetWrite::Single(RoleAttribute {
                path: PRIMARY.into(),
                value: None
            })
        );
        assert_eq!(
            RoleTarget::Roles.write(&policy, &roles),
            TargetWrite::Roles(roles.to_vec())
        );
    }
}
