//! Applying one lifecycle [`Command`] to CXone.
//!
//! - upsert, create first: `POST /Users`; 409 → find by `userName eq` → minimal PATCH.
//! - upsert, find first: find by `externalId eq`, then `userName eq`; found → minimal PATCH
//!   (nothing when already in state); none → `POST /Users`.
//! - disable: find → `PATCH active=false` (nothing when already inactive).
//! - delete: find → `DELETE /Users/{id}`; 404 or no such user = already gone.
//!
//! Matching never takes over someone else's account: every lookup answer is checked against
//! the filter it answers; a `userName` match counts only when the account has no externalId or
//! the event's; anything else (another externalId, several matches, an answer that ignores the
//! filter) ends in [`Action::Conflict`] with nothing written.

use super::exchange::Exchange;
use super::lookup::{self, By, Conflict, Found};
use super::{Flow, FlowError, Step};
use crate::event::{Command, Lookup};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::policy::RoleTarget;
use crate::retry::RetryPolicy;
use crate::scim::build::{create_payload, disable_patch, patch_to, role_values_at, DesiredUser};
use crate::scim::{filter, User};
use crate::UnixMillis;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    Disabled,
    Deleted,
    Unchanged,
    /// Older than an event already applied for the same person: acknowledged, not applied.
    Stale,
    /// Not applied because of what the ledger knows (the person was deleted).
    Skipped,
    /// The account CXone has is not provably this person's: nothing written, kept for review.
    Conflict,
    /// An admin cleared the person's ledger marks (nothing written to CXone).
    MarksReset,
}

/// Why an action needed no change, or why it was already done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    AlreadyDeprovisioned,
    AlreadyDisabled,
    NotFound,
    /// The person was deleted; only a newer explicit create brings them back.
    Deleted,
}

/// What was done in CXone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
}

impl Applied {
    pub fn new(action: Action, id: Option<String>) -> Self {
        Self {
            action,
            id,
            note: None,
            conflict: None,
        }
    }

    pub fn noted(action: Action, id: Option<String>, note: Note) -> Self {
        Self {
            note: Some(note),
            ..Self::new(action, id)
        }
    }

    fn conflict(conflict: Conflict) -> Self {
        Self {
            conflict: Some(conflict),
            ..Self::new(Action::Conflict, None)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Create,
    Find(By),
    Patch { id: String, action: Action },
    Delete { id: String },
}

#[derive(Debug, Clone)]
pub struct LifecycleFlow {
    base_url: String,
    command: Command,
    phase: Phase,
    exchange: Exchange,
    /// 409s seen on create; a second one means CXone's data contradicts itself.
    conflicts: u8,
    /// The account found (none before a create), for the audit trail's roles "before".
    found: Option<Box<User>>,
    done: Option<Result<Applied, FlowError>>,
}

impl LifecycleFlow {
    /// `base_url` is CXone's SCIM root, `/scim/v2` included. `seed` drives retry jitter.
    pub fn new(base_url: &str, command: Command, retry: RetryPolicy, seed: u64) -> Self {
        let mut flow = Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            phase: Phase::Create,
            exchange: Exchange::new(retry, seed),
            conflicts: 0,
            found: None,
            done: None,
            command,
        };
        match &flow.command {
            Command::Upsert { create_first: true, .. } => flow.create(),
            _ => flow.find(flow.first_lookup()),
        }
        flow
    }

    fn lookup(&self) -> Lookup {
        match &self.command {
            Command::Upsert { desired, .. } => Lookup {
                user_name: Some(desired.user_name.clone()),
                external_id: desired.external_id.clone(),
            },
            Command::Disable { lookup } | Command::Delete { lookup } => lookup.clone(),
        }
    }

    fn first_lookup(&self) -> By {
        lookup::first_by(&self.lookup())
    }

    fn desired(&self) -> Option<&DesiredUser> {
        match &self.command {
            Command::Upsert { desired, .. } => Some(desired.as_ref()),
            _ => None,
        }
    }

    fn go(&mut self, phase: Phase, req: HttpRequest) {
        self.phase = phase;
        self.exchange.start(req);
    }

    fn finish(&mut self, result: Result<Applied, FlowError>) {
        self.done = Some(result);
    }

    /// The role values the account the flow found held where `target` keeps them (`None` when
    /// it found none), for the audit trail's "before".
    pub fn roles_before(&self, target: &RoleTarget) -> Option<Vec<String>> {
        Some(role_values_at(self.found.as_deref()?, target.single_path()))
    }

    fn create(&mut self) {
        match self.desired() {
            Some(d) => {
                let req = HttpRequest::scim_json(Method::Post, format!("{}/Users", self.base_url), &create_payload(d));
                self.go(Phase::Create, req);
            }
            None => self.finish(Err(FlowError::Ambiguous(
                "create requested without a target state".into(),
            ))),
        }
    }

    fn find(&mut self, by: By) {
        match lookup::request(&self.base_url, &self.lookup(), by) {
            Some(req) => self.go(Phase::Find(by), req),
            // A leaver known by externalId alone: not found by it means not in CXone.
            None => self.on_found(By::UserName, None),
        }
    }

    fn patch(&mut self, id: String, action: Action, body: &crate::scim::PatchOp) {
        let req = HttpRequest::scim_json(Method::Patch, filter::user_url(&self.base_url, &id), body);
        self.go(Phase::Patch { id, action }, req);
    }

    fn on_found(&mut self, by: By, found: Option<User>) {
        let Some(user) = found else {
            return match (by, &self.command) {
                (By::ExternalId, _) => self.find(By::UserName),
                (By::UserName, Command::Upsert { .. }) => self.create(),
                (By::UserName, Command::Disable { .. }) => {
                    self.finish(Ok(Applied::noted(Action::Unchanged, None, Note::NotFound)))
                }
                (By::UserName, Command::Delete { .. }) => {
                    self.finish(Ok(Applied::noted(Action::Deleted, None, Note::AlreadyDeprovisioned)))
                }
            };
        };
        self.found = Some(Box::new(user.clone()));
        let id = match lookup::id_of(&user) {
            Ok(id) => id,
            Err(e) => return self.finish(Err(e)),
        };
        match &self.command {
            Command::Upsert { desired, .. } => match patch_to(&user, desired) {
                Some(p) => {
                    let action = if user.is_active() && desired.active == Some(false) {
                        Action::Disabled
                    } else {
                        Action::Updated
                    };
                    self.patch(id, action, &p);
                }
                None => self.finish(Ok(Applied::new(Action::Unchanged, Some(id)))),
            },
            Command::Disable { .. } if !user.is_active() => {
                self.finish(Ok(Applied::noted(Action::Unchanged, Some(id), Note::AlreadyDisabled)))
            }
            Command::Disable { .. } => self.patch(id, Action::Disabled, &disable_patch()),
            Command::Delete { .. } => {
                let req = HttpRequest::scim(Method::Delete, filter::user_url(&self.base_url, &id));
                self.go(Phase::Delete { id }, req);
            }
        }
    }

    fn handle(&mut self, resp: HttpResponse) {
        let status = resp.status;
        match (self.phase.clone(), status) {
            (Phase::Create, 200 | 201) => match serde_json::from_str::<User>(&resp.body) {
                Ok(u) => self.finish(Ok(Applied::new(Action::Created, u.id))),
                Err(e) => self.finish(Err(FlowError::unreadable(
                    self.exchange.describe(),
                    status,
                    e,
                    &resp.body,
                ))),
            },
            // Someone holds the userName: the person's own account (externalId first), else an
            // account the userName rule lets us claim; never the userName holder alone.
            (Phase::Create, 409) if self.conflicts == 0 => {
                self.conflicts += 1;
                self.find(self.first_lookup());
            }
            (Phase::Find(by), 200) => match lookup::read_answer(&self.lookup(), by, &resp, self.exchange.describe()) {
                Ok(Found::None) => self.on_found(by, None),
                Ok(Found::One(user)) => self.on_found(by, Some(*user)),
                Ok(Found::Conflict(c)) => self.finish(Ok(Applied::conflict(c))),
                Err(e) => self.finish(Err(e)),
            },
            (Phase::Patch { id, action }, 200 | 204) => self.finish(Ok(Applied::new(action, Some(id)))),
            // Deleted between the lookup and the PATCH.
            (Phase::Patch { .. }, 404) => match self.command {
                Command::Upsert { .. } => self.create(),
                _ => self.finish(Ok(Applied::noted(Action::Unchanged, None, Note::NotFound))),
            },
            (Phase::Delete { id }, 200 | 204) => self.finish(Ok(Applied::new(Action::Deleted, Some(id)))),
            (Phase::Delete { id }, 404) => self.finish(Ok(Applied::noted(
                Action::Deleted,
                Some(id),
                Note::AlreadyDeprovisioned,
            ))),
            _ => self.finish(Err(self.exchange.rejected(&resp))),
        }
    }
}

impl Flow for LifecycleFlow {
    type Output = Result<Applied, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if let Some(done) = &self.done {
            return Step::Done(done.clone());
        }
        self.exchange
            .step(now)
            .unwrap_or_else(|| Step::Done(Err(FlowError::Ambiguous("no request to send".into()))))
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        if self.done.is_some() {
            return;
        }
        match self.exchange.filter(resp, now) {
            Ok(Some(resp)) => self.handle(resp),
            Ok(None) => {}
            Err(e) => self.finish(Err(e)),
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if self.done.is_some() {
            return;
        }
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.finish(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LifecycleEvent;
    use crate::flows::ConflictReason;
    use crate::policy::RolePolicy;
    use crate::testutil::{drive, Fault, SimServer};
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "http://cxone.test/scim/v2";

    fn command(json: &str) -> Command {
        let policy = RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap();
        LifecycleEvent::from_json(json.as_bytes())
            .unwrap()
            .command(&policy, &crate::policy::RoleTarget::Roles)
            .unwrap()
            .0
    }

    fn run(server: &mut SimServer, json: &str) -> Result<Applied, FlowError> {
        drive(
            &mut LifecycleFlow::new(BASE, command(json), RetryPolicy::default(), 7),
            server,
        )
        .0
    }

    const CREATE: &str = r#"{"operation":"create","userName":"jdoe@example.com","externalId":"e-1","firstName":"Jane","lastName":"Doe","groups":[{"displayName":"cxone-agent"}]}"#;

    #[wasm_bindgen_test(unsupported = test)]
    fn create_posts_once() {
        let mut s = SimServer::default();
        let out = run(&mut s, CREATE).unwrap();
        assert_eq!(out.action, Action::Created);
        assert_eq!(s.log(), ["POST /scim/v2/Users"]);
        let u = s.user(out.id.as_deref().unwrap());
        assert_eq!(u.roles[0].value, "Agent");
        assert_eq!(u.external_id.as_deref(), Some("e-1"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_single_valued_target_is_written_and_read_back_for_the_audit_trail() {
        let primary = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole";
        let target = RoleTarget::parse(primary).unwrap();
        let policy = RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap();
        let flow_for = |json: &str| {
            let event = LifecycleEvent::from_json(json.as_bytes()).unwrap();
            let (command, _) = event.command(&policy, &target).unwrap();
            LifecycleFlow::new(BASE, command, RetryPolicy::default(), 7)
        };
        let mut s = SimServer::default();
        let id = s.insert(
            r#"{"userName":"jdoe@example.com","externalId":"e-1","roles":[{"value":"Legacy"}],
                "urn:ietf:params:scim:schemas:extension:cxone:2.0:User":{"primaryRole":"Agent"}}"#,
        );
        let moved = CREATE
            .replace("\"create\"", "\"update\"")
            .replace("cxone-agent", "cxone-supervisor");
        let mut flow = flow_for(&moved);
        let out = drive(&mut flow, &mut s).0.unwrap();
        assert_eq!(out.action, Action::Updated);
        assert_eq!(flow.roles_before(&target), Some(vec!["Agent".to_string()]));
        assert_eq!(flow.roles_before(&RoleTarget::Roles), Some(vec!["Legacy".to_string()]));
        let user = serde_json::to_value(s.user(&id)).unwrap();
        assert_eq!(
            user["urn:ietf:params:scim:schemas:extension:cxone:2.0:User"]["primaryRole"],
            "Supervisor"
        );
        assert_eq!(
            user["roles"][0]["value"], "Legacy",
            "roles is not the target: untouched"
        );
        let mut again = flow_for(&moved);
        assert_eq!(drive(&mut again, &mut s).0.unwrap().action, Action::Unchanged);
        assert_eq!(flow_for(CREATE).roles_before(&target), None, "nothing found yet");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn create_conflict_resolves_as_update() {
        let mut s = SimServer::default();
        let id = s.insert(r#"{"userName":"JDOE@example.com","name":{"givenName":"J"},"active":true}"#);
        let out = run(&mut s, CREATE).unwrap();
        assert_eq!(out, Applied::new(Action::Updated, Some(id.clone())));
        assert_eq!(
            s.log(),
            [
                "POST /scim/v2/Users",
                "GET /scim/v2/Users",
                "GET /scim/v2/Users",
                "PATCH /scim/v2/Users/u1"
            ]
        );
        assert_eq!(s.user(&id).external_id.as_deref(), Some("e-1"));
        assert_eq!(s.count(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_create_conflict_looks_for_the_persons_own_account_before_the_user_name_holder() {
        // The person's account under an earlier userName, and an unclaimed account holding the new one.
        let mut s = SimServer::default();
        let own = s.insert(r#"{"userName":"old.jdoe@example.com","externalId":"e-1","active":true}"#);
        let holder = s.insert(r#"{"userName":"jdoe@example.com","active":true}"#);
        let out = run(&mut s, CREATE);
        assert_eq!(s.filters, ["externalId eq \"e-1\""], "{:?}", s.log());
        // The rename of the person's own account collides with the holder: refused, nothing else written.
        assert!(out.is_err(), "{out:?}");
        assert_eq!(
            writes(&s),
            ["POST /scim/v2/Users", &format!("PATCH /scim/v2/Users/{own}")]
        );
        assert_eq!(s.user(&holder).external_id, None, "the holder is never claimed");
        assert_eq!(s.user(&own).user_name, "old.jdoe@example.com");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn update_finds_by_external_id_then_user_name_then_creates() {
        let upd = CREATE.replace("\"create\"", "\"update\"");
        let mut s = SimServer::default();
        assert_eq!(run(&mut s, &upd).unwrap().action, Action::Created);
        assert_eq!(
            s.log(),
            ["GET /scim/v2/Users", "GET /scim/v2/Users", "POST /scim/v2/Users"]
        );
        s.clear_log();
        assert_eq!(
            run(&mut s, &upd).unwrap().action,
            Action::Unchanged,
            "same state twice: no write"
        );
        assert_eq!(s.log(), ["GET /scim/v2/Users"]);
        s.clear_log();
        let moved = upd.replace("cxone-agent", "cxone-supervisor");
        assert_eq!(run(&mut s, &moved).unwrap().action, Action::Updated);
        assert_eq!(s.users()[0].roles[0].value, "Supervisor");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn disable_and_rehire() {
        let mut s = SimServer::default();
        run(&mut s, CREATE).unwrap();
        let out = run(
            &mut s,
            r#"{"operation":"disable","userName":"jdoe@example.com","externalId":"e-1"}"#,
        )
        .unwrap();
        assert_eq!(out.action, Action::Disabled);
        assert_eq!(s.users()[0].active, Some(false));
        let again = run(
            &mut s,
            r#"{"operation":"disable","userName":"jdoe@example.com","externalId":"e-1"}"#,
        )
        .unwrap();
        assert_eq!(
            (again.action, again.note),
            (Action::Unchanged, Some(Note::AlreadyDisabled))
        );
        let untouched = run(&mut s, &CREATE.replace("\"create\"", "\"update\"")).unwrap();
        assert_eq!(untouched.action, Action::Unchanged, "no accountEnabled: stays disabled");
        assert_eq!(s.users()[0].active, Some(false));
        let rehire = CREATE
            .replace("\"create\"", "\"update\"")
            .replace("}]", "}],\"accountEnabled\":true");
        let rehire = run(&mut s, &rehire).unwrap();
        assert_eq!(rehire.action, Action::Updated);
        assert_eq!(s.users()[0].active, Some(true));
        let soft = r#"{"operation":"update","userName":"jdoe@example.com","externalId":"e-1","accountEnabled":false}"#;
        let soft = run(&mut s, soft).unwrap();
        assert_eq!(soft.action, Action::Disabled);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn delete_is_idempotent() {
        let mut s = SimServer::default();
        run(&mut s, CREATE).unwrap();
        let del = r#"{"operation":"delete","userName":"jdoe@example.com","externalId":"e-1"}"#;
        let out = run(&mut s, del).unwrap();
        assert_eq!((out.action, out.note), (Action::Deleted, None));
        assert_eq!(s.count(), 0);
        let out = run(&mut s, del).unwrap();
        assert_eq!(
            (out.action, out.note),
            (Action::Deleted, Some(Note::AlreadyDeprovisioned))
        );
        // Found, then gone before the DELETE lands.
        run(&mut s, CREATE).unwrap();
        s.fail_next(Fault::DeleteAfterLookup);
        let out = run(&mut s, del).unwrap();
        assert_eq!(out.note, Some(Note::AlreadyDeprovisioned));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn retries_429_and_503_with_retry_after_then_succeeds() {
        let mut s = SimServer::default();
        s.fail_next(Fault::Status(429, Some("2")));
        s.fail_next(Fault::Status(503, None));
        let mut flow = LifecycleFlow::new(BASE, command(CREATE), RetryPolicy::default(), 7);
        let (out, clock) = drive(&mut flow, &mut s);
        assert_eq!(out.unwrap().action, Action::Created);
        assert_eq!(s.count(), 1);
        assert!(clock >= 2_000, "Retry-After honoured: virtual clock at {clock}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn gives_up_after_the_budget_and_never_retries_400() {
        let mut s = SimServer::default();
        for _ in 0..10 {
            s.fail_next(Fault::Status(503, None));
        }
        let err = run(&mut s, CREATE).unwrap_err();
        assert!(
            matches!(err, FlowError::RetriesExhausted { attempts: 4, .. }),
            "{err:?}"
        );
        assert_eq!(s.log().len(), 4);
        let mut s = SimServer::default();
        s.fail_next(Fault::Status(400, None));
        let err = run(&mut s, CREATE).unwrap_err();
        assert!(matches!(err, FlowError::Rejected { status: 400, .. }), "{err:?}");
        assert_eq!(s.log().len(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn transport_errors_are_retried_and_unreadable_bodies_kept() {
        let mut s = SimServer::default();
        s.fail_next(Fault::Transport);
        assert_eq!(run(&mut s, CREATE).unwrap().action, Action::Created);
        let mut s = SimServer::default();
        s.fail_next(Fault::Body(200, "<html>proxy</html>"));
        let err = run(&mut s, &CREATE.replace("\"create\"", "\"update\"")).unwrap_err();
        let FlowError::Unreadable { body, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(body, "<html>proxy</html>");
    }

    fn conflict_of(out: Result<Applied, FlowError>) -> Conflict {
        let out = out.unwrap();
        assert_eq!(out.action, Action::Conflict, "{out:?}");
        out.conflict.unwrap()
    }

    fn writes(s: &SimServer) -> Vec<String> {
        s.log().into_iter().filter(|l| !l.starts_with("GET ")).collect()
    }

    /// A lookup answer listing the person's account under `id`.
    fn listed_as(id: &str) -> &'static str {
        let user = serde_json::json!({"id": id, "userName": "jdoe@example.com", "externalId": "e-1",
            "name": {"givenName": "Old"}, "active": true});
        let body = serde_json::json!({"totalResults": 1, "Resources": [user]}).to_string();
        Box::leak(body.into_boxed_str())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_unusable_id_in_a_lookup_answer_writes_nothing() {
        let long = "a".repeat(300);
        let bad = [
            "",
            ".",
            "..",
            "../../admin",
            "a/b",
            "a?b",
            "a#b",
            "%2e%2e",
            "a\nb",
            long.as_str(),
        ];
        for op in ["create", "update", "disable", "delete"] {
            for id in bad {
                let mut s = SimServer::default();
                if op == "create" {
                    s.fail_next(Fault::Status(409, None));
                }
                s.fail_next(Fault::Body(200, listed_as(id)));
                let out = run(&mut s, &CREATE.replace("\"create\"", &format!("\"{op}\"")));
                assert!(matches!(out, Err(FlowError::UnusableId(_))), "{op} {id:?}: {out:?}");
                assert!(
                    out.unwrap_err()
                        .to_string()
                        .starts_with("CXone answered an unusable id"),
                    "{op}"
                );
                let sent: Vec<String> = writes(&s).into_iter().filter(|w| w != "POST /scim/v2/Users").collect();
                assert!(sent.is_empty(), "{op} {id:?}: {sent:?}");
            }
        }
        // The same answer with a usable id is written.
        let mut s = SimServer::default();
        s.insert(r#"{"userName":"jdoe@example.com","externalId":"e-1","active":true}"#);
        s.fail_next(Fault::Body(200, listed_as("u1")));
        let out = run(&mut s, DISABLE_E1).unwrap();
        assert_eq!(out, Applied::new(Action::Disabled, Some("u1".into())));
    }

    const DISABLE_E1: &str = r#"{"operation":"disable","userName":"jdoe@example.com","externalId":"e-1"}"#;

    #[wasm_bindgen_test(unsupported = test)]
    fn several_matches_are_a_conflict_not_a_guess() {
        let mut s = SimServer::default();
        s.insert(r#"{"userName":"a@x.io","externalId":"e-1"}"#);
        s.insert(r#"{"userName":"b@x.io","externalId":"e-1"}"#);
        let c = conflict_of(run(&mut s, &CREATE.replace("\"create\"", "\"update\"")));
        assert_eq!((c.reason, c.accounts.len()), (ConflictReason::SeveralMatches, 2));
        assert!(writes(&s).is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_recycled_user_name_never_takes_over_the_old_account() {
        let mut s = SimServer::default();
        let old = s.insert(r#"{"userName":"jdoe@example.com","externalId":"e-old","active":false}"#);
        for op in ["create", "update", "disable", "delete"] {
            s.clear_log();
            let event = CREATE.replace("\"create\"", &format!("\"{op}\""));
            let c = conflict_of(run(&mut s, &event));
            assert_eq!(c.reason, ConflictReason::OtherExternalId, "{op}");
            assert_eq!(c.accounts[0].id.as_deref(), Some(old.as_str()));
            assert_eq!(c.filter, "userName eq \"jdoe@example.com\"");
            let posts_only: Vec<String> = writes(&s).into_iter().filter(|w| !w.starts_with("POST")).collect();
            assert!(posts_only.is_empty(), "{op}: {:?}", s.log());
        }
        let u = s.user(&old);
        assert_eq!((u.external_id.as_deref(), u.active), (Some("e-old"), Some(false)));
        assert_eq!(s.count(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_account_without_external_id_is_claimed_by_user_name() {
        let mut s = SimServer::default();
        let id = s.insert(r#"{"userName":"jdoe@example.com"}"#);
        let out = run(&mut s, &CREATE.replace("\"create\"", "\"update\"")).unwrap();
        assert_eq!((out.action, out.id), (Action::Updated, Some(id.clone())));
        assert_eq!(s.user(&id).external_id.as_deref(), Some("e-1"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_server_that_ignores_the_filter_causes_no_write() {
        let mut s = SimServer::default();
        s.insert(r#"{"userName":"other@example.com","externalId":"e-other"}"#);
        s.ignore_filter = true;
        for event in [
            CREATE.replace("\"create\"", "\"update\""),
            r#"{"operation":"delete","userName":"jdoe@example.com","externalId":"e-1"}"#.to_string(),
            r#"{"operation":"disable","userName":"jdoe@example.com"}"#.to_string(),
        ] {
            s.clear_log();
            let c = conflict_of(run(&mut s, &event));
            assert_eq!(c.reason, ConflictReason::FilterIgnored);
            assert!(writes(&s).is_empty(), "{:?}", s.log());
        }
        assert_eq!(s.users()[0].external_id.as_deref(), Some("e-other"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_leaver_known_by_external_id_alone() {
        let mut s = SimServer::default();
        let created = run(&mut s, CREATE).unwrap();
        s.clear_log();
        let out = run(&mut s, r#"{"operation":"delete","externalId":"e-1"}"#).unwrap();
        assert_eq!((out.action, out.id), (Action::Deleted, created.id));
        let out = run(&mut s, r#"{"operation":"delete","externalId":"e-1"}"#).unwrap();
        assert_eq!(out.note, Some(Note::AlreadyDeprovisioned));
        assert_eq!(
            s.log(),
            ["GET /scim/v2/Users", "DELETE /scim/v2/Users/u1", "GET /scim/v2/Users"]
        );
    }
}
