//! The leaver's steps as one state machine (see the module above for the order and the rules).

use super::agents::{read_agents, read_dependency, AdminApi, Agent, AgentMatch, DependencyKind};
use super::{
    match_agent, Dependencies, DeprovisionOutcome, Licence, Mode, Named, Options, Report, StepName, StepRecord,
    StepStatus,
};
use crate::event::Lookup;
use crate::flows::exchange::Exchange;
use crate::flows::lookup::{self, By, Found};
use crate::flows::{Action, Conflict, Flow, FlowError, Note, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::profile::Capabilities;
use crate::retry::RetryPolicy;
use crate::scim::build::disable_patch;
use crate::scim::{filter, User};
use crate::UnixMillis;

/// Reads of the account and the agent before a leaver is reported unverified.
pub const VERIFY_TRIES: u32 = 3;
/// The pause before the second read-back; it doubles before each further one.
pub const VERIFY_PAUSE_MS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Find(By),
    Agent,
    Dependency(DependencyKind),
    Deactivate,
    Delete,
    /// A `DELETE` answered 404: reading the account tells gone from a server that keeps it.
    DeleteCheck,
    Logout,
    VerifyAccount,
    VerifyAgent,
    /// Pausing before the next read-back.
    VerifyPause {
        until: UnixMillis,
    },
}

/// The account a leaver's lookup found.
#[derive(Debug, Clone)]
struct Account {
    id: String,
    user_name: String,
    was_active: bool,
    /// As found, for the audit trail's roles "before".
    user: Box<User>,
}

/// A leaver as a dry run sees it ([`DeprovisionFlow::plan`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub would_send: Vec<HttpRequest>,
    pub cxone_id: Option<String>,
    pub agent_id: Option<String>,
    /// The steps taken so far (the reads).
    pub steps: Vec<StepRecord>,
    pub dependencies: Option<Dependencies>,
    /// Finished without a write: the report (held, nothing found, a conflict) or the error.
    pub finished: Option<Result<Report, FlowError>>,
}

#[derive(Debug, Clone)]
pub struct DeprovisionFlow {
    scim_base: String,
    caps: Capabilities,
    admin: Option<AdminApi>,
    lookup: Lookup,
    options: Options,
    phase: Phase,
    exchange: Exchange,
    /// The latest time a step or an answer was seen at.
    now: UnixMillis,
    step_started: UnixMillis,
    steps: Vec<StepRecord>,
    account: Option<Account>,
    agent: Option<AgentMatch>,
    /// Why the agent could not be looked up.
    agent_error: Option<String>,
    dependencies: Dependencies,
    dependency_error: Option<String>,
    action: Action,
    note: Option<Note>,
    verify_tries: u32,
    account_shown: Result<(), String>,
    done: Option<Result<Report, FlowError>>,
}

impl DeprovisionFlow {
    /// `scim_base` is the SCIM root (`/scim/v2` included), `caps` what it offers, `admin` the
    /// Admin API when one is configured, `lookup` how to find the person (with the CXone id
    /// their ledger knows). `now` starts the first step's clock; `seed` drives retry jitter.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scim_base: &str,
        caps: Capabilities,
        admin: Option<AdminApi>,
        lookup: Lookup,
        options: Options,
        retry: RetryPolicy,
        seed: u64,
        now: UnixMillis,
    ) -> Self {
        let mut flow = Self {
            scim_base: scim_base.trim_end_matches('/').to_string(),
            caps,
            admin,
            lookup,
            options,
            phase: Phase::Find(By::Id),
            exchange: Exchange::new(retry, seed),
            now,
            step_started: now,
            steps: Vec::new(),
            account: None,
            agent: None,
            agent_error: None,
            dependencies: Dependencies::default(),
            dependency_error: None,
            action: Action::Unchanged,
            note: None,
            verify_tries: 0,
            account_shown: Err("not read back".into()),
            done: None,
        };
        if !lookup::findable(&flow.lookup, &flow.caps) {
            let err = lookup::unfindable(&flow.lookup);
            flow.done = Some(Err(err));
        } else {
            flow.find_next(None);
        }
        flow
    }

    /// What a dry run shows once the flow stopped at its first write (a host that sends only
    /// reads): the writes it would send, in order, and what the reads found. A flow that
    /// finished without writing (held, nothing found, a conflict) has its report.
    pub fn plan(&self) -> Plan {
        let mut would_send = Vec::new();
        let at_write = matches!(self.phase, Phase::Deactivate | Phase::Delete | Phase::Logout);
        if self.done.is_none() && at_write {
            would_send.extend(self.exchange.pending().cloned());
            let logout = match (&self.phase, self.options.end_sessions, self.the_agent(), self.admin()) {
                (Phase::Deactivate | Phase::Delete, true, Some(agent), Some(api)) => Some(api.logout(&agent.agent_id)),
                _ => None,
            };
            would_send.extend(logout);
        }
        Plan {
            would_send,
            cxone_id: self.account.as_ref().map(|a| a.id.clone()),
            agent_id: self.the_agent().map(|a| a.agent_id.clone()),
            steps: self.steps.clone(),
            dependencies: (self.the_agent().is_some()).then(|| self.dependencies.clone()),
            finished: self.done.clone(),
        }
    }

    /// The role values the account held where `target` keeps them, as the lookup found it
    /// (`None` before one was found), for the audit trail's roles "before".
    pub fn roles_before(&self, target: &crate::policy::RoleTarget) -> Option<Vec<String>> {
        let account = self.account.as_ref()?;
        Some(crate::scim::build::role_values_at(&account.user, target.single_path()))
    }

    fn go(&mut self, phase: Phase, req: HttpRequest) {
        self.phase = phase;
        self.exchange.start(req);
    }

    fn record(&mut self, step: StepName, status: StepStatus, detail: Option<String>) {
        self.steps.push(StepRecord {
            step,
            status,
            latency_ms: self.now.saturating_sub(self.step_started),
            detail,
        });
        self.step_started = self.now;
    }

    fn admin(&self) -> Option<&AdminApi> {
        self.admin.as_ref()
    }

    fn the_agent(&self) -> Option<&Agent> {
        match &self.agent {
            Some(AgentMatch::One(a)) => Some(a),
            _ => None,
        }
    }

    // --- 1. find ---

    fn find_next(&mut self, after: Option<By>) {
        let Some(by) = lookup::next_by(&self.lookup, &self.caps, after) else {
            return self.not_found();
        };
        match lookup::request(&self.scim_base, &self.lookup, by) {
            Ok(Some(req)) => self.go(Phase::Find(by), req),
            Ok(None) => self.find_next(Some(by)),
            Err(e) => self.done = Some(Err(e)),
        }
    }

    fn not_found(&mut self) {
        // Where accounts are deleted, none is what a delete leaves: nobody signs in with it.
        let gone = self.options.mode == Mode::Delete && self.caps.delete;
        self.record(StepName::Find, StepStatus::NotFound, None);
        let (outcome, action, note) = if gone {
            (
                DeprovisionOutcome::AlreadyDeprovisioned,
                Action::Deleted,
                Note::AlreadyDeprovisioned,
            )
        } else {
            (DeprovisionOutcome::NotFound, Action::Unchanged, Note::NotFound)
        };
        self.action = action;
        self.note = Some(note);
        self.finish(outcome, gone, None);
    }

    fn on_found(&mut self, by: By, found: Found) {
        match found {
            Found::None => self.find_next(Some(by)),
            Found::Conflict(c) => {
                self.record(StepName::Find, StepStatus::Ambiguous, Some(format!("{:?}", c.reason)));
                self.action = Action::Conflict;
                self.finish(DeprovisionOutcome::Conflict, false, Some(c));
            }
            Found::One(user) => match lookup::id_of(&user) {
                Ok(id) => self.found(&user, id),
                Err(e) => self.done = Some(Err(e)),
            },
        }
    }

    fn found(&mut self, user: &User, id: String) {
        self.record(StepName::Find, StepStatus::Done, None);
        self.account = Some(Account {
            id,
            user_name: user.user_name.clone(),
            was_active: user.is_active(),
            user: Box::new(user.clone()),
        });
        match self.admin().map(|a| a.search(&user.user_name)) {
            Some(req) => self.go(Phase::Agent, req),
            None => {
                self.record(StepName::Agent, StepStatus::NotConfigured, None);
                self.record(StepName::Dependencies, StepStatus::NotConfigured, None);
                self.deactivate();
            }
        }
    }

    fn on_agents(&mut self, resp: &HttpResponse) {
        let found = if resp.status == 200 || resp.status == 204 {
            read_agents(resp).map_err(|e| e.to_string())
        } else {
            Err(self.exchange.rejected(resp).to_string())
        };
        let account = self.account.clone();
        let (user_name, id) = account
            .as_ref()
            .map_or(("", None), |a| (a.user_name.as_str(), Some(a.id.as_str())));
        match found {
            Ok(agents) => {
                let matched = match_agent(&agents, user_name, id);
                let (status, detail) = match &matched {
                    AgentMatch::One(_) => (StepStatus::Done, None),
                    AgentMatch::None => (StepStatus::NotFound, None),
                    AgentMatch::Several { agent_ids } => (
                        StepStatus::Ambiguous,
                        Some(format!(
                            "agents {} all match; no session is ended",
                            agent_ids.join(", ")
                        )),
                    ),
                };
                self.agent = Some(matched);
                self.record(StepName::Agent, status, detail);
            }
            Err(detail) => self.agent_failed(detail),
        }
        self.next_dependency(None);
    }

    fn agent_failed(&mut self, detail: String) {
        self.agent_error = Some(detail.clone());
        self.record(StepName::Agent, StepStatus::Failed, Some(detail));
    }

    // --- 2. dependencies ---

    fn next_dependency(&mut self, after: Option<DependencyKind>) {
        let Some(agent_id) = self.the_agent().map(|a| a.agent_id.clone()) else {
            self.record(StepName::Dependencies, StepStatus::Skipped, None);
            return self.deactivate();
        };
        let next = match after {
            None => DependencyKind::ALL.first(),
            Some(k) => DependencyKind::ALL.iter().skip_while(|x| **x != k).nth(1),
        };
        match (next.copied(), self.admin().cloned()) {
            (Some(kind), Some(api)) => self.go(Phase::Dependency(kind), api.dependency(&agent_id, kind)),
            _ => {
                let (status, detail) = match self.dependency_error.clone() {
                    Some(e) => (StepStatus::Failed, Some(e)),
                    None => (StepStatus::Done, None),
                };
                self.record(StepName::Dependencies, status, detail);
                self.deactivate();
            }
        }
    }

    fn on_dependency(&mut self, kind: DependencyKind, resp: &HttpResponse) {
        let read = if resp.status == 200 || resp.status == 204 {
            read_dependency(kind, resp).map_err(|e| e.to_string())
        } else {
            Err(self.exchange.rejected(resp).to_string())
        };
        match read {
            Ok(names) => {
                let named = Named::of(names);
                match kind {
                    DependencyKind::Skills => self.dependencies.skills = named,
                    DependencyKind::Groups => self.dependencies.groups = named,
                    DependencyKind::ScheduledCallbacks => self.dependencies.scheduled_callbacks = named,
                }
            }
            Err(detail) => self.dependency_failed(kind, detail),
        }
        self.next_dependency(Some(kind));
    }

    fn dependency_failed(&mut self, kind: DependencyKind, detail: String) {
        let line = format!("{kind:?}: {detail}");
        self.dependency_error = Some(match self.dependency_error.take() {
            Some(before) => format!("{before}; {line}"),
            None => line,
        });
    }

    /// Whether what depends on the agent is unknown (it could not be read).
    fn dependencies_unknown(&self) -> bool {
        self.agent_error.is_some()
            || self.dependency_error.is_some()
            || matches!(self.agent, Some(AgentMatch::Several { .. }))
    }

    // --- 3. deactivate ---

    fn deactivate(&mut self) {
        if self.options.block_on_dependencies && (self.dependencies.any() || self.dependencies_unknown()) {
            let detail = if self.dependencies_unknown() {
                "what depends on the agent could not be read; held for a person to decide"
            } else {
                "the agent has skills, groups or scheduled callbacks; held for a person to decide"
            };
            self.record(StepName::Deactivate, StepStatus::Held, Some(detail.into()));
            return self.finish(DeprovisionOutcome::Held, false, None);
        }
        let Some(account) = self.account.clone() else {
            return self.done = Some(Err(FlowError::Ambiguous("no account to deactivate".into())));
        };
        let url = filter::user_url(&self.scim_base, &account.id);
        if self.options.mode == Mode::Delete && self.caps.delete {
            self.go(Phase::Delete, HttpRequest::scim(Method::Delete, url));
        } else if account.was_active {
            self.go(
                Phase::Deactivate,
                HttpRequest::scim_json(Method::Patch, url, &disable_patch()),
            );
        } else {
            self.action = Action::Unchanged;
            self.note = Some(Note::AlreadyDisabled);
            self.record(StepName::Deactivate, StepStatus::AlreadyDone, None);
            self.logout();
        }
    }

    fn on_deactivated(&mut self, delete: bool, resp: &HttpResponse) {
        match (delete, resp.status) {
            (true, 200 | 204) => {
                self.action = Action::Deleted;
                self.record(StepName::Deactivate, StepStatus::Done, None);
            }
            // Gone, or a server that cannot delete: reading the account tells which.
            (true, 404) => {
                let Some(id) = self.account.as_ref().map(|a| a.id.clone()) else {
                    return self.done = Some(Err(self.exchange.rejected(resp)));
                };
                let req = HttpRequest::scim(Method::Get, filter::user_url(&self.scim_base, &id));
                return self.go(Phase::DeleteCheck, req);
            }
            (false, 200 | 204) => {
                if self.options.mode == Mode::Delete {
                    self.action = Action::Deactivated;
                    self.note = Some(Note::CxoneCannotDelete);
                } else {
                    self.action = Action::Disabled;
                }
                self.record(StepName::Deactivate, StepStatus::Done, None);
            }
            (false, 404) if self.caps.delete => {
                self.action = Action::Deleted;
                self.note = Some(Note::AlreadyDeprovisioned);
                self.record(StepName::Deactivate, StepStatus::AlreadyDone, None);
            }
            _ => return self.done = Some(Err(self.exchange.rejected(resp))),
        }
        self.logout();
    }

    /// What a `DELETE` answered 404 left: nothing (gone), or an account a server that cannot
    /// delete keeps, which is deactivated instead (never reported gone).
    fn on_delete_checked(&mut self, resp: &HttpResponse) {
        let kept = match resp.status {
            404 => None,
            200 => match serde_json::from_str::<User>(&resp.body) {
                Ok(u) => Some(u),
                Err(e) => {
                    let e = FlowError::unreadable(self.exchange.describe(), 200, e, &resp.body);
                    return self.done = Some(Err(e));
                }
            },
            _ => return self.done = Some(Err(self.exchange.rejected(resp))),
        };
        match kept {
            None => {
                self.action = Action::Deleted;
                self.note = Some(Note::AlreadyDeprovisioned);
                self.record(StepName::Deactivate, StepStatus::AlreadyDone, None);
                self.logout();
            }
            Some(user) if user.is_active() => {
                let Some(id) = self.account.as_ref().map(|a| a.id.clone()) else {
                    return self.done = Some(Err(FlowError::Ambiguous("no account to deactivate".into())));
                };
                let url = filter::user_url(&self.scim_base, &id);
                self.go(
                    Phase::Deactivate,
                    HttpRequest::scim_json(Method::Patch, url, &disable_patch()),
                );
            }
            Some(_) => {
                self.action = Action::Deactivated;
                self.note = Some(Note::CxoneCannotDelete);
                self.record(StepName::Deactivate, StepStatus::AlreadyDone, None);
                self.logout();
            }
        }
    }

    // --- 4. end the session ---

    fn logout(&mut self) {
        let (status, detail) = if !self.options.end_sessions {
            (StepStatus::Skipped, Some("endSessions is false".to_string()))
        } else if self.admin.is_none() {
            (StepStatus::NotConfigured, None)
        } else {
            match (&self.agent, &self.agent_error) {
                (Some(AgentMatch::One(agent)), _) => {
                    let req = self.admin().map(|a| a.logout(&agent.agent_id));
                    if let Some(req) = req {
                        return self.go(Phase::Logout, req);
                    }
                    (StepStatus::NotConfigured, None)
                }
                (Some(AgentMatch::Several { .. }), _) => (
                    StepStatus::Ambiguous,
                    Some("several agents match; no session is ended".to_string()),
                ),
                (_, Some(e)) => (
                    StepStatus::Failed,
                    Some(format!("the agent could not be looked up: {e}")),
                ),
                _ => (StepStatus::NotFound, None),
            }
        };
        self.record(StepName::Logout, status, detail);
        self.verify();
    }

    fn on_logout(&mut self, resp: &HttpResponse) {
        if resp.is_success() {
            self.record(StepName::Logout, StepStatus::Done, None);
        } else if resp.status == 404 {
            // No such agent any more (a deleted account's): no session left to end; the
            // read-back checks that it is not listed active.
            self.record(
                StepName::Logout,
                StepStatus::NotFound,
                Some("the agent no longer exists".into()),
            );
        } else {
            let detail = self.exchange.rejected(resp).to_string();
            self.record(StepName::Logout, StepStatus::Failed, Some(detail));
        }
        self.verify();
    }

    // --- 5. read back ---

    fn verify(&mut self) {
        self.verify_tries += 1;
        match self.account.as_ref().map(|a| a.id.clone()) {
            Some(id) => {
                let req = HttpRequest::scim(Method::Get, filter::user_url(&self.scim_base, &id));
                self.go(Phase::VerifyAccount, req);
            }
            None => self.verified(Err("no account to read back".into())),
        }
    }

    fn on_account_read(&mut self, resp: &HttpResponse) {
        let gone_is_done = self.action == Action::Deleted || self.caps.delete;
        self.account_shown = match resp.status {
            404 if gone_is_done => Ok(()),
            404 => Err("CXone answers 404 for the account and cannot delete accounts".into()),
            200 => match serde_json::from_str::<User>(&resp.body) {
                Ok(u) if !u.is_active() => Ok(()),
                Ok(_) => Err("the account reads back active".into()),
                Err(e) => Err(format!("the account read back is unreadable: {e}")),
            },
            _ => Err(self.exchange.rejected(resp).to_string()),
        };
        let agent_search = match (self.the_agent(), self.admin(), &self.account) {
            (Some(_), Some(api), Some(account)) => Some(api.search(&account.user_name)),
            _ => None,
        };
        match agent_search {
            Some(req) => self.go(Phase::VerifyAgent, req),
            None => self.verified(Ok(())),
        }
    }

    fn on_agent_read(&mut self, resp: &HttpResponse) {
        let agent_id = self.the_agent().map(|a| a.agent_id.clone()).unwrap_or_default();
        let shown = if resp.status == 200 || resp.status == 204 {
            match read_agents(resp) {
                // An agent no longer listed cannot take contacts either.
                Ok(agents) => match agents.iter().find(|a| a.agent_id == agent_id) {
                    Some(a) if a.is_active => Err(format!("agent {agent_id} reads back isActive:true")),
                    _ => Ok(()),
                },
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err(self.exchange.rejected(resp).to_string())
        };
        self.verified(shown);
    }

    /// Both read-backs are in (`agent`: the agent's); again after a pause when they do not
    /// show the leaver done yet, else the report.
    fn verified(&mut self, agent: Result<(), String>) {
        let shown = match (self.account_shown.clone(), agent) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        };
        if shown.is_err() && self.verify_tries < VERIFY_TRIES {
            let pause = VERIFY_PAUSE_MS.saturating_mul(1 << self.verify_tries.saturating_sub(1).min(10));
            self.phase = Phase::VerifyPause {
                until: self.now.saturating_add(pause),
            };
            return;
        }
        let attempts = format!(" ({} reads)", self.verify_tries);
        match shown {
            Ok(()) => self.record(StepName::Verify, StepStatus::Done, None),
            Err(e) => self.record(StepName::Verify, StepStatus::Failed, Some(e + &attempts)),
        }
        let every_step = self
            .steps
            .iter()
            .all(|s| !matches!(s.status, StepStatus::Failed | StepStatus::Ambiguous | StepStatus::Held));
        let outcome = if !every_step {
            DeprovisionOutcome::Unverified
        } else if self.action == Action::Unchanged && self.the_agent().is_none_or(|a| !a.is_active) {
            DeprovisionOutcome::AlreadyDeprovisioned
        } else {
            DeprovisionOutcome::Deprovisioned
        };
        self.finish(outcome, every_step, None);
    }

    fn finish(&mut self, outcome: DeprovisionOutcome, verified: bool, conflict: Option<Conflict>) {
        let account = self.account.as_ref();
        let reached_agent = self.steps.iter().any(|s| {
            s.step == StepName::Dependencies && s.status != StepStatus::Skipped && s.status != StepStatus::NotConfigured
        });
        self.done = Some(Ok(Report {
            outcome,
            verified,
            mode: self.options.mode,
            action: self.action,
            note: self.note,
            cxone_id: account.map(|a| a.id.clone()),
            user_name: account
                .map(|a| a.user_name.clone())
                .or_else(|| self.lookup.user_name.clone()),
            agent_id: self.the_agent().map(|a| a.agent_id.clone()),
            steps: self.steps.clone(),
            dependencies: reached_agent.then(|| self.dependencies.clone()),
            licence: Licence::NotManaged,
            conflict,
        }));
    }

    /// A request after the deactivation that could not be answered: its step failed, the
    /// others go on.
    fn step_failed(&mut self, e: FlowError) {
        let detail = e.to_string();
        match self.phase.clone() {
            Phase::Agent => {
                self.agent_failed(detail);
                self.next_dependency(None);
            }
            Phase::Dependency(kind) => {
                self.dependency_failed(kind, detail);
                self.next_dependency(Some(kind));
            }
            Phase::Logout => {
                self.record(StepName::Logout, StepStatus::Failed, Some(detail));
                self.verify();
            }
            Phase::VerifyAccount => {
                self.account_shown = Err(detail);
                self.verified(Ok(()));
            }
            Phase::VerifyAgent => self.verified(Err(detail)),
            // Nothing was written yet, or the deactivation itself failed: the change failed.
            Phase::Find(_) | Phase::Deactivate | Phase::Delete | Phase::DeleteCheck | Phase::VerifyPause { .. } => {
                self.done = Some(Err(e))
            }
        }
    }

    fn handle(&mut self, resp: HttpResponse) {
        match self.phase.clone() {
            Phase::Find(by) if resp.status == 200 || (by == By::Id && resp.status == 404) => {
                match lookup::read_answer(&self.lookup, by, &resp, self.exchange.describe()) {
                    Ok(found) => self.on_found(by, found),
                    Err(e) => self.done = Some(Err(e)),
                }
            }
            Phase::Find(_) => self.done = Some(Err(self.exchange.rejected(&resp))),
            Phase::Agent => self.on_agents(&resp),
            Phase::Dependency(kind) => self.on_dependency(kind, &resp),
            Phase::Deactivate => self.on_deactivated(false, &resp),
            Phase::Delete => self.on_deactivated(true, &resp),
            Phase::DeleteCheck => self.on_delete_checked(&resp),
            Phase::Logout => self.on_logout(&resp),
            Phase::VerifyAccount => self.on_account_read(&resp),
            Phase::VerifyAgent => self.on_agent_read(&resp),
            Phase::VerifyPause { .. } => {}
        }
    }
}

impl Flow for DeprovisionFlow {
    type Output = Result<Report, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        self.now = self.now.max(now);
        if let Some(done) = &self.done {
            return Step::Done(done.clone());
        }
        if let Phase::VerifyPause { until } = self.phase {
            if until > now {
                return Step::Wait { until };
            }
            self.verify();
        }
        self.exchange
            .step(now)
            .unwrap_or_else(|| Step::Done(Err(FlowError::Ambiguous("no request to send".into()))))
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        self.now = self.now.max(now);
        if self.done.is_some() {
            return;
        }
        match self.exchange.filter(resp, now) {
            Ok(Some(resp)) => self.handle(resp),
            Ok(None) => {}
            Err(e) => self.step_failed(e),
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        self.now = self.now.max(now);
        if self.done.is_some() {
            return;
        }
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.step_failed(e);
        }
    }
}
