//! The signed lifecycle event posted to `/webhooks/lifecycle`, and what it asks of CXone.
//!
//! ```json
//! {"operation":"create","userName":"jdoe@example.com","externalId":"e-1","firstName":"Jane",
//!  "lastName":"Doe","email":"jdoe@example.com","groups":[{"displayName":"cxone-agent"}],
//!  "accountEnabled":true}
//! ```

use crate::policy::{GroupInput, RbacViolation, Resolution, RolePolicy};
use crate::scim::build::DesiredUser;
use crate::scim::lenient;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

const MAX_USER_NAME: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
    /// Soft leaver: `active = false`, the account kept.
    Disable,
    /// Explicit hard delete.
    Delete,
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let choices = [
            ("create", Self::Create),
            ("update", Self::Update),
            ("disable", Self::Disable),
            ("delete", Self::Delete),
        ];
        lenient::one_of(d, &choices)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    pub operation: Operation,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `None` (absent): memberships unknown, roles left alone. `[]`: member of nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupInput>>,
    #[serde(default = "yes", deserialize_with = "lenient::bool_")]
    pub account_enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid event: {field} {message}")]
    Invalid { field: &'static str, message: String },
}

fn invalid(field: &'static str, message: impl Into<String>) -> EventError {
    EventError::Invalid {
        field,
        message: message.into(),
    }
}

/// What the event asks of CXone, after the role policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Command {
    /// Create or update to the desired state (create first when `create_first`).
    Upsert {
        desired: DesiredUser,
        create_first: bool,
    },
    Disable {
        lookup: Lookup,
    },
    Delete {
        lookup: Lookup,
    },
}

/// How to find the user in CXone: by externalId first, then userName.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lookup {
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl LifecycleEvent {
    /// Parses and checks an event body.
    pub fn from_json(body: &[u8]) -> Result<Self, EventError> {
        let event: Self = serde_json::from_slice(body).map_err(|e| EventError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        event.validate()?;
        Ok(event)
    }

    /// Checks the fields a payload is built from.
    pub fn validate(&self) -> Result<(), EventError> {
        let name = self.user_name.trim();
        if name.is_empty() {
            return Err(invalid("userName", "must not be empty"));
        }
        if name.len() > MAX_USER_NAME || name.chars().any(char::is_control) {
            return Err(invalid(
                "userName",
                "must be at most 256 characters without control characters",
            ));
        }
        if self.external_id.as_deref().is_some_and(|e| e.trim().is_empty()) {
            return Err(invalid("externalId", "must not be empty when given"));
        }
        if let Some(email) = &self.email {
            if !looks_like_email(email) {
                return Err(invalid("email", format!("{email:?} is not an email address")));
            }
        }
        for (i, g) in self.groups.iter().flatten().enumerate() {
            if g.display_name.as_deref().unwrap_or("").trim().is_empty()
                && g.id.as_deref().unwrap_or("").trim().is_empty()
            {
                return Err(invalid("groups", format!("entry {i} has neither displayName nor id")));
            }
        }
        Ok(())
    }

    /// The key that orders events about one person: externalId, else the userName.
    pub fn subject_key(&self) -> String {
        match &self.external_id {
            Some(ext) => format!("ext:{ext}"),
            None => format!("user:{}", self.user_name.trim().to_lowercase()),
        }
    }

    /// The work email: `email`, else `userName` when it is an address.
    pub fn work_email(&self) -> Option<String> {
        self.email
            .clone()
            .or_else(|| looks_like_email(&self.user_name).then(|| self.user_name.trim().to_string()))
    }

    /// Applies the role policy and decides what CXone must do. Leavers (disable, delete) skip
    /// the policy: a leaver is never blocked by a group that is no longer mapped.
    pub fn command(&self, policy: &RolePolicy) -> Result<(Command, Option<Resolution>), RbacViolation> {
        let lookup = || Lookup {
            user_name: self.user_name.trim().to_string(),
            external_id: self.external_id.clone(),
        };
        match self.operation {
            Operation::Disable => return Ok((Command::Disable { lookup: lookup() }, None)),
            Operation::Delete => return Ok((Command::Delete { lookup: lookup() }, None)),
            Operation::Create | Operation::Update => {}
        }
        let resolution = self.groups.as_deref().map(|g| policy.resolve(g)).transpose()?;
        let desired = DesiredUser {
            user_name: self.user_name.trim().to_string(),
            external_id: self.external_id.clone(),
            given_name: self.first_name.clone(),
            family_name: self.last_name.clone(),
            email: self.work_email(),
            active: self.account_enabled,
            roles: resolution.as_ref().map(|r| r.roles.clone()),
        };
        Ok((
            Command::Upsert {
                desired,
                create_first: self.operation == Operation::Create,
            },
            resolution,
        ))
    }
}

fn looks_like_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const CREATE: &str = include_str!("../tests/fixtures/event_create.json");

    fn policy() -> RolePolicy {
        RolePolicy::from_json(include_str!("../tests/fixtures/role_policy.json")).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_event_becomes_an_upsert_with_roles() {
        let e = LifecycleEvent::from_json(CREATE.as_bytes()).unwrap();
        let (cmd, res) = e.command(&policy()).unwrap();
        let Command::Upsert { desired, create_first } = cmd else {
            panic!("{cmd:?}")
        };
        assert!(create_first);
        assert_eq!(
            desired.email.as_deref(),
            Some("jdoe@example.com"),
            "email defaults to userName"
        );
        assert_eq!(desired.roles.unwrap()[0].value, "Agent");
        assert_eq!(res.unwrap().ignored_groups, ["All Staff"]);
        assert_eq!(e.subject_key(), "ext:e-jdoe-1");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn idp_quirks_are_accepted() {
        let e = LifecycleEvent::from_json(br#"{"operation":"Update","userName":"a@b.co","accountEnabled":"False"}"#)
            .unwrap();
        assert_eq!(e.operation, Operation::Update);
        assert!(!e.account_enabled);
        let (cmd, _) = e.command(&policy()).unwrap();
        let Command::Upsert { desired, .. } = cmd else { panic!() };
        assert!(!desired.active);
        assert_eq!(desired.roles, None, "no groups given: roles untouched");
        assert_eq!(e.subject_key(), "user:a@b.co");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn leavers_skip_the_policy() {
        let e = LifecycleEvent::from_json(
            br#"{"operation":"disable","userName":"a@b.co","groups":[{"displayName":"Unmapped"}]}"#,
        )
        .unwrap();
        assert!(matches!(e.command(&policy()), Ok((Command::Disable { .. }, None))));
        let e = LifecycleEvent {
            operation: Operation::Create,
            ..e
        };
        assert!(e.command(&policy()).is_err(), "joiners do go through the policy");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bad_events_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"{", "line 1"),
            (br#"{"operation":"merge","userName":"a"}"#, "unknown variant"),
            (br#"{"operation":"create"}"#, "userName"),
            (
                br#"{"operation":"create","userName":" "}"#,
                "userName must not be empty",
            ),
            (br#"{"operation":"create","userName":"a","email":"nope"}"#, "email"),
            (
                br#"{"operation":"create","userName":"a","externalId":""}"#,
                "externalId",
            ),
            (
                br#"{"operation":"create","userName":"a","groups":[{}]}"#,
                "groups entry 0",
            ),
        ];
        for (body, want) in cases {
            let msg = LifecycleEvent::from_json(body).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg:?} should mention {want:?}");
        }
    }
}
