//! Applying a joiner or a mover ([`Command::Upsert`]) to CXone, on a server with the given
//! [`Capabilities`]. Leavers (disable, delete) are not written here: every leaver takes
//! [`crate::deprovision::DeprovisionFlow`] (deactivate, end the session, read back), and a leaver
//! handed to this flow is refused with nothing sent. An update that sets `active:false` is
//! reported `disabled` only once CXone reads the account back inactive.
//!
//! - create first: `POST /Users`; 409 → find → minimal PATCH.
//! - find first: find; found → minimal PATCH (nothing when already in state); none →
//!   `POST /Users`. A create that lacks what the server requires is not sent. An inactive
//!   account made active again is reported [`Note::Reinstated`].
//!
//! Find: the id the person's ledger knows, then externalId where the server filters by it, then
//! userName (see [`super::lookup`]).
//!
//! Matching never takes over someone else's account: every lookup answer is checked against
//! the lookup it answers; a `userName` match counts only when the account has no externalId or
//! the event's; anything else (another externalId, several matches, an answer that ignores the
//! filter) ends in [`Action::Conflict`] with nothing written.

use super::exchange::Exchange;
use super::lookup::{self, By, Conflict, Found};
use super::FlowError;
use crate::event::{Command, Lookup};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::policy::RoleTarget;
use crate::profile::Capabilities;
use crate::retry::RetryPolicy;
use crate::scim::build::{create_payload, patch_to, role_values_at, DesiredUser};
use crate::scim::{filter, User};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    Disabled,
    Deleted,
    /// A leaver on a server that cannot delete accounts: set inactive and read back so.
    Deactivated,
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

impl Action {
    /// Whether CXone was written.
    pub fn wrote(self) -> bool {
        matches!(
            self,
            Self::Created | Self::Updated | Self::Disabled | Self::Deleted | Self::Deactivated
        )
    }
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
    /// A delete on a server that cannot delete accounts (CXone): deactivated instead.
    CxoneCannotDelete,
    /// An inactive account made active again (a joiner after a leaver): the agent's live
    /// session, skills and groups are not restored by it.
    Reinstated,
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

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Create,
    Find(By),
    Patch {
        id: String,
        action: Action,
    },
    /// Reading back an account an update set inactive.
    ReadBack {
        applied: Applied,
    },
}

#[derive(Debug, Clone)]
pub struct LifecycleFlow {
    base_url: String,
    caps: Capabilities,
    command: Command,
    phase: Phase,
    exchange: Exchange,
    /// 409s seen on create; a second one means CXone's data contradicts itself.
    conflicts: u8,
    /// The account found (none before a create), for the audit trail's roles "before".
    found: Option<Box<User>>,
    /// The account the ledger knows answered 404.
    known_gone: bool,
    /// The PATCH in flight makes an inactive account active again (a rehire).
    reinstates: bool,
    done: Option<Result<Applied, FlowError>>,
}

impl LifecycleFlow {
    /// `base_url` is CXone's SCIM root, `/scim/v2` included; `caps` what it offers. `seed`
    /// drives retry jitter.
    pub fn new(base_url: &str, caps: Capabilities, mut command: Command, retry: RetryPolicy, seed: u64) -> Self {
        if let Command::Upsert { desired, .. } = &mut command {
            caps.fit(desired);
        }
        let mut flow = Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            caps,
            phase: Phase::Create,
            exchange: Exchange::new(retry, seed),
            conflicts: 0,
            found: None,
            known_gone: false,
            reinstates: false,
            done: None,
            command,
        };
        match &flow.command {
            _ if flow.command.as_leaver().is_some() => flow.finish(Err(FlowError::Ambiguous(
                "a leaver takes the deprovisioning flow, not a write of its attributes; nothing sent".into(),
            ))),
            Command::Upsert { create_first: true, .. } => flow.create(),
            _ => flow.find_next(None),
        }
        flow
    }

    fn lookup(&self) -> Lookup {
        match &self.command {
            Command::Upsert { desired, known_id, .. } => Lookup {
                user_name: Some(desired.user_name.clone()),
                external_id: desired.external_id.clone(),
                cxone_id: known_id.clone(),
            },
            Command::Disable { lookup } | Command::Delete { lookup } => lookup.clone(),
        }
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
        let Some(d) = self.desired() else {
            return self.finish(Err(FlowError::Ambiguous(
                "create requested without a target state".into(),
            )));
        };
        let payload = create_payload(d);
        if let Err(missing) = self.caps.check_create(&payload) {
            return self.finish(Err(FlowError::Incomplete(missing)));
        }
        let req = HttpRequest::scim_json(Method::Post, format!("{}/Users", self.base_url), &payload);
        self.go(Phase::Create, req);
    }

    /// The lookup after `after` (the first for `None`), or what not finding the person means.
    fn find_next(&mut self, after: Option<By>) {
        let lookup = self.lookup();
        if after.is_none() && !lookup::findable(&lookup, &self.caps) {
            return self.finish(Err(lookup::unfindable(&lookup)));
        }
        let Some(by) = lookup::next_by(&lookup, &self.caps, after) else {
            return self.not_found();
        };
        match lookup::request(&self.base_url, &lookup, by) {
            Ok(Some(req)) => self.go(Phase::Find(by), req),
            Ok(None) => self.find_next(Some(by)),
            Err(e) => self.finish(Err(e)),
        }
    }

    /// No lookup found the person.
    fn not_found(&mut self) {
        match (&self.command, self.caps.delete) {
            // The person's account is not where their ledger says, and cannot have been deleted:
            // a create now could make them a second one.
            (Command::Upsert { known_id: Some(id), .. }, false) if self.known_gone => {
                self.finish(Err(FlowError::Ambiguous(format!(
                    "CXone answers 404 for the account {id} this person's ledger knows, finds no \
                     account by their userName, and cannot delete accounts; nothing written"
                ))))
            }
            (Command::Upsert { .. }, _) => self.create(),
            // Refused in `new`: a leaver never gets here.
            (Command::Disable { .. } | Command::Delete { .. }, _) => {
                self.finish(Err(FlowError::Ambiguous("a leaver is not written here".into())))
            }
        }
    }

    fn patch(&mut self, id: String, action: Action, body: &crate::scim::PatchOp) {
        let req = HttpRequest::scim_json(Method::Patch, filter::user_url(&self.base_url, &id), body);
        self.go(Phase::Patch { id, action }, req);
    }

    fn on_found(&mut self, by: By, found: Option<User>) {
        let Some(user) = found else {
            self.known_gone |= by == By::Id;
            return self.find_next(Some(by));
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
                    self.reinstates = !user.is_active() && desired.active == Some(true);
                    self.patch(id, action, &p);
                }
                None => self.finish(Ok(Applied::new(Action::Unchanged, Some(id)))),
            },
            Command::Disable { .. } | Command::Delete { .. } => {
                self.finish(Err(FlowError::Ambiguous("a leaver is not written here".into())))
            }
        }
    }

    /// What reading back an account an update set inactive shows: done only once inactive (or
    /// gone, where accounts are deleted).
    fn on_read_back(&mut self, applied: Applied, resp: &HttpResponse) {
        let id = applied.id.clone().unwrap_or_default();
        match resp.status {
            200 => match serde_json::from_str::<User>(&resp.body) {
                Ok(u) if !u.is_active() => self.finish(Ok(applied)),
                Ok(_) => self.finish(Err(FlowError::NotConfirmed(format!(
                    "CXone accepted active=false for {id} but reads it back active"
                )))),
                Err(e) => {
                    let e = FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body);
                    self.finish(Err(e))
                }
            },
            404 if self.caps.delete => self.finish(Ok(applied)),
            404 => self.finish(Err(FlowError::NotConfirmed(format!(
                "CXone answered GET /Users/{id} with 404 after active=false, and it cannot delete accounts"
            )))),
            _ => self.finish(Err(self.exchange.rejected(resp))),
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
            // Someone holds the userName: the person's own account (known id, externalId first),
            // else an account the userName rule lets us claim; never the userName holder alone.
            (Phase::Create, 409) if self.conflicts == 0 => {
                self.conflicts += 1;
                self.find_next(None);
            }
            (Phase::Find(by), 200) | (Phase::Find(by @ By::Id), 404) => {
                match lookup::read_answer(&self.lookup(), by, &resp, self.exchange.describe()) {
                    Ok(Found::None) => self.on_found(by, None),
                    Ok(Found::One(user)) => self.on_found(by, Some(*user)),
                    Ok(Found::Conflict(c)) => self.finish(Ok(Applied::conflict(c))),
                    Err(e) => self.finish(Err(e)),
                }
            }
            (Phase::Patch { id, action }, 200 | 204) => {
                let mut applied = Applied::new(action, Some(id.clone()));
                if self.reinstates {
                    applied.note = Some(Note::Reinstated);
                }
                if action == Action::Disabled {
                    let req = HttpRequest::scim(Method::Get, filter::user_url(&self.base_url, &id));
                    return self.go(Phase::ReadBack { applied }, req);
                }
                self.finish(Ok(applied));
            }
            (Phase::ReadBack { applied }, _) => self.on_read_back(applied, &resp),
            // Deleted between the lookup and the PATCH.
            (Phase::Patch { .. }, 404) => self.create(),
            _ => self.finish(Err(self.exchange.rejected(&resp))),
        }
    }
}

super::exchange::exchange_flow!(LifecycleFlow => Applied);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LifecycleEvent;
    use crate::flows::ConflictReason;
    use crate::policy::RolePolicy;
    use crate::testutil::{drive, Fault, SimServer};
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "http://cxone.test/scim/v2";
    const RFC: Capabilities = crate::profile::Profile::Rfc7644.capabilities();
    const CXONE: Capabilities = crate::profile::Profile::Cxone.capabilities();

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
            &mut LifecycleFlow::new(BASE, RFC, command(json), RetryPolicy::default(), 7),
            server,
        )
        .0
    }

    /// On a CXone as NICE publishes it, the ledger knowing `known` as the person's account.
    fn run_cxone(server: &mut SimServer, json: &str, known: Option<&str>) -> Result<Applied, FlowError> {
        let command = command(json).known_as(known.map(str::to_string));
        drive(
            &mut LifecycleFlow::new(BASE, CXONE, command, RetryPolicy::default(), 7),
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
            LifecycleFlow::new(BASE, RFC, command, RetryPolicy::default(), 7)
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
    fn a_rehire_reactivates_and_says_what_is_not_restored() {
        let mut s = SimServer::default();
        let id = run(&mut s, CREATE).unwrap().id.unwrap();
        // A leaver took the account out of use (core::deprovision does that).
        let off = crate::scim::build::disable_patch();
        let req = HttpRequest::scim_json(Method::Patch, filter::user_url(BASE, &id), &off);
        assert_eq!(s.handle(&req).unwrap().status, 204);
        let untouched = run(&mut s, &CREATE.replace("\"create\"", "\"update\"")).unwrap();
        assert_eq!(untouched.action, Action::Unchanged, "no accountEnabled: stays disabled");
        assert_eq!(s.user(&id).active, Some(false));
        let rehire = CREATE
            .replace("\"create\"", "\"update\"")
            .replace("}]", "}],\"accountEnabled\":true");
        let rehire = run(&mut s, &rehire).unwrap();
        assert_eq!((rehire.action, rehire.note), (Action::Updated, Some(Note::Reinstated)));
        assert_eq!(s.user(&id).active, Some(true));
        // A leaver is refused here, nothing sent.
        s.clear_log();
        for leaver in [
            r#"{"operation":"disable","userName":"jdoe@example.com","externalId":"e-1"}"#,
            r#"{"operation":"delete","userName":"jdoe@example.com","externalId":"e-1"}"#,
        ] {
            assert!(matches!(run(&mut s, leaver), Err(FlowError::Ambiguous(_))), "{leaver}");
        }
        assert!(s.log().is_empty());
        // An update to accountEnabled:false is written and read back before it is reported.
        let soft = r#"{"operation":"update","userName":"jdoe@example.com","externalId":"e-1","accountEnabled":false}"#;
        let soft = run(&mut s, soft).unwrap();
        assert_eq!(soft.action, Action::Disabled);
        assert_eq!(
            s.log().last().map(String::as_str),
            Some(format!("GET /scim/v2/Users/{id}").as_str())
        );
        // A create of an account made ahead of its start date is a joiner.
        let ahead = CREATE
            .replace("jdoe@", "ahead@")
            .replace("e-1", "e-2")
            .replace("}]", "}],\"accountEnabled\":false");
        let made = run(&mut s, &ahead).unwrap();
        assert_eq!(made.action, Action::Created);
        assert_eq!(s.user(made.id.as_deref().unwrap()).active, Some(false));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn retries_429_and_503_with_retry_after_then_succeeds() {
        let mut s = SimServer::default();
        s.fail_next(Fault::Status(429, Some("2")));
        s.fail_next(Fault::Status(503, None));
        let mut flow = LifecycleFlow::new(BASE, RFC, command(CREATE), RetryPolicy::default(), 7);
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
        for op in ["create", "update"] {
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
        let out = run(&mut s, &CREATE.replace("\"create\"", "\"update\"")).unwrap();
        assert_eq!(out.id.as_deref(), Some("u1"));
    }

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
        for op in ["create", "update"] {
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
        let c = conflict_of(run(&mut s, &CREATE.replace("\"create\"", "\"update\"")));
        assert_eq!(c.reason, ConflictReason::FilterIgnored);
        assert!(writes(&s).is_empty(), "{:?}", s.log());
        assert_eq!(s.users()[0].external_id.as_deref(), Some("e-other"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn on_cxone_a_renamed_person_is_found_through_the_id_their_ledger_knows() {
        let mut s = SimServer::cxone();
        let id = s.insert(r#"{"userName":"old.jdoe@example.com","externalId":"e-1","active":true}"#);
        let renamed = CREATE.replace("\"create\"", "\"update\"");
        let out = run_cxone(&mut s, &renamed, Some(&id)).unwrap();
        assert_eq!((out.action, out.id.as_deref()), (Action::Updated, Some(id.as_str())));
        assert_eq!(s.user(&id).user_name, "jdoe@example.com");
        assert_eq!(s.log(), ["GET /scim/v2/Users/u1", "PATCH /scim/v2/Users/u1"]);
        assert!(s.filters.is_empty());
        // Known, but not where the ledger says: found by userName.
        let mut s = SimServer::cxone();
        let there = s.insert(r#"{"userName":"jdoe@example.com","externalId":"e-1","active":true}"#);
        let out = run_cxone(&mut s, &renamed, Some("u-gone")).unwrap();
        assert_eq!(out.id.as_deref(), Some(there.as_str()));
        assert_eq!(s.filters, ["userName eq \"jdoe@example.com\""]);
        // …and not by userName either: CXone cannot have deleted it, so no second account.
        let mut s = SimServer::cxone();
        let out = run_cxone(&mut s, &renamed, Some("u-gone"));
        assert!(matches!(out, Err(FlowError::Ambiguous(_))), "{out:?}");
        assert!(writes(&s).is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn on_cxone_a_recycled_user_name_is_a_conflict_and_nothing_is_written() {
        let mut s = SimServer::cxone();
        s.insert(r#"{"userName":"jdoe@example.com","externalId":"e-old","active":true}"#);
        let out = run_cxone(&mut s, CREATE, None).unwrap();
        assert_eq!(out.action, Action::Conflict);
        assert_eq!(writes(&s), ["POST /scim/v2/Users"], "the refused create only");
        // Known by id to the ledger, yet holding another externalId: the same.
        let out = run_cxone(&mut s, &CREATE.replace("\"create\"", "\"update\""), Some("u1")).unwrap();
        assert_eq!(out.conflict.map(|c| c.reason), Some(ConflictReason::OtherExternalId));
        assert_eq!(s.users()[0].external_id.as_deref(), Some("e-old"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn on_cxone_enterprise_attributes_are_not_sent() {
        let mut s = SimServer::cxone();
        let with_department = CREATE.replace(
            "\"groups\"",
            "\"department\":\"Support\",\"employeeNumber\":\"E-1\",\"groups\"",
        );
        let out = run_cxone(&mut s, &with_department, None).unwrap();
        let user = s.user(out.id.as_deref().unwrap());
        assert_eq!(user.enterprise, None);
        assert!(
            !user.schemas.iter().any(|u| u.contains("enterprise")),
            "{:?}",
            user.schemas
        );
        // The same event on a server with the extension keeps it.
        let mut s = SimServer::default();
        let out = run(&mut s, &with_department).unwrap();
        assert!(s.user(out.id.as_deref().unwrap()).enterprise.is_some());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn on_cxone_a_joiner_without_names_or_email_is_refused_before_anything_is_sent() {
        let mut s = SimServer::cxone();
        let out = run_cxone(
            &mut s,
            r#"{"operation":"create","userName":"jdoe","externalId":"e-1","firstName":"Jane"}"#,
            None,
        );
        match out {
            Err(FlowError::Incomplete(m)) => assert_eq!(m.0, ["familyName", "email"]),
            other => panic!("{other:?}"),
        }
        assert!(s.log().is_empty());
    }
}
