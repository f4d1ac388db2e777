//! The SCIM User resource with the enterprise extension.
//!
//! NICE CXone keeps a user's team in its own extension, [`NICE_USER_SCHEMA`], as
//! `"team": {"value": "<team id>", "display": "<team name>"}`. That extension stays in
//! [`User::extra`] exactly as CXone sent it (its other attributes too); [`User::team`] reads the
//! team from it and [`User::set_team`] writes it.

use super::lenient;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// NICE CXone's User extension, which holds the user's `team`.
pub const NICE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:nice:2.0:User";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Email>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Read-only on the server: groups the user is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRef>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<EnterpriseUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Attributes and extensions this crate does not model, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// The value of the `work` email, else the primary one, else the first.
    pub fn work_email(&self) -> Option<&Email> {
        self.emails
            .iter()
            .find(|e| e.kind.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("work")))
            .or_else(|| self.emails.iter().find(|e| e.primary == Some(true)))
            .or_else(|| self.emails.first())
    }

    /// `active` as the server means it: absent counts as active.
    pub fn is_active(&self) -> bool {
        self.active.unwrap_or(true)
    }

    /// The team in the NICE extension ([`NICE_USER_SCHEMA`]; the URN and attribute names in any
    /// case). The team's `value` may be text or a number, and a bare text `team` is its value;
    /// anything else, or a blank value, counts as no team.
    pub fn team(&self) -> Option<TeamRef> {
        let team = get_ci(get_ci(&self.extra, NICE_USER_SCHEMA)?.as_object()?, "team")?;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let (value, display) = match team {
            Value::Object(map) => (
                text(get_ci(map, "value")?)?,
                get_ci(map, "display").and_then(text).filter(|d| !d.is_empty()),
            ),
            other => (text(other)?, None),
        };
        (!value.is_empty()).then_some(TeamRef { value, display })
    }

    /// Sets the team in the NICE extension, as `{"value", "display"?}` (trimmed). The extension's
    /// other attributes stay, and its URN is listed in `schemas`.
    pub fn set_team(&mut self, team: &TeamRef) {
        let key = key_ci(&self.extra, NICE_USER_SCHEMA).unwrap_or_else(|| NICE_USER_SCHEMA.to_string());
        let extension = self.extra.entry(key).or_insert(Value::Null);
        if !extension.is_object() {
            *extension = Value::Object(Map::new());
        }
        if let Some(map) = extension.as_object_mut() {
            map.retain(|k, _| !k.eq_ignore_ascii_case("team"));
            map.insert("team".to_string(), Value::from(team));
        }
        if !self.schemas.iter().any(|s| s.eq_ignore_ascii_case(NICE_USER_SCHEMA)) {
            self.schemas.push(NICE_USER_SCHEMA.to_string());
        }
    }
}

/// The key of `map` that is `name` in any case (SCIM names are case-insensitive).
fn key_ci(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_string());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn get_ci<'v>(map: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    map.get(&key_ci(map, name)?)
}

/// A CXone team: its id (`value`) and, optionally, its name (`display`), as the NICE extension's
/// `team` holds them. As JSON: `{"value":"<team id>","display":"<team name>"}`, `display` left
/// out when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TeamRef {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl TeamRef {
    /// Whether `other` is the same team: teams compare by `value` only (trimmed, ASCII case
    /// ignored), never by `display`.
    pub fn same_team(&self, other: &TeamRef) -> bool {
        self.value.trim().eq_ignore_ascii_case(other.value.trim())
    }
}

impl From<&TeamRef> for Value {
    /// `{"value", "display"?}`, trimmed; a blank `display` is left out.
    fn from(team: &TeamRef) -> Self {
        let mut map = Map::new();
        map.insert("value".to_string(), Value::String(team.value.trim().to_string()));
        if let Some(display) = team.display.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            map.insert("display".to_string(), Value::String(display.to_string()));
        }
        Value::Object(map)
    }
}

/// The `name` complex attribute (closed: unknown sub-attributes are rejected).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Name {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_suffix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Email {
    pub value: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    pub value: String,
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manager {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const RFC_USER: &str = include_str!("../../tests/fixtures/rfc7643_enterprise_user.json");
    const STANDIN_USER: &str = include_str!("../../tests/fixtures/standin_user_created.json");

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_rfc_enterprise_user_and_keeps_unknown_attributes() {
        let user: User = serde_json::from_str(RFC_USER).unwrap();
        assert_eq!(user.user_name, "bjensen@example.com");
        assert_eq!(user.id.as_deref(), Some("2819c223-7f76-453a-919d-413861904646"));
        assert_eq!(user.work_email().map(|e| e.value.as_str()), Some("bjensen@example.com"));
        let ent = user.enterprise.as_ref().unwrap();
        assert_eq!(ent.employee_number.as_deref(), Some("701984"));
        assert_eq!(
            ent.manager.as_ref().and_then(|m| m.display_name.as_deref()),
            Some("John Smith")
        );
        // Modelled elsewhere by nobody here: kept verbatim.
        assert!(user.extra.contains_key("addresses"));
        assert!(user.extra.contains_key("phoneNumbers"));
        assert_eq!(user.title.as_deref(), Some("Tour Guide"));
        assert!(!user.extra.contains_key("title"), "title is modelled");
        let back = serde_json::to_value(&user).unwrap();
        assert_eq!(
            back["addresses"],
            serde_json::from_str::<Value>(RFC_USER).unwrap()["addresses"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_what_the_standin_returns() {
        let user: User = serde_json::from_str(STANDIN_USER).unwrap();
        assert!(user.id.is_some());
        assert!(user.is_active());
        assert_eq!(user.roles[0].value, "Agent");
        assert!(user.meta.as_ref().and_then(|m| m.version.as_ref()).is_some());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_team_from_the_nice_extension_and_keeps_the_rest() {
        let text = include_str!("../../tests/fixtures/cxone_user_with_team.json");
        let user: User = serde_json::from_str(text).unwrap();
        assert_eq!(
            user.team(),
            Some(TeamRef {
                value: "5f0c7e2a-1d2b-4c3d-8e4f-a1b2c3d4e5f6".into(),
                display: Some("Support EMEA".into())
            })
        );
        // The extension stays as it came, its unmodelled attributes included.
        let back = serde_json::to_value(&user).unwrap();
        let sent: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back[NICE_USER_SCHEMA], sent[NICE_USER_SCHEMA]);
        assert_eq!(back["schemas"], sent["schemas"]);
        // No extension, or no team in it: no team.
        let plain: User = serde_json::from_str(STANDIN_USER).unwrap();
        assert_eq!(plain.team(), None);
        let no_team: User =
            serde_json::from_str(&format!(r#"{{"userName":"a","{NICE_USER_SCHEMA}":{{"skills":[]}}}}"#)).unwrap();
        assert_eq!(no_team.team(), None);
    }

    /// The team of a user whose extension `urn` holds `"Team": <team>`.
    fn team_in(urn: &str, team: &str) -> Option<TeamRef> {
        let text = format!(r#"{{"userName":"a","{urn}":{{"Team":{team}}}}}"#);
        serde_json::from_str::<User>(&text).unwrap().team()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn team_shapes_are_read_leniently() {
        assert_eq!(
            team_in(&NICE_USER_SCHEMA.to_uppercase(), r#"{"VALUE":" t-1 ","display":" "}"#),
            Some(TeamRef {
                value: "t-1".into(),
                display: None
            }),
            "names in any case, blanks trimmed"
        );
        let read = |team: &str| team_in(NICE_USER_SCHEMA, team).map(|t| t.value);
        assert_eq!(read("42"), Some("42".into()), "a numeric id");
        assert_eq!(read(r#""t-2""#), Some("t-2".into()), "a bare id");
        for none in ["null", r#"{"value":" "}"#, r#"{"display":"x"}"#, "[]", "true"] {
            assert_eq!(read(none), None, "{none}");
        }
        // An extension that is not an object still parses: kept, no team.
        let odd: User = serde_json::from_str(&format!(r#"{{"userName":"a","{NICE_USER_SCHEMA}":"x"}}"#)).unwrap();
        assert_eq!((odd.team(), odd.extra.len()), (None, 1));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn setting_the_team_keeps_the_extension_and_lists_its_urn_once() {
        let mut user: User =
            serde_json::from_str(include_str!("../../tests/fixtures/cxone_user_with_team.json")).unwrap();
        let team = TeamRef {
            value: " t-9 ".into(),
            display: Some("Night".into()),
        };
        user.set_team(&team);
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(
            v[NICE_USER_SCHEMA],
            serde_json::json!({"team": {"value": "t-9", "display": "Night"}, "skills": [{"value": "fr"}]})
        );
        assert_eq!(user.schemas.iter().filter(|s| *s == NICE_USER_SCHEMA).count(), 1);
        assert!(user.team().is_some_and(|t| t.same_team(&team)));
        let mut bare = User {
            user_name: "a".into(),
            ..User::default()
        };
        bare.set_team(&TeamRef {
            value: "t-1".into(),
            display: None,
        });
        assert_eq!(bare.schemas, [NICE_USER_SCHEMA]);
        assert_eq!(
            serde_json::to_value(&bare).unwrap()[NICE_USER_SCHEMA],
            serde_json::json!({"team": {"value": "t-1"}})
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn teams_compare_by_value_only() {
        let a = TeamRef {
            value: "ABC-1".into(),
            display: Some("Support".into()),
        };
        let b = TeamRef {
            value: " abc-1".into(),
            display: None,
        };
        assert!(a.same_team(&b) && b.same_team(&a));
        assert!(!a.same_team(&TeamRef {
            value: "abc-2".into(),
            display: Some("Support".into())
        }));
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"value":" abc-1"}"#,
            "serde keeps the value as given"
        );
        assert_eq!(Value::from(&b), serde_json::json!({"value": "abc-1"}));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lenient_active_and_strict_name() {
        let u: User = serde_json::from_str(r#"{"userName":"a","active":"False"}"#).unwrap();
        assert_eq!(u.active, Some(false));
        assert!(!u.is_active());
        let err = serde_json::from_str::<User>(r#"{"userName":"a","name":{"givenNam":"x"}}"#);
        assert!(err.is_err(), "unknown name sub-attribute must be rejected");
    }
}

/// Whether two userNames name the same account: RFC 7643 makes `userName` case-insensitive, and
/// servers fold more than ASCII, so the comparison does too (surrounding spaces ignored).
pub fn same_user_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod same_user_name_tests {
    use super::same_user_name;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn user_names_compare_without_case_beyond_ascii() {
        assert!(same_user_name("JDoe@Example.com", "jdoe@example.com"));
        assert!(same_user_name("Ünal.Öz@example.com", "ünal.öz@example.com"));
        assert!(same_user_name(" jdoe@example.com", "jdoe@example.com "));
        assert!(!same_user_name("jdoe@example.com", "jdoe2@example.com"));
        assert!(!same_user_name("ünal@example.com", "unal@example.com"));
    }
}
