//! The signed lifecycle event posted to `/webhooks/lifecycle`, and what it asks of CXone.
//!
//! Two shapes are accepted. The flat one:
//! ```json
//! {"operation":"create","userName":"jdoe@example.com","externalId":"e-1","firstName":"Jane",
//!  "lastName":"Doe","email":"jdoe@example.com","groups":[{"displayName":"cxone-agent"}],
//!  "accountEnabled":true,"occurredAt":"2026-11-30T09:15:00Z"}
//! ```
//! and the Standard Webhooks envelope, whose `type` names the operation and whose `timestamp`
//! is the event time:
//! ```json
//! {"type":"user.created","timestamp":"2026-11-30T09:15:00Z","data":{"userName":"jdoe@example.com"}}
//! ```
//! Joiners and movers may also carry `title`, `department`, `employeeNumber` and `displayName`
//! (`null` or `""` clears them), and `initial`: an object of `firstName`, `lastName`, `email`,
//! `displayName`, `title`, `department`, `employeeNumber` that a new account is created with
//! and an existing one never gets.
//!
//! Attributes an event leaves out stay as they are in CXone. Leavers (disable, delete) need only
//! what finds the person (`externalId` and/or `userName`); their other fields are ignored.

use crate::person;
use crate::policy::{GroupInput, RbacViolation, Resolution, RolePolicy, RoleTarget, TargetWrite, Verdict};
use crate::scim::build::{looks_like_email, DesiredUser};
use crate::scim::lenient;
use crate::time::{iso8601, parse_rfc3339};
use crate::UnixMillis;
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

const MAX_USER_NAME: usize = 256;
/// Groups one event may name: far more than anyone belongs to, few enough to resolve cheaply.
pub const MAX_GROUPS: usize = 1_000;
/// Characters at most in `title`, `department`, `employeeNumber`, `displayName` and in the
/// texts of `initial`.
const MAX_TEXT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    #[default]
    Update,
    /// Soft leaver: `active = false`, the account kept.
    Disable,
    /// Explicit hard delete.
    Delete,
}

impl Operation {
    /// Disable and delete: they take access away and need only what finds the person.
    pub fn is_leaver(self) -> bool {
        matches!(self, Self::Disable | Self::Delete)
    }

    /// The operation a Standard Webhooks envelope `type` names.
    fn from_envelope_type(kind: &str) -> Option<Self> {
        let name = kind.trim().to_ascii_lowercase();
        match name.strip_prefix("user.")? {
            "created" => Some(Self::Create),
            "updated" => Some(Self::Update),
            "disabled" => Some(Self::Disable),
            "deleted" => Some(Self::Delete),
            _ => None,
        }
    }
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

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    pub operation: Operation,
    /// Empty only for a leaver identified by `externalId` alone.
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `None` (absent): memberships unknown, roles left alone. `[]`: member of nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupInput>>,
    /// `None` (absent): `active` left as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
    /// `None` (absent): left as it is; `Some("")` (`null` or `""`): cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Enterprise extension; `Some("")`: cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Enterprise extension; `Some("")`: cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    /// Wins over "First Last"; `Some("")`: cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Values set only when the account is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial: Option<person::Attributes>,
    /// When it happened at the source (`occurredAt`, or the envelope's `timestamp`); written
    /// as RFC 3339 text, as it is read.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rfc3339")]
    pub occurred_at: Option<UnixMillis>,
}

fn rfc3339<S: Serializer>(at: &Option<UnixMillis>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(ms) => s.serialize_str(&iso8601(*ms)),
        None => s.serialize_none(),
    }
}

/// A text that `null` or `""` clears: both read as `Some("")`.
fn clearable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

/// What finds the person, read from any event whatever its other fields hold.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    #[serde(default)]
    operation: Option<Operation>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// What a joiner or mover carries besides its identity.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Option<Vec<GroupInput>>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    account_enabled: Option<bool>,
    #[serde(default, deserialize_with = "clearable")]
    title: Option<String>,
    #[serde(default, deserialize_with = "clearable")]
    department: Option<String>,
    #[serde(default, deserialize_with = "clearable")]
    employee_number: Option<String>,
    #[serde(default, deserialize_with = "clearable")]
    display_name: Option<String>,
    #[serde(default)]
    initial: Option<person::Attributes>,
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
    Invalid { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> EventError {
    EventError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads `T` from `value`, naming the field that did not fit.
fn fields<T: DeserializeOwned>(value: &Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        invalid(&field, e.into_inner().to_string())
    })
}

/// What the event asks of CXone, after the role policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Command {
    /// Create or update to the desired state (create first when `create_first`).
    Upsert {
        desired: Box<DesiredUser>,
        create_first: bool,
        /// The person's CXone account as their ledger last wrote it: read first, by its id.
        known_id: Option<String>,
    },
    Disable {
        lookup: Lookup,
    },
    Delete {
        lookup: Lookup,
    },
}

impl Command {
    /// The person's ledger knows their CXone account (`id`): it is read first, by its id, and a
    /// repeated joiner is an update, not a second `POST /Users`. `None` changes nothing.
    pub fn known_as(mut self, id: Option<String>) -> Self {
        let Some(id) = id else { return self };
        match &mut self {
            Self::Upsert {
                create_first, known_id, ..
            } => {
                *create_first = false;
                *known_id = Some(id);
            }
            Self::Disable { lookup } | Self::Delete { lookup } => lookup.cxone_id = Some(id),
        }
        self
    }

    /// A leaver's lookup and mode (a disable, a delete), `None` for a joiner or a mover. Every
    /// leaver takes the deprovisioning flow ([`crate::deprovision`]). An update to
    /// `accountEnabled:false` is a write of the person's attributes (Graph sends one on every
    /// round for a user it disabled before; it makes a live account's disabling a `disable`).
    pub fn as_leaver(&self) -> Option<(Lookup, crate::deprovision::Mode)> {
        use crate::deprovision::Mode;
        match self {
            Self::Disable { lookup } => Some((lookup.clone(), Mode::Deactivate)),
            Self::Delete { lookup } => Some((lookup.clone(), Mode::Delete)),
            Self::Upsert { .. } => None,
        }
    }

    /// The role values the account holds once this is applied; `None` when it leaves them as
    /// they are (a leaver who is disabled, a state without groups).
    pub fn roles_after(&self) -> Option<Vec<String>> {
        match self {
            Self::Upsert { desired, .. } => desired.role_values(),
            Self::Disable { .. } => None,
            Self::Delete { .. } => Some(Vec::new()),
        }
    }
}

/// How to find the user in CXone: by the id their ledger knows, then externalId (where the
/// server can filter by it), then userName.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lookup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The person's CXone account as their ledger last wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxone_id: Option<String>,
}

impl Lookup {
    /// The key of the ledger that orders the person's events.
    pub fn person_key(&self) -> String {
        crate::ledger::person_key(
            self.external_id.as_deref(),
            self.user_name.as_deref().unwrap_or_default(),
        )
    }
}

impl LifecycleEvent {
    /// Parses and checks an event body, flat or enveloped.
    pub fn from_json(body: &[u8]) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| EventError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let (data, from_type, envelope_time) = match envelope(&value)? {
            Some((data, operation, time)) => (data, Some(operation), time),
            None => (&value, None, None),
        };
        if !data.is_object() {
            return Err(invalid("body", "must be a JSON object"));
        }
        let id: Identity = fields(data)?;
        let operation = match (from_type, id.operation) {
            (Some(t), Some(op)) if t != op => {
                return Err(invalid("operation", format!("{op:?} contradicts the envelope type")))
            }
            (Some(op), _) | (None, Some(op)) => op,
            (None, None) => return Err(invalid("operation", "is missing")),
        };
        let occurred_at = match (&id.occurred_at, envelope_time) {
            (Some(text), _) => Some(parse_rfc3339(text).map_err(|e| invalid("occurredAt", e.to_string()))?),
            (None, time) => time,
        };
        let mut event = Self {
            operation,
            user_name: id.user_name.unwrap_or_default().trim().to_string(),
            external_id: id.external_id,
            occurred_at,
            ..Self::default()
        };
        if !operation.is_leaver() {
            let a: Attributes = fields(data)?;
            event.first_name = a.first_name;
            event.last_name = a.last_name;
            event.email = a.email;
            event.groups = a.groups;
            event.account_enabled = a.account_enabled;
            event.title = a.title;
            event.department = a.department;
            event.employee_number = a.employee_number;
            event.display_name = a.display_name;
            event.initial = a.initial.filter(|i| !i.is_empty());
        }
        event.validate()?;
        Ok(event)
    }

    /// Checks the fields a payload is built from (for leavers: only what finds the person).
    pub fn validate(&self) -> Result<(), EventError> {
        if self.external_id.as_deref().is_some_and(|e| e.trim().is_empty()) {
            return Err(invalid("externalId", "must not be empty when given"));
        }
        let name = self.user_name.trim();
        if name.is_empty() {
            if self.operation.is_leaver() && self.external_id.is_some() {
                return Ok(());
            }
            return Err(invalid("userName", "must not be empty"));
        }
        if name.len() > MAX_USER_NAME || name.chars().any(char::is_control) {
            return Err(invalid(
                "userName",
                "must be at most 256 characters without control characters",
            ));
        }
        if self.operation.is_leaver() {
            return Ok(());
        }
        if let Some(email) = &self.email {
            if !looks_like_email(email) {
                return Err(invalid("email", format!("{email:?} is not an email address")));
            }
        }
        let flat = [
            ("title", self.title.as_deref()),
            ("department", self.department.as_deref()),
            ("employeeNumber", self.employee_number.as_deref()),
            ("displayName", self.display_name.as_deref()),
        ];
        let initial = self
            .initial
            .as_ref()
            .map(person::Attributes::texts)
            .into_iter()
            .flatten();
        for (field, text) in flat.into_iter().chain(initial) {
            check_text(field, text)?;
        }
        if let Some(email) = self.initial.as_ref().and_then(|i| i.email.as_deref()) {
            if !email.trim().is_empty() && !looks_like_email(email) {
                return Err(invalid("initial.email", format!("{email:?} is not an email address")));
            }
        }
        if self.groups.as_ref().is_some_and(|g| g.len() > MAX_GROUPS) {
            return Err(invalid("groups", format!("holds more than {MAX_GROUPS} entries")));
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

    /// The event leaves the account's `active` as it is: an update without `accountEnabled`
    /// (what the person's ledger needs to order leavers, see [`crate::ledger`]).
    pub fn keeps_status(&self) -> bool {
        self.operation == Operation::Update && self.account_enabled.is_none()
    }

    /// The key that orders events about one person: externalId, else the userName.
    pub fn subject_key(&self) -> String {
        crate::ledger::person_key(self.external_id.as_deref(), &self.user_name)
    }

    /// Applies the role policy and decides what CXone must do, the roles going where `target`
    /// keeps them and the team ([`RolePolicy::team_for`]) set when the groups map one. Leavers
    /// (disable, delete) skip the policy: a leaver is never blocked by a group that is no longer
    /// mapped.
    pub fn command(
        &self,
        policy: &RolePolicy,
        target: &RoleTarget,
    ) -> Result<(Command, Option<Resolution>), RbacViolation> {
        let lookup = || Lookup {
            user_name: Some(self.user_name.trim().to_string()).filter(|n| !n.is_empty()),
            external_id: self.external_id.clone(),
            cxone_id: None,
        };
        match self.operation {
            Operation::Disable => return Ok((Command::Disable { lookup: lookup() }, None)),
            Operation::Delete => return Ok((Command::Delete { lookup: lookup() }, None)),
            Operation::Create | Operation::Update => {}
        }
        let resolution = self.groups.as_deref().map(|g| policy.resolve(g)).transpose()?;
        // The same verdict as `POST /roles/sync` (no roles asked for: only what the groups grant,
        // with what they inherit when the policy expands inheritance).
        let roles = match (self.groups.as_deref(), &resolution) {
            (Some(groups), Some(r)) => Some(match policy.verdict(groups, None) {
                Verdict::Pass { roles } => roles,
                Verdict::Fail { reason } => return Err(reason),
                Verdict::EscalationDetected { .. } => r.roles.clone(),
            }),
            _ => None,
        };
        let (roles, role_attribute) = match roles.map(|r| target.write(policy, &r)) {
            None => (None, None),
            Some(TargetWrite::Roles(roles)) => (Some(roles), None),
            Some(TargetWrite::Single(attribute)) => (None, Some(attribute)),
        };
        let desired = DesiredUser {
            user_name: self.user_name.trim().to_string(),
            external_id: self.external_id.clone(),
            given_name: self.first_name.clone(),
            family_name: self.last_name.clone(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            title: self.title.clone(),
            department: self.department.clone(),
            employee_number: self.employee_number.clone(),
            active: self.account_enabled,
            roles,
            role_attribute,
            // The team follows the groups too; no groups, or no team mapped: left as it is.
            team: self.groups.as_deref().and_then(|g| policy.team_for(g)),
            initial: self.initial.clone().map(Box::new),
        };
        Ok((
            Command::Upsert {
                desired: Box::new(desired),
                create_first: self.operation == Operation::Create,
                known_id: None,
            },
            resolution,
        ))
    }
}

/// At most [`MAX_TEXT`] characters, none of them a control character.
fn check_text(field: &str, text: Option<&str>) -> Result<(), EventError> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) => Err(invalid(
            field,
            format!("must be at most {MAX_TEXT} characters without control characters"),
        )),
        _ => Ok(()),
    }
}

/// The inside of a Standard Webhooks envelope: the event, its operation and time.
type Enveloped<'a> = (&'a Value, Operation, Option<UnixMillis>);

/// `Some(..)` when `value` is a Standard Webhooks envelope.
fn envelope(value: &Value) -> Result<Option<Enveloped<'_>>, EventError> {
    let (Some(kind), Some(data)) = (value.get("type"), value.get("data")) else {
        return Ok(None);
    };
    let kind = kind.as_str().unwrap_or_default();
    let operation = Operation::from_envelope_type(kind).ok_or_else(|| {
        invalid(
            "type",
            format!("{kind:?} is not one of user.created, user.updated, user.disabled, user.deleted"),
        )
    })?;
    let time = match value.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(parse_rfc3339(t).map_err(|e| invalid("timestamp", e.to_string()))?),
        Some(_) => return Err(invalid("timestamp", "must be an RFC 3339 string")),
    };
    Ok(Some((data, operation, time)))
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
    fn a_single_valued_target_gets_the_priority_pick_and_roles_are_left_alone() {
        let policy = RolePolicy::from_json(include_str!("../tests/fixtures/role_policy_inheritance.json")).unwrap();
        let target = RoleTarget::parse("urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole").unwrap();
        let event = |groups: &str| {
            LifecycleEvent::from_json(
                format!(r#"{{"operation":"update","userName":"a@x.io","groups":{groups}}}"#).as_bytes(),
            )
            .unwrap()
        };
        let desired = |e: LifecycleEvent| match e.command(&policy, &target).unwrap().0 {
            Command::Upsert { desired, .. } => *desired,
            other => panic!("{other:?}"),
        };
        let d = desired(event(
            r#"[{"displayName":"cxone-agent"},{"displayName":"cxone-supervisor"}]"#,
        ));
        assert_eq!(d.roles, None, "the core roles attribute is not the target");
        let attribute = d.role_attribute.unwrap();
        assert_eq!(attribute.path, target.path());
        assert_eq!(attribute.value.as_deref(), Some("Supervisor"), "the higher priority");
        let d = desired(event("[]"));
        assert_eq!(
            d.role_attribute.map(|a| a.value),
            Some(None),
            "no groups: the attribute is cleared"
        );
        let d = desired(LifecycleEvent::from_json(br#"{"operation":"update","userName":"a@x.io"}"#).unwrap());
        assert_eq!(
            (d.roles, d.role_attribute),
            (None, None),
            "groups absent: roles left alone"
        );
        let escalation = event(r#"[{"displayName":"nobody-maps-this"}]"#);
        assert!(
            escalation.command(&policy, &target).is_err(),
            "strict mode still refuses"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_roles_written_are_the_verdicts_inherited_ones_included_when_the_policy_expands() {
        let doc = r#"{"version":1,"mode":"strict","expandInherited":true,
            "mappings":[{"group":"leads","role":"Supervisor"}],
            "roles":[{"roleId":"Agent","inheritsFrom":[]},{"roleId":"Supervisor","inheritsFrom":["Agent"]}]}"#;
        let expanding = RolePolicy::from_json(doc).unwrap();
        let event = LifecycleEvent::from_json(
            br#"{"operation":"update","userName":"a@x.io","groups":[{"displayName":"leads"}]}"#,
        )
        .unwrap();
        let roles = |p: &RolePolicy| match event.command(p, &crate::policy::RoleTarget::Roles).unwrap().0 {
            Command::Upsert { desired, .. } => desired.roles.unwrap().into_iter().map(|r| r.value).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(roles(&expanding), ["Supervisor", "Agent"]);
        let plain = RolePolicy::from_json(&doc.replace(r#""expandInherited":true,"#, "")).unwrap();
        assert_eq!(roles(&plain), ["Supervisor"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_event_becomes_an_upsert_with_roles() {
        let e = LifecycleEvent::from_json(CREATE.as_bytes()).unwrap();
        let (cmd, res) = e.command(&policy(), &crate::policy::RoleTarget::Roles).unwrap();
        let Command::Upsert {
            desired, create_first, ..
        } = cmd
        else {
            panic!("{cmd:?}")
        };
        assert!(create_first);
        assert_eq!(desired.email, None, "no email given: the create payload defaults it");
        assert_eq!(desired.roles.unwrap()[0].value, "Agent");
        assert_eq!(res.unwrap().ignored_groups, ["All Staff"]);
        assert_eq!(e.subject_key(), "ext:e-jdoe-1");
        assert_eq!(e.occurred_at, None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn idp_quirks_are_accepted() {
        let e = LifecycleEvent::from_json(br#"{"operation":"Update","userName":"a@b.co","accountEnabled":"False"}"#)
            .unwrap();
        assert_eq!(e.operation, Operation::Update);
        assert_eq!(e.account_enabled, Some(false));
        let (cmd, _) = e.command(&policy(), &crate::policy::RoleTarget::Roles).unwrap();
        let Command::Upsert { desired, .. } = cmd else { panic!() };
        assert_eq!(desired.active, Some(false));
        assert_eq!(desired.roles, None, "no groups given: roles untouched");
        assert_eq!(e.subject_key(), "user:a@b.co");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn absent_attributes_stay_absent() {
        let e = LifecycleEvent::from_json(br#"{"operation":"update","userName":"a@b.co","firstName":"A"}"#).unwrap();
        let (
            Command::Upsert {
                desired, create_first, ..
            },
            _,
        ) = e.command(&policy(), &crate::policy::RoleTarget::Roles).unwrap()
        else {
            panic!()
        };
        assert!(!create_first);
        assert_eq!(desired.active, None, "no accountEnabled: active untouched");
        assert_eq!((desired.family_name, desired.email), (None, None));
        assert_eq!(desired.given_name.as_deref(), Some("A"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn leavers_skip_the_policy_and_ignore_joiner_fields() {
        let e = LifecycleEvent::from_json(
            br#"{"operation":"delete","userName":"a@b.co","email":"","groups":[{}],"accountEnabled":"maybe","firstName":7}"#,
        )
        .unwrap();
        assert_eq!((e.email.as_deref(), e.groups.as_ref()), (None, None));
        assert!(matches!(
            e.command(&policy(), &crate::policy::RoleTarget::Roles),
            Ok((Command::Delete { .. }, None))
        ));
        let e = LifecycleEvent::from_json(br#"{"operation":"disable","externalId":"e-9"}"#).unwrap();
        let (Command::Disable { lookup }, None) = e.command(&policy(), &crate::policy::RoleTarget::Roles).unwrap()
        else {
            panic!()
        };
        assert_eq!(lookup.user_name, None);
        assert_eq!(lookup.external_id.as_deref(), Some("e-9"));
        let unmapped = LifecycleEvent {
            operation: Operation::Create,
            user_name: "a@b.co".into(),
            groups: Some(vec![GroupInput {
                display_name: Some("Unmapped".into()),
                id: None,
            }]),
            ..LifecycleEvent::default()
        };
        assert!(
            unmapped.command(&policy(), &crate::policy::RoleTarget::Roles).is_err(),
            "joiners do go through the policy"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn event_time_from_the_body_or_the_envelope() {
        let flat = LifecycleEvent::from_json(
            br#"{"operation":"update","userName":"a@b.co","occurredAt":"2026-11-22T10:49:17+01:00"}"#,
        )
        .unwrap();
        assert_eq!(flat.occurred_at, Some(1_795_340_957_000));
        let wrapped = LifecycleEvent::from_json(
            br#"{"type":"user.deleted","timestamp":"2026-11-22T09:49:17.250Z","data":{"externalId":"e-1","groups":[{}]}}"#,
        )
        .unwrap();
        assert_eq!(wrapped.operation, Operation::Delete);
        assert_eq!(wrapped.occurred_at, Some(1_795_340_957_250));
        assert_eq!(wrapped.subject_key(), "ext:e-1");
        let created =
            LifecycleEvent::from_json(br#"{"type":"user.created","data":{"userName":"a@b.co","firstName":"A"}}"#)
                .unwrap();
        assert_eq!((created.operation, created.occurred_at), (Operation::Create, None));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_event_with_too_many_groups_is_refused() {
        let groups: Vec<String> = (0..=MAX_GROUPS)
            .map(|i| format!(r#"{{"displayName":"g{i}"}}"#))
            .collect();
        let body = format!(
            r#"{{"operation":"update","userName":"a@b.co","groups":[{}]}}"#,
            groups.join(",")
        );
        let err = LifecycleEvent::from_json(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("groups"), "{err}");
        let fewer = format!(
            r#"{{"operation":"update","userName":"a@b.co","groups":[{}]}}"#,
            groups[1..].join(",")
        );
        assert!(LifecycleEvent::from_json(fewer.as_bytes()).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bad_events_say_what_is_wrong() {
        let cases: [(&[u8], &str); 13] = [
            (b"{", "line 1"),
            (b"[1]", "must be a JSON object"),
            (br#"{"operation":"merge","userName":"a"}"#, "unknown variant"),
            (br#"{"userName":"a"}"#, "operation is missing"),
            (br#"{"operation":"create"}"#, "userName"),
            (br#"{"operation":"delete"}"#, "userName must not be empty"),
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
            (
                br#"{"operation":"update","userName":"a","occurredAt":"yesterday"}"#,
                "occurredAt",
            ),
            (br#"{"type":"user.renamed","data":{"userName":"a"}}"#, "user.created"),
            (
                br#"{"type":"user.created","data":{"operation":"delete","userName":"a"}}"#,
                "contradicts",
            ),
        ];
        for (body, want) in cases {
            let msg = LifecycleEvent::from_json(body).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg:?} should mention {want:?}");
        }
        let msg = LifecycleEvent::from_json(br#"{"operation":"create","userName":"a","firstName":7}"#)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("firstName"), "{msg}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn new_attributes_null_or_blank_clear_and_reach_the_desired_state() {
        let e = LifecycleEvent::from_json(
            br#"{"operation":"update","userName":"a@b.co","title":"Agent","department":null,
                 "employeeNumber":"","initial":{"displayName":"A. B.","email":null}}"#,
        )
        .unwrap();
        assert_eq!(e.title.as_deref(), Some("Agent"));
        assert_eq!(
            (e.department.as_deref(), e.employee_number.as_deref()),
            (Some(""), Some(""))
        );
        assert_eq!(e.display_name, None, "absent: untouched");
        let (Command::Upsert { desired, .. }, _) = e.command(&policy(), &crate::policy::RoleTarget::Roles).unwrap()
        else {
            panic!()
        };
        assert_eq!(desired.title.as_deref(), Some("Agent"));
        assert_eq!(desired.department.as_deref(), Some(""));
        let initial = desired.initial.unwrap();
        assert_eq!((initial.display_name.as_deref(), initial.email), (Some("A. B."), None));
        let empty = LifecycleEvent::from_json(br#"{"operation":"update","userName":"a@b.co","initial":{}}"#).unwrap();
        assert_eq!(empty.initial, None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_event_survives_serialising_and_parsing_back() {
        let e = LifecycleEvent {
            operation: Operation::Create,
            user_name: "jdoe@example.com".into(),
            external_id: Some("e-1".into()),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            email: Some("jdoe@example.com".into()),
            groups: Some(vec![GroupInput {
                display_name: Some("cxone-agent".into()),
                id: Some("g-1".into()),
            }]),
            account_enabled: Some(false),
            title: Some("Agent".into()),
            department: Some(String::new()),
            employee_number: Some("E-1".into()),
            display_name: Some("Jane D.".into()),
            initial: Some(person::Attributes {
                first_name: Some("J".into()),
                email: Some("j@example.com".into()),
                department: Some("Support".into()),
                ..person::Attributes::default()
            }),
            occurred_at: Some(1_795_340_957_250),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["occurredAt"], "2026-11-22T09:49:17.250Z");
        assert_eq!(json["initial"]["firstName"], "J");
        let back = LifecycleEvent::from_json(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let bare = LifecycleEvent {
            user_name: "a@b.co".into(),
            ..LifecycleEvent::default()
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"operation":"update","userName":"a@b.co"}"#
        );
        assert_eq!(
            LifecycleEvent::from_json(&serde_json::to_vec(&bare).unwrap()).unwrap(),
            bare
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn new_attributes_are_checked() {
        let long = "x".repeat(MAX_TEXT + 1);
        let cases = [
            (
                format!(r#"{{"operation":"update","userName":"a","title":"{long}"}}"#),
                "title must be at most 256",
            ),
            (
                r#"{"operation":"update","userName":"a","department":"a\u0007b"}"#.to_string(),
                "department",
            ),
            (
                r#"{"operation":"update","userName":"a","displayName":7}"#.to_string(),
                "displayName",
            ),
            (
                r#"{"operation":"update","userName":"a","initial":{"employeeNumber":"1\n2"}}"#.to_string(),
                "initial.employeeNumber",
            ),
            (
                r#"{"operation":"update","userName":"a","initial":{"email":"nope"}}"#.to_string(),
                "initial.email",
            ),
            (
                r#"{"operation":"update","userName":"a","initial":{"jobTitle":"x"}}"#.to_string(),
                "jobTitle",
            ),
        ];
        for (body, want) in cases {
            let msg = LifecycleEvent::from_json(body.as_bytes()).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg:?} should mention {want:?}");
        }
        let at_limit = format!(
            r#"{{"operation":"update","userName":"a","title":"{}"}}"#,
            "é".repeat(MAX_TEXT)
        );
        assert!(
            LifecycleEvent::from_json(at_limit.as_bytes()).is_ok(),
            "characters, not bytes"
        );
    }
}
