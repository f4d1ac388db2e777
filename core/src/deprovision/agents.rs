//! NICE's Admin API, as far as a leaver needs it: find the person's agent, read what depends on
//! it, end its session, read it back.
//!
//! - `GET {admin}/agents?searchString={userName}` → `{"agents":[{agentId, userName, userID,
//!   isActive, …}]}`; nothing found is `204 No Content` (or an empty list). The search matches
//!   parts of names and addresses, so [`match_agent`] keeps only an exact, case-insensitive
//!   `userName`, or a `userID` equal to the CXone account's id.
//! - `POST {admin}/agents/{agentId}/logout` ends the agent's session.
//! - `GET {admin}/agents/{agentId}/skills` → `agentSkillAssignments`, `…/groups` → `agentGroups`,
//!   `…/scheduled-callbacks` → `callbacks`; `204` when there are none (as NICE answers other
//!   empty lists; its documents do not say for these).
//!
//! Answers are read leniently (ids as numbers or texts, unknown fields ignored) in this one place.

use crate::http::{encode_component, HttpRequest, HttpResponse, Method};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One agent as the Admin API lists it (the fields a leaver needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    #[serde(deserialize_with = "id_text")]
    pub agent_id: String,
    #[serde(default)]
    pub user_name: String,
    /// The UserHub id of the agent's user: the SCIM account's `id`.
    #[serde(default, rename = "userID", deserialize_with = "opt_id_text")]
    pub user_id: Option<String>,
    #[serde(default = "active_by_default")]
    pub is_active: bool,
}

fn active_by_default() -> bool {
    true
}

/// An id the Admin API answers as a number or as a text, kept as text.
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("an id, not {other}"))),
    }
}

fn opt_id_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!("an id, not {other}"))),
    }
}

#[derive(Debug, Deserialize)]
struct AgentList {
    #[serde(default)]
    agents: Vec<Agent>,
}

/// Where the Admin API is (`CXONE_API_BASE_URL`, e.g.
/// `https://api-na1.niceincontact.com/incontactapi/services/v31.0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminApi {
    base_url: String,
}

impl AdminApi {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn get(&self, path: &str) -> HttpRequest {
        HttpRequest::new(Method::Get, format!("{}{path}", self.base_url)).header("Accept", "application/json")
    }

    /// The agents whose names or addresses contain `user_name`.
    pub fn search(&self, user_name: &str) -> HttpRequest {
        self.get(&format!("/agents?searchString={}", encode_component(user_name)))
    }

    pub fn logout(&self, agent_id: &str) -> HttpRequest {
        let url = format!("{}/agents/{}/logout", self.base_url, encode_component(agent_id));
        HttpRequest::new(Method::Post, url).header("Accept", "application/json")
    }

    pub fn dependency(&self, agent_id: &str, kind: DependencyKind) -> HttpRequest {
        self.get(&format!("/agents/{}/{}", encode_component(agent_id), kind.path()))
    }
}

/// What may depend on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyKind {
    Skills,
    Groups,
    ScheduledCallbacks,
}

impl DependencyKind {
    pub const ALL: [Self; 3] = [Self::Skills, Self::Groups, Self::ScheduledCallbacks];

    fn path(self) -> &'static str {
        match self {
            Self::Skills => "skills",
            Self::Groups => "groups",
            Self::ScheduledCallbacks => "scheduled-callbacks",
        }
    }

    /// The list's key in the answer, and the field that names an item (else its id).
    fn keys(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Skills => ("agentSkillAssignments", "skillName", "skillId"),
            Self::Groups => ("agentGroups", "groupName", "groupId"),
            Self::ScheduledCallbacks => ("callbacks", "callbackName", "callbackId"),
        }
    }
}

/// An answer the Admin API gave that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Admin API answered {status} with an unreadable body: {reason}")]
pub struct Unreadable {
    pub status: u16,
    pub reason: String,
    /// The raw body, shortened.
    pub body: String,
}

fn unreadable(resp: &HttpResponse, reason: impl Into<String>) -> Unreadable {
    Unreadable {
        status: resp.status,
        reason: reason.into(),
        body: crate::http::truncated(&resp.body, 512),
    }
}

/// The agents an answer to [`AdminApi::search`] lists (`204`: none).
pub fn read_agents(resp: &HttpResponse) -> Result<Vec<Agent>, Unreadable> {
    if resp.status == 204 || resp.body.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str::<AgentList>(&resp.body)
        .map(|l| l.agents)
        .map_err(|e| unreadable(resp, e.to_string()))
}

/// The names of what an answer to [`AdminApi::dependency`] lists (`204`: none). An item
/// without a name is named by its id.
pub fn read_dependency(kind: DependencyKind, resp: &HttpResponse) -> Result<Vec<String>, Unreadable> {
    if resp.status == 204 || resp.body.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(&resp.body).map_err(|e| unreadable(resp, e.to_string()))?;
    let (list, name, id) = kind.keys();
    let items = match value.get(list) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => return Ok(Vec::new()),
        Some(_) => return Err(unreadable(resp, format!("`{list}` is not a list"))),
    };
    Ok(items
        .iter()
        .map(|item| {
            let text = |v: &Value| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            item.get(name)
                .and_then(text)
                .or_else(|| item.get(id).and_then(text))
                .unwrap_or_else(|| "(unnamed)".to_string())
        })
        .collect())
}

/// Which agent a search found for the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "match")]
pub enum AgentMatch {
    One(Agent),
    None,
    /// Several agents are this person's by the rule: none is touched.
    Several {
        agent_ids: Vec<String>,
    },
}

/// The person's agent among `agents`: `userName` equal in any case, or `userID` equal to the
/// CXone account's id. An agent whose `userID` names another account is never theirs.
pub fn match_agent(agents: &[Agent], user_name: &str, cxone_id: Option<&str>) -> AgentMatch {
    let theirs: Vec<&Agent> = agents
        .iter()
        .filter(|a| {
            let same_account = match (a.user_id.as_deref(), cxone_id) {
                (Some(theirs), Some(ours)) => Some(theirs == ours),
                _ => None,
            };
            match same_account {
                Some(same) => same,
                None => !user_name.is_empty() && a.user_name.to_lowercase() == user_name.to_lowercase(),
            }
        })
        .collect();
    match theirs.as_slice() {
        [] => AgentMatch::None,
        [one] => AgentMatch::One((*one).clone()),
        several => AgentMatch::Several {
            agent_ids: several.iter().map(|a| a.agent_id.clone()).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn agent(id: u32, user_name: &str, user_id: Option<&str>) -> Agent {
        Agent {
            agent_id: id.to_string(),
            user_name: user_name.into(),
            user_id: user_id.map(str::to_string),
            is_active: true,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_the_persons_agent_matches() {
        let found = [
            agent(1, "jdoe@example.com.au", Some("u-2")),
            agent(2, "JDoe@Example.com", Some("u-1")),
            agent(3, "ajdoe@example.com", None),
        ];
        assert_eq!(
            match_agent(&found, "jdoe@example.com", Some("u-1")),
            AgentMatch::One(found[1].clone())
        );
        assert_eq!(
            match_agent(&found, "jdoe@example.com", None),
            AgentMatch::One(found[1].clone()),
            "by userName, in any case"
        );
        // The same userName on another account is not theirs.
        let recycled = [agent(4, "jdoe@example.com", Some("u-9"))];
        assert_eq!(
            match_agent(&recycled, "jdoe@example.com", Some("u-1")),
            AgentMatch::None
        );
        let twice = [agent(5, "jdoe@example.com", None), agent(6, "JDOE@example.com", None)];
        assert_eq!(
            match_agent(&twice, "jdoe@example.com", None),
            AgentMatch::Several {
                agent_ids: vec!["5".into(), "6".into()]
            }
        );
        assert_eq!(match_agent(&[], "jdoe@example.com", None), AgentMatch::None);
        assert_eq!(
            match_agent(&found[2..], "", None),
            AgentMatch::None,
            "no name, no match"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn answers_are_read_leniently_and_none_is_204() {
        let body = r#"{"totalRecords":1,"agents":[{"agentId":123,"userName":"a@x.io","userID":"11e9-aa","isActive":false,"teamId":5}]}"#;
        let agents = read_agents(&HttpResponse::new(200, body)).unwrap();
        assert_eq!(
            agents,
            [Agent {
                agent_id: "123".into(),
                user_name: "a@x.io".into(),
                user_id: Some("11e9-aa".into()),
                is_active: false
            }]
        );
        assert_eq!(read_agents(&HttpResponse::new(204, "")).unwrap(), []);
        let err = read_agents(&HttpResponse::new(200, "<html>")).unwrap_err();
        assert_eq!((err.status, err.body.as_str()), (200, "<html>"), "the raw body is kept");
        let skills = r#"{"agentSkillAssignments":[{"skillId":11,"skillName":"Sales EN"},{"skillId":12}]}"#;
        assert_eq!(
            read_dependency(DependencyKind::Skills, &HttpResponse::new(200, skills)).unwrap(),
            ["Sales EN", "12"]
        );
        assert_eq!(
            read_dependency(DependencyKind::Groups, &HttpResponse::new(204, "")).unwrap(),
            Vec::<String>::new()
        );
        assert!(read_dependency(DependencyKind::Groups, &HttpResponse::new(200, r#"{"agentGroups":7}"#)).is_err());
    }

    /// NICE's published samples (tests/adminfix).
    #[wasm_bindgen_test(unsupported = test)]
    fn nices_samples_read() {
        let ok = |body: &str| HttpResponse::new(200, body);
        let agents = read_agents(&ok(include_str!("../../../tests/adminfix/samples/agents_search.json"))).unwrap();
        assert!(agents.len() >= 2, "{agents:?}");
        assert!(agents.iter().all(|a| !a.agent_id.is_empty() && a.user_id.is_some()));
        for (kind, file) in [
            (
                DependencyKind::Skills,
                include_str!("../../../tests/adminfix/samples/agent_skills.json"),
            ),
            (
                DependencyKind::Groups,
                include_str!("../../../tests/adminfix/samples/agent_groups.json"),
            ),
            (
                DependencyKind::ScheduledCallbacks,
                include_str!("../../../tests/adminfix/samples/agent_scheduled_callbacks.json"),
            ),
        ] {
            let names = read_dependency(kind, &ok(file)).unwrap();
            assert!(
                !names.is_empty() && !names.contains(&"(unnamed)".to_string()),
                "{kind:?}: {names:?}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn requests_escape_what_they_carry() {
        let api = AdminApi::new("https://api-na1.niceincontact.com/incontactapi/services/v31.0/");
        assert_eq!(
            api.search("a+b@x.io").url,
            "https://api-na1.niceincontact.com/incontactapi/services/v31.0/agents?searchString=a%2Bb%40x.io"
        );
        assert_eq!(
            api.logout("12/3").url,
            "https://api-na1.niceincontact.com/incontactapi/services/v31.0/agents/12%2F3/logout"
        );
        assert_eq!(
            api.dependency("9", DependencyKind::ScheduledCallbacks).describe(),
            "GET /incontactapi/services/v31.0/agents/9/scheduled-callbacks"
        );
    }
}
