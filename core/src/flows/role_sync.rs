//! Syncing one user's CXone role set in one atomic write.
//!
//! 1. Find the user as the lifecycle flow does ([`super::lookup`]): by `externalId eq`, then
//!    `userName eq`; a userName match counts only when the account has no externalId or the
//!    person's; several matches, another externalId or an answer that ignores its filter is a
//!    [`Action::Conflict`], and nothing is written.
//! 2. `GET /Users/{id}`: the full current resource and its version (the `ETag` header, else
//!    `meta.version`).
//! 3. When the user already holds the target: nothing is written ([`Action::Unchanged`]).
//!    Otherwise one write, with `If-Match: <version>` when CXone gave one:
//!    - [`RoleWrite::Put`]: `PUT /Users/{id}` with the current resource, only the role target
//!      changed ([`replace_payload`]: `meta` and the read-only `groups` left out, every other
//!      attribute kept as read);
//!    - [`RoleWrite::Patch`]: `PATCH /Users/{id}` with one operation, `replace` of the target
//!      (`remove` when no role is left).
//!
//!    Given a team ([`RoleSyncFlow::with_team`]), the same write also puts the person in it
//!    when the account holds another team `value` (the PATCH then carries the `replace` of the
//!    team, alone when the roles already match); the team alone differing is a write too.
//!
//!    A 412 (the user changed since the read) reads the user again and writes once more; a
//!    second 412 is an error.
//!
//! A user no lookup finds is an error too ([`FlowError::Rejected`] with the lookup's 200 and
//! a detail saying so): roles are not written to an account that does not exist.

use super::exchange::Exchange;
use super::lookup::{self, By, Conflict, Found};
use super::{Action, FlowError};
use crate::event::Lookup;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::policy::TargetWrite;
use crate::profile::Capabilities;
use crate::retry::RetryPolicy;
use crate::scim::attr_path::{set_path, text_of, AttrPath};
use crate::scim::build::{replace_payload, team_patch, DesiredUser, TeamRef};
use crate::scim::{filter, PatchOp, PatchOperation, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the role set is written (`ROLE_WRITE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleWrite {
    /// `PUT /Users/{id}`: the whole resource as read, the role target changed.
    #[default]
    Put,
    /// `PATCH /Users/{id}`: one `replace` (or `remove`) of the role target.
    Patch,
}

impl RoleWrite {
    /// `put` or `patch`, in any case, surrounding blanks ignored.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("put") => Some(Self::Put),
            t if t.eq_ignore_ascii_case("patch") => Some(Self::Patch),
            _ => None,
        }
    }
}

/// What a role sync did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleSynced {
    /// The CXone id of the user; `None` on a conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The values CXone held in the role target when last read (on a conflict: none, the
    /// account is not this person's).
    pub roles_before: Vec<String>,
    /// The values written; when unchanged, those CXone holds; on a conflict, those that were
    /// to be written (nothing was).
    pub roles_after: Vec<String>,
    /// [`Action::Updated`], [`Action::Unchanged`] or [`Action::Conflict`].
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
    /// The body of the write that succeeded (PUT resource or PatchOp), for the audit hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// A 412 answered the first write, and the user was read and written again.
    pub retried_after_412: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Find(By),
    Read {
        id: String,
    },
    Write {
        id: String,
        before: Vec<String>,
        body: Value,
    },
}

#[derive(Debug, Clone)]
pub struct RoleSyncFlow {
    base_url: String,
    caps: Capabilities,
    lookup: Lookup,
    target: TargetWrite,
    write: RoleWrite,
    /// The team the person should be in, written beside the roles when it differs.
    team: Option<TeamRef>,
    phase: Phase,
    exchange: Exchange,
    /// A 412 was answered once; the next one ends the flow.
    retried: bool,
    done: Option<Result<RoleSynced, FlowError>>,
}

impl RoleSyncFlow {
    /// `base_url` is CXone's SCIM root, `/scim/v2` included; `target` is what the role target
    /// should hold ([`crate::policy::RoleTarget::write`] of the verdict's roles). `seed` drives
    /// retry jitter.
    pub fn new(
        base_url: &str,
        caps: Capabilities,
        lookup: Lookup,
        target: TargetWrite,
        write: RoleWrite,
        retry: RetryPolicy,
        seed: u64,
    ) -> Self {
        let mut flow = Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            phase: Phase::Find(By::UserName),
            caps,
            lookup,
            target,
            write,
            team: None,
            exchange: Exchange::new(retry, seed),
            retried: false,
            done: None,
        };
        if flow.lookup.external_id.is_none() && flow.lookup.user_name.is_none() {
            flow.finish(Err(FlowError::Ambiguous(
                "role sync without an externalId or a userName to find the user by".into(),
            )));
        } else if !lookup::findable(&flow.lookup, &flow.caps) {
            flow.finish(Err(lookup::unfindable(&flow.lookup)));
        } else {
            flow.find_next(None);
        }
        flow
    }

    /// Puts the person in `team` too ([`crate::policy::RolePolicy::team_for`] of their groups):
    /// written in the same request when the account holds another team `value`; `None`
    /// leaves the team as it is.
    pub fn with_team(mut self, team: Option<TeamRef>) -> Self {
        self.team = team;
        self
    }

    fn go(&mut self, phase: Phase, req: HttpRequest) {
        self.phase = phase;
        self.exchange.start(req);
    }

    fn finish(&mut self, result: Result<RoleSynced, FlowError>) {
        self.done = Some(result);
    }

    /// The lookup after `after` (the first for `None`); `false` when there is none left.
    fn find_next(&mut self, after: Option<By>) -> bool {
        let Some(by) = lookup::next_by(&self.lookup, &self.caps, after) else {
            return false;
        };
        match lookup::request(&self.base_url, &self.lookup, by) {
            Ok(Some(req)) => self.go(Phase::Find(by), req),
            Ok(None) => return self.find_next(Some(by)),
            Err(e) => self.finish(Err(e)),
        }
        true
    }

    fn read(&mut self, id: String) {
        let req = HttpRequest::scim(Method::Get, filter::user_url(&self.base_url, &id));
        self.go(Phase::Read { id }, req);
    }

    /// The values the target should hold, in order.
    fn target_values(&self) -> Vec<String> {
        match &self.target {
            TargetWrite::Roles(roles) => roles.iter().map(|r| r.value.clone()).collect(),
            TargetWrite::Single(attribute) => attribute.wanted().map(str::to_string).into_iter().collect(),
        }
    }

    /// The values `user` holds in the target.
    fn current_values(&self, user: &User, resource: &Value) -> Vec<String> {
        match &self.target {
            TargetWrite::Roles(_) => user.roles.iter().map(|r| r.value.clone()).collect(),
            TargetWrite::Single(attribute) => text_of(resource, &attribute.path).into_iter().collect(),
        }
    }

    fn not_found(&self, status: u16) -> FlowError {
        let mut by = Vec::new();
        if let Some(ext) = &self.lookup.external_id {
            by.push(format!("externalId {ext:?}"));
        }
        if let Some(name) = &self.lookup.user_name {
            by.push(format!("userName {name:?}"));
        }
        FlowError::Rejected {
            request: self.exchange.describe(),
            status,
            scim_type: None,
            detail: Some(format!("no CXone user has {}; roles not written", by.join(" or "))),
        }
    }

    fn on_found(&mut self, by: By, found: Found, status: u16) {
        match found {
            Found::None => {
                if !self.find_next(Some(by)) {
                    self.finish(Err(self.not_found(status)));
                }
            }
            Found::Conflict(conflict) => self.conflicted(conflict),
            Found::One(user) => match lookup::id_of(&user) {
                Ok(id) => self.read(id),
                Err(e) => self.finish(Err(e)),
            },
        }
    }

    /// Nothing written: the account found (or read) may not be this person's.
    fn conflicted(&mut self, conflict: Conflict) {
        self.finish(Ok(RoleSynced {
            id: None,
            roles_before: Vec::new(),
            roles_after: self.target_values(),
            action: Action::Conflict,
            conflict: Some(conflict),
            payload: None,
            retried_after_412: self.retried,
        }))
    }

    /// The current resource is read: done when it already holds the target, else write.
    fn on_read(&mut self, id: String, resp: &HttpResponse) {
        let parsed = serde_json::from_str::<User>(&resp.body).and_then(|user| {
            let resource = serde_json::to_value(&user)?;
            Ok((user, resource))
        });
        let (user, resource) = match parsed {
            Ok(read) => read,
            Err(e) => {
                let err = FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body);
                return self.finish(Err(err));
            }
        };
        // Read again after a 412, or answered for another id: it must still be this person's.
        if let Some(reason) = lookup::still_theirs(&self.lookup, &id, &user) {
            return self.conflicted(Conflict {
                reason,
                filter: format!("id eq {id:?}"),
                accounts: vec![user],
            });
        }
        let version = resp
            .header("etag")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(|| user.meta.as_ref().and_then(|m| m.version.clone()));
        let before = self.current_values(&user, &resource);
        let after = self.target_values();
        let team = self.team.as_ref().and_then(|t| team_patch(&user, t));
        let roles_differ = !same_values(&before, &after);
        if !roles_differ && team.is_none() {
            return self.finish(Ok(RoleSynced {
                id: Some(id),
                roles_after: before.clone(),
                roles_before: before,
                action: Action::Unchanged,
                conflict: None,
                payload: None,
                retried_after_412: self.retried,
            }));
        }
        let (method, body) = match self.write {
            RoleWrite::Put => (Method::Put, self.put_body(&user)),
            RoleWrite::Patch => (Method::Patch, self.patch_body(roles_differ, team)),
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => return self.finish(Err(e)),
        };
        let mut req = HttpRequest::scim_json(method, filter::user_url(&self.base_url, &id), &body);
        if let Some(version) = version {
            req.set_header("If-Match", version);
        }
        self.go(Phase::Write { id, before, body }, req);
    }

    /// The PUT body: the current resource with only the role target (and the team, when one is
    /// given and differs) changed.
    fn put_body(&self, current: &User) -> Result<Value, FlowError> {
        let keep = DesiredUser {
            user_name: current.user_name.clone(),
            roles: match &self.target {
                TargetWrite::Roles(roles) => Some(roles.clone()),
                TargetWrite::Single(_) => None,
            },
            team: self.team.clone(),
            ..DesiredUser::default()
        };
        let mut body = serde_json::to_value(replace_payload(current, &keep))
            .map_err(|e| FlowError::Ambiguous(format!("the PUT body could not be built: {e}")))?;
        match &self.target {
            // Written out when empty: a PUT that leaves `roles` out need not clear it.
            TargetWrite::Roles(roles) if roles.is_empty() => {
                if let Some(map) = body.as_object_mut() {
                    map.insert("roles".into(), Value::Array(Vec::new()));
                }
            }
            TargetWrite::Roles(_) => {}
            TargetWrite::Single(attribute) => {
                set_path(&mut body, &AttrPath::split(&attribute.path), attribute.wanted());
            }
        }
        Ok(body)
    }

    /// The PATCH body: the operation on the role target when the roles differ, then the team's
    /// (`team`, when it differs).
    fn patch_body(&self, roles_differ: bool, team: Option<PatchOperation>) -> Result<Value, FlowError> {
        let op = match &self.target {
            TargetWrite::Roles(roles) if roles.is_empty() => PatchOperation::remove("roles"),
            TargetWrite::Roles(roles) => PatchOperation::replace(
                "roles",
                serde_json::to_value(roles)
                    .map_err(|e| FlowError::Ambiguous(format!("the PATCH body could not be built: {e}")))?,
            ),
            TargetWrite::Single(attribute) => attribute.operation(),
        };
        let ops = if roles_differ { vec![op] } else { Vec::new() };
        serde_json::to_value(PatchOp::new(ops.into_iter().chain(team).collect()))
            .map_err(|e| FlowError::Ambiguous(format!("the PATCH body could not be built: {e}")))
    }

    fn handle(&mut self, resp: HttpResponse) {
        let status = resp.status;
        match (self.phase.clone(), status) {
            (Phase::Find(by), 200) | (Phase::Find(by @ By::Id), 404) => {
                match lookup::read_answer(&self.lookup, by, &resp, self.exchange.describe()) {
                    // Read by its id: this answer (and its version) is the read itself.
                    Ok(Found::One(user)) if by == By::Id => match lookup::id_of(&user) {
                        Ok(id) => self.on_read(id, &resp),
                        Err(e) => self.finish(Err(e)),
                    },
                    Ok(found) => self.on_found(by, found, status),
                    Err(e) => self.finish(Err(e)),
                }
            }
            (Phase::Read { id }, 200) => self.on_read(id, &resp),
            (Phase::Write { id, before, body }, 200 | 204) => {
                let after = self.target_values();
                self.finish(Ok(RoleSynced {
                    id: Some(id),
                    roles_before: before,
                    roles_after: after,
                    action: Action::Updated,
                    conflict: None,
                    payload: Some(body),
                    retried_after_412: self.retried,
                }))
            }
            // Changed since it was read: read it again and write once more.
            (Phase::Write { id, .. }, 412) if !self.retried => {
                self.retried = true;
                self.read(id);
            }
            _ => self.finish(Err(self.exchange.rejected(&resp))),
        }
    }
}

/// The same values, in any order, each counted once.
fn same_values(a: &[String], b: &[String]) -> bool {
    sorted_set(a) == sorted_set(b)
}

fn sorted_set(values: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = values.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

super::exchange::exchange_flow!(RoleSyncFlow => RoleSynced);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::ConflictReason;
    use crate::flows::{Flow, Step};
    use crate::scim::build::RoleAttribute;
    use crate::scim::{Role, PATCH_OP_SCHEMA, USER_SCHEMA};
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "http://cxone.test/scim/v2";
    const CXONE_EXT: &str = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User";
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn jane() -> Lookup {
        Lookup {
            user_name: Some("jdoe@example.com".into()),
            external_id: Some("e-1".into()),
            cxone_id: None,
        }
    }

    const RFC: Capabilities = crate::profile::Profile::Rfc7644.capabilities();

    fn role(v: &str) -> Role {
        Role {
            value: v.into(),
            display: Some(v.into()),
            ..Role::default()
        }
    }

    fn roles(values: &[&str]) -> TargetWrite {
        TargetWrite::Roles(values.iter().map(|v| role(v)).collect())
    }

    /// Jane as CXone holds her: roles A and B, attributes cxone-scim does not manage, read-only
    /// groups, and `meta.version`.
    fn current(version: u32, roles: &[&str], nick: &str) -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "id": "u1",
            "externalId": "e-1",
            "userName": "jdoe@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe", "honorificPrefix": "Dr."},
            "displayName": "Jane Doe",
            "nickName": nick,
            "title": "Team Lead",
            "emails": [{"value": "jdoe@example.com", "type": "work", "primary": true}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
            "active": true,
            "roles": roles.iter().map(|r| json!({"value": r, "display": r})).collect::<Vec<_>>(),
            "groups": [{"value": "g1", "display": "Tier 2"}],
            ENTERPRISE: {"department": "Support", "employeeNumber": "E-17"},
            "meta": {"resourceType": "User", "version": format!("W/\"{version}\""),
                     "location": "http://cxone.test/scim/v2/Users/u1"},
        })
    }

    fn listed(users: Value) -> HttpResponse {
        let total = users.as_array().map_or(0, Vec::len);
        HttpResponse::new(
            200,
            json!({"schemas": [crate::scim::LIST_RESPONSE_SCHEMA], "totalResults": total, "Resources": users})
                .to_string(),
        )
    }

    fn read(user: &Value) -> HttpResponse {
        let version = user["meta"]["version"].as_str().unwrap_or_default().to_string();
        HttpResponse::new(200, user.to_string()).with_header("ETag", &version)
    }

    fn flow(target: TargetWrite, write: RoleWrite) -> RoleSyncFlow {
        RoleSyncFlow::new(BASE, RFC, jane(), target, write, RetryPolicy::default(), 3)
    }

    /// Runs the flow against canned answers; every answer must be asked for.
    fn run(mut flow: RoleSyncFlow, answers: Vec<HttpResponse>) -> (Result<RoleSynced, FlowError>, Vec<HttpRequest>) {
        let given = answers.len();
        let mut answers = answers.into_iter();
        let mut sent = Vec::new();
        let mut now = 1_000;
        for _ in 0..50 {
            match flow.next_step(now) {
                Step::Send(req) => {
                    sent.push(req);
                    flow.on_response(answers.next().expect("an answer for every request"), now);
                }
                Step::SendAll(_) => panic!("this flow sends one request at a time"),
                Step::Wait { until } => now = until,
                Step::Done(out) => {
                    assert_eq!(sent.len(), given, "every canned answer is used: {:?}", described(&sent));
                    return (out, sent);
                }
            }
            now += 10;
        }
        panic!("the flow did not finish");
    }

    fn described(sent: &[HttpRequest]) -> Vec<String> {
        sent.iter().map(HttpRequest::describe).collect()
    }

    fn body(req: &HttpRequest) -> Value {
        serde_json::from_str(req.body.as_deref().unwrap_or("null")).unwrap()
    }

    fn found_by_external_id(user: &Value) -> HttpResponse {
        listed(json!([user]))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_put_writes_exactly_the_target_roles_and_keeps_everything_else() {
        let user = current(3, &["A", "B"], "JJ");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(200, "{}")],
        );
        assert_eq!(
            described(&sent),
            ["GET /scim/v2/Users", "GET /scim/v2/Users/u1", "PUT /scim/v2/Users/u1"]
        );
        assert_eq!(sent[0].url, format!("{BASE}/Users?filter=externalId%20eq%20%22e-1%22"));
        let put = &sent[2];
        assert_eq!(put.header_value("If-Match"), Some("W/\"3\""));
        assert_eq!(put.header_value("Content-Type"), Some("application/scim+json"));
        let sent_body = body(put);
        assert_eq!(sent_body["roles"], json!([{"value": "A", "display": "A"}]));
        // Everything else as read, but for meta and the read-only groups.
        let mut expected = user.clone();
        let map = expected.as_object_mut().unwrap();
        map.remove("meta");
        map.remove("groups");
        map.insert("roles".into(), json!([{"value": "A", "display": "A"}]));
        assert_eq!(sent_body, expected);
        let out = out.unwrap();
        assert_eq!(
            out,
            RoleSynced {
                id: Some("u1".into()),
                roles_before: vec!["A".into(), "B".into()],
                roles_after: vec!["A".into()],
                action: Action::Updated,
                conflict: None,
                payload: Some(sent_body),
                retried_after_412: false,
            }
        );
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["rolesBefore"], json!(["A", "B"]));
        assert_eq!(v["retriedAfter412"], false);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_version_comes_from_meta_when_there_is_no_etag_header_and_none_means_no_if_match() {
        let user = current(5, &["B"], "JJ");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                found_by_external_id(&user),
                HttpResponse::new(200, user.to_string()),
                HttpResponse::new(204, ""),
            ],
        );
        assert_eq!(sent[2].header_value("if-match"), Some("W/\"5\""));
        assert_eq!(out.unwrap().action, Action::Updated);
        let mut unversioned = user.clone();
        unversioned["meta"].as_object_mut().unwrap().remove("version");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                found_by_external_id(&user),
                HttpResponse::new(200, unversioned.to_string()),
                HttpResponse::new(200, "{}"),
            ],
        );
        assert_eq!(sent[2].header_value("If-Match"), None);
        assert_eq!(out.unwrap().roles_after, ["A"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_412_reads_again_and_puts_once_more_over_the_new_state() {
        let v3 = current(3, &["A", "B"], "JJ");
        let v4 = current(4, &["A", "B"], "Janie");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                found_by_external_id(&v3),
                read(&v3),
                HttpResponse::new(412, r#"{"status":"412","detail":"version mismatch"}"#),
                read(&v4),
                HttpResponse::new(200, "{}"),
            ],
        );
        assert_eq!(
            described(&sent),
            [
                "GET /scim/v2/Users",
                "GET /scim/v2/Users/u1",
                "PUT /scim/v2/Users/u1",
                "GET /scim/v2/Users/u1",
                "PUT /scim/v2/Users/u1"
            ]
        );
        assert_eq!(sent[2].header_value("If-Match"), Some("W/\"3\""));
        assert_eq!(sent[4].header_value("If-Match"), Some("W/\"4\""));
        let second = body(&sent[4]);
        assert_eq!(second["nickName"], "Janie", "the concurrent change is kept");
        assert_eq!(second["roles"], json!([{"value": "A", "display": "A"}]));
        let out = out.unwrap();
        assert!(out.retried_after_412);
        assert_eq!(out.payload, Some(second));
        assert_eq!(out.action, Action::Updated);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_account_that_changed_hands_before_the_write_is_a_conflict_not_written() {
        let v3 = current(3, &["A", "B"], "JJ");
        let mut reassigned = current(4, &["A", "B"], "JJ");
        reassigned["externalId"] = json!("e-someone-else");
        let mut renamed_unclaimed = current(4, &["A", "B"], "JJ");
        renamed_unclaimed.as_object_mut().unwrap().remove("externalId");
        renamed_unclaimed["userName"] = json!("other@example.com");
        let mut other_id = current(3, &["A", "B"], "JJ");
        other_id["id"] = json!("u2");
        for (case, changed, reason) in [
            (
                "another externalId after a 412",
                &reassigned,
                ConflictReason::OtherExternalId,
            ),
            (
                "renamed, no externalId, after a 412",
                &renamed_unclaimed,
                ConflictReason::OtherExternalId,
            ),
        ] {
            let (out, sent) = run(
                flow(roles(&["A"]), RoleWrite::Put),
                vec![
                    found_by_external_id(&v3),
                    read(&v3),
                    HttpResponse::new(412, r#"{"status":"412","detail":"version mismatch"}"#),
                    read(changed),
                ],
            );
            let out = out.unwrap();
            assert_eq!(
                (out.action, out.conflict.map(|c| c.reason)),
                (Action::Conflict, Some(reason)),
                "{case}"
            );
            assert_eq!(
                sent.iter().filter(|r| r.method == Method::Put).count(),
                1,
                "{case}: no second PUT"
            );
        }
        // A read answered with another account: nothing written at all.
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![found_by_external_id(&v3), read(&other_id)],
        );
        assert_eq!(
            out.unwrap().conflict.map(|c| c.reason),
            Some(ConflictReason::FilterIgnored)
        );
        assert!(sent.iter().all(|r| r.method == Method::Get));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_second_412_is_an_error() {
        let v3 = current(3, &["A", "B"], "JJ");
        let v4 = current(4, &["A", "B"], "Janie");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                found_by_external_id(&v3),
                read(&v3),
                HttpResponse::new(412, ""),
                read(&v4),
                HttpResponse::new(412, r#"{"status":"412","detail":"version mismatch"}"#),
            ],
        );
        let err = out.unwrap_err();
        assert_eq!(
            err,
            FlowError::Rejected {
                request: "PUT /scim/v2/Users/u1".into(),
                status: 412,
                scim_type: None,
                detail: Some("version mismatch".into()),
            }
        );
        assert!(err.is_permanent());
        assert_eq!(sent.iter().filter(|r| r.method == Method::Put).count(), 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn after_a_412_the_new_state_may_already_hold_the_target() {
        let v3 = current(3, &["A", "B"], "JJ");
        let v4 = current(4, &["A"], "JJ");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                found_by_external_id(&v3),
                read(&v3),
                HttpResponse::new(412, ""),
                read(&v4),
            ],
        );
        assert_eq!(
            sent.last().map(HttpRequest::describe).as_deref(),
            Some("GET /scim/v2/Users/u1")
        );
        let out = out.unwrap();
        assert_eq!((out.action, out.retried_after_412), (Action::Unchanged, true));
        assert_eq!(out.payload, None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn roles_already_in_place_are_not_written() {
        // Same values in another order, with other displays: nothing to write.
        let user = current(3, &["B", "A"], "JJ");
        let (out, sent) = run(
            flow(
                TargetWrite::Roles(vec![
                    role("A"),
                    Role {
                        value: "B".into(),
                        ..Role::default()
                    },
                ]),
                RoleWrite::Put,
            ),
            vec![found_by_external_id(&user), read(&user)],
        );
        assert!(sent.iter().all(|r| r.method == Method::Get), "{:?}", described(&sent));
        let out = out.unwrap();
        assert_eq!(
            (
                out.action,
                out.roles_before.clone(),
                out.roles_after.clone(),
                out.payload
            ),
            (
                Action::Unchanged,
                vec!["B".to_string(), "A".to_string()],
                vec!["B".to_string(), "A".to_string()],
                None
            )
        );
        assert_eq!(out.id.as_deref(), Some("u1"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_user_name_match_with_another_external_id_is_a_conflict_and_nothing_is_written() {
        let mut other = current(3, &["A"], "JJ");
        other["externalId"] = json!("e-other");
        let (out, sent) = run(
            flow(roles(&["Admin"]), RoleWrite::Put),
            vec![listed(json!([])), listed(json!([other]))],
        );
        assert_eq!(
            sent[1].url,
            format!("{BASE}/Users?filter=userName%20eq%20%22jdoe%40example.com%22")
        );
        assert!(sent.iter().all(|r| r.method == Method::Get));
        let out = out.unwrap();
        assert_eq!(
            (out.action, out.id.clone(), out.payload.clone()),
            (Action::Conflict, None, None)
        );
        let c = out.conflict.unwrap();
        assert_eq!(c.reason, ConflictReason::OtherExternalId);
        assert_eq!(c.accounts[0].external_id.as_deref(), Some("e-other"));
        assert_eq!(out.roles_after, ["Admin"]);
        // Two accounts with the externalId: a conflict found by the first lookup.
        let mut twin = current(3, &["A"], "JJ");
        twin["id"] = json!("u2");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Patch),
            vec![listed(json!([current(3, &["B"], "JJ"), twin]))],
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(out.unwrap().conflict.unwrap().reason, ConflictReason::SeveralMatches);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_account_without_external_id_is_found_by_user_name() {
        let mut user = current(3, &["B"], "JJ");
        user.as_object_mut().unwrap().remove("externalId");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                listed(json!([])),
                listed(json!([user])),
                read(&user),
                HttpResponse::new(200, "{}"),
            ],
        );
        assert_eq!(sent[3].method, Method::Put);
        assert_eq!(body(&sent[3]).get("externalId"), None, "only roles change");
        assert_eq!(out.unwrap().action, Action::Updated);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_user_nobody_finds_is_an_error_without_a_write() {
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![listed(json!([])), listed(json!([]))],
        );
        assert_eq!(sent.len(), 2);
        let err = out.unwrap_err();
        assert_eq!(
            err.to_string(),
            "CXone rejected GET /scim/v2/Users with 200: no CXone user has externalId \"e-1\" or userName \
             \"jdoe@example.com\"; roles not written"
        );
        let mut nothing = RoleSyncFlow::new(
            BASE,
            RFC,
            Lookup::default(),
            roles(&["A"]),
            RoleWrite::Put,
            RetryPolicy::default(),
            1,
        );
        assert!(matches!(nothing.next_step(0), Step::Done(Err(FlowError::Ambiguous(_)))));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_unusable_id_in_the_lookup_answer_is_neither_read_nor_written() {
        for id in ["", ".", "..", "../Groups", "a/b", "a?x=1", "a#f", "%2e%2e", "a\u{0}b"] {
            for write in [RoleWrite::Put, RoleWrite::Patch] {
                let mut user = current(1, &["A"], "JJ");
                user["id"] = json!(id);
                let (out, sent) = run(flow(roles(&["B"]), write), vec![found_by_external_id(&user)]);
                assert_eq!(described(&sent), ["GET /scim/v2/Users"], "{id:?}");
                assert!(matches!(out, Err(FlowError::UnusableId(_))), "{id:?}: {out:?}");
            }
        }
        let mut user = current(1, &["A"], "JJ");
        user["id"] = json!("x".repeat(257));
        let (out, _) = run(flow(roles(&["B"]), RoleWrite::Put), vec![found_by_external_id(&user)]);
        assert!(matches!(out, Err(FlowError::UnusableId(_))), "{out:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn patch_mode_sends_one_replace_or_a_remove() {
        let user = current(3, &["A", "B"], "JJ");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Patch),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(204, "")],
        );
        let patch = &sent[2];
        assert_eq!(patch.describe(), "PATCH /scim/v2/Users/u1");
        assert_eq!(patch.header_value("If-Match"), Some("W/\"3\""));
        let expected = json!({"schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "replace", "path": "roles", "value": [{"value": "A", "display": "A"}]}]});
        assert_eq!(body(patch), expected);
        assert_eq!(out.unwrap().payload, Some(expected));
        let (out, sent) = run(
            flow(roles(&[]), RoleWrite::Patch),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(200, "{}")],
        );
        assert_eq!(
            body(&sent[2]),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "remove", "path": "roles"}]})
        );
        assert_eq!(out.unwrap().roles_after, Vec::<String>::new());
        // Emptied by PUT: `roles` written out as an empty list.
        let (_, sent) = run(
            flow(roles(&[]), RoleWrite::Put),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(200, "{}")],
        );
        assert_eq!(body(&sent[2])["roles"], json!([]));
    }

    const NICE: &str = crate::scim::user::NICE_USER_SCHEMA;
    const TEAM_PATH: &str = crate::scim::build::TEAM_PATH;

    /// Jane in team `value`, her roles A and B.
    fn teamed(value: &str) -> Value {
        let mut user = current(3, &["A", "B"], "JJ");
        user["schemas"] = json!([USER_SCHEMA, ENTERPRISE, NICE]);
        user[NICE] = json!({"team": {"value": value, "display": "Support"}, "skills": ["fr"]});
        user
    }

    fn team(value: &str) -> Option<TeamRef> {
        Some(TeamRef {
            value: value.into(),
            display: Some("Billing".into()),
        })
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_team_is_written_beside_the_roles_only_when_it_differs() {
        let user = teamed("t-1");
        let done = || HttpResponse::new(200, "{}");
        // Roles and team both in place: nothing written.
        let (out, sent) = run(
            flow(roles(&["A", "B"]), RoleWrite::Patch).with_team(team("T-1")),
            vec![found_by_external_id(&user), read(&user)],
        );
        assert_eq!(out.unwrap().action, Action::Unchanged);
        assert!(sent.iter().all(|r| r.method == Method::Get));
        // Only the team differs: a PATCH of the team alone.
        let (out, sent) = run(
            flow(roles(&["A", "B"]), RoleWrite::Patch).with_team(team("t-2")),
            vec![found_by_external_id(&user), read(&user), done()],
        );
        assert_eq!(out.unwrap().action, Action::Updated);
        assert_eq!(
            body(&sent[2]),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [
                {"op": "replace", "path": TEAM_PATH, "value": {"value": "t-2", "display": "Billing"}}]})
        );
        // Both differ: the roles, then the team, in one PATCH.
        let (_, sent) = run(
            flow(roles(&["A"]), RoleWrite::Patch).with_team(team("t-2")),
            vec![found_by_external_id(&user), read(&user), done()],
        );
        let ops: Vec<Value> = body(&sent[2])["Operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["path"].clone())
            .collect();
        assert_eq!(ops, [json!("roles"), json!(TEAM_PATH)]);
        // Roles differ, team in place (or none given): no team operation.
        for given in [team("t-1"), None] {
            let (_, sent) = run(
                flow(roles(&["A"]), RoleWrite::Patch).with_team(given),
                vec![found_by_external_id(&user), read(&user), done()],
            );
            assert_eq!(body(&sent[2])["Operations"].as_array().map(Vec::len), Some(1));
            assert_eq!(body(&sent[2])["Operations"][0]["path"], "roles");
        }
        // By PUT: the team set in the resource, the extension's other attributes kept.
        let (_, sent) = run(
            flow(roles(&["A", "B"]), RoleWrite::Put).with_team(team("t-2")),
            vec![found_by_external_id(&user), read(&user), done()],
        );
        let put = body(&sent[2]);
        assert_eq!(
            put[NICE],
            json!({"team": {"value": "t-2", "display": "Billing"}, "skills": ["fr"]})
        );
        assert_eq!(put["roles"], user["roles"]);
        // An account without a team gets one.
        let bare = current(3, &["A"], "JJ");
        let (_, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put).with_team(team("t-2")),
            vec![found_by_external_id(&bare), read(&bare), done()],
        );
        let put = body(&sent[2]);
        assert_eq!(put["schemas"], json!([USER_SCHEMA, ENTERPRISE, NICE]));
        assert_eq!(put[NICE]["team"]["value"], "t-2");
    }

    fn single(path: &str, value: Option<&str>) -> TargetWrite {
        TargetWrite::Single(RoleAttribute {
            path: path.into(),
            value: value.map(str::to_string),
        })
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_single_valued_target_is_set_in_its_extension_and_roles_left_alone() {
        let primary = format!("{CXONE_EXT}:primaryRole");
        let user = current(3, &["A", "B"], "JJ");
        let (out, sent) = run(
            flow(single(&primary, Some("Supervisor")), RoleWrite::Put),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(200, "{}")],
        );
        let put = body(&sent[2]);
        assert_eq!(put[CXONE_EXT], json!({"primaryRole": "Supervisor"}));
        assert_eq!(put["schemas"], json!([USER_SCHEMA, ENTERPRISE, CXONE_EXT]));
        assert_eq!(put["roles"], user["roles"], "roles are not the target");
        assert_eq!(put[ENTERPRISE], user[ENTERPRISE]);
        let out = out.unwrap();
        assert_eq!(
            (out.roles_before.len(), out.roles_after.clone()),
            (0, vec!["Supervisor".to_string()])
        );

        // Held already (the path in another case): nothing written.
        let mut holding = user.clone();
        holding[CXONE_EXT] = json!({"primaryRole": "Supervisor"});
        let (out, sent) = run(
            flow(
                single(&primary.to_uppercase().replace("URN:", "urn:"), Some("Supervisor")),
                RoleWrite::Put,
            ),
            vec![found_by_external_id(&holding), read(&holding)],
        );
        assert_eq!(sent.len(), 2);
        assert_eq!(out.unwrap().action, Action::Unchanged);

        // Cleared: the attribute goes, and the extension and its URN with it.
        let (_, sent) = run(
            flow(single(&primary, None), RoleWrite::Put),
            vec![
                found_by_external_id(&holding),
                read(&holding),
                HttpResponse::new(200, "{}"),
            ],
        );
        let put = body(&sent[2]);
        assert_eq!(put.get(CXONE_EXT), None);
        assert_eq!(put["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
        let (_, sent) = run(
            flow(single(&primary, None), RoleWrite::Patch),
            vec![
                found_by_external_id(&holding),
                read(&holding),
                HttpResponse::new(204, ""),
            ],
        );
        assert_eq!(body(&sent[2])["Operations"], json!([{"op": "remove", "path": primary}]));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn core_and_complex_single_valued_targets() {
        let user = current(3, &["A"], "JJ");
        // `title` of the core schema, by its short or its full name.
        for path in ["title", "urn:ietf:params:scim:schemas:core:2.0:User:title"] {
            let (out, sent) = run(
                flow(single(path, Some("Supervisor")), RoleWrite::Put),
                vec![found_by_external_id(&user), read(&user), HttpResponse::new(200, "{}")],
            );
            let put = body(&sent[2]);
            assert_eq!(put["title"], "Supervisor", "{path}");
            assert_eq!(put["schemas"], user["schemas"], "{path}");
            assert_eq!(out.unwrap().roles_before, ["Team Lead"], "{path}");
        }
        let (_, sent) = run(
            flow(single("name.honorificPrefix", Some("Agent")), RoleWrite::Put),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(200, "{}")],
        );
        assert_eq!(
            body(&sent[2])["name"],
            json!({"givenName": "Jane", "familyName": "Doe", "honorificPrefix": "Agent"})
        );
        let (_, sent) = run(
            flow(
                single(&format!("{ENTERPRISE}:department"), Some("Agent")),
                RoleWrite::Patch,
            ),
            vec![found_by_external_id(&user), read(&user), HttpResponse::new(204, "")],
        );
        assert_eq!(
            body(&sent[2])["Operations"],
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Agent"}])
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn retryable_answers_are_retried_and_unreadable_reads_kept() {
        let user = current(3, &["B"], "JJ");
        let (out, sent) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![
                found_by_external_id(&user),
                HttpResponse::new(503, ""),
                read(&user),
                HttpResponse::new(429, "").with_header("Retry-After", "1"),
                HttpResponse::new(200, "{}"),
            ],
        );
        assert_eq!(out.unwrap().action, Action::Updated);
        assert_eq!(sent[3].body, sent[4].body, "the same PUT again");
        let (out, _) = run(
            flow(roles(&["A"]), RoleWrite::Put),
            vec![found_by_external_id(&user), HttpResponse::new(200, "<html>")],
        );
        assert!(matches!(out, Err(FlowError::Unreadable { status: 200, .. })), "{out:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn role_write_reads_put_or_patch() {
        assert_eq!(RoleWrite::default(), RoleWrite::Put);
        assert_eq!(RoleWrite::parse(" PATCH "), Some(RoleWrite::Patch));
        assert_eq!(RoleWrite::parse("put"), Some(RoleWrite::Put));
        assert_eq!(RoleWrite::parse("post"), None);
        assert_eq!(serde_json::to_value(RoleWrite::Patch).unwrap(), "patch");
    }
}
