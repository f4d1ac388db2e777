//! A simulated CXone for flow tests: an in-memory SCIM user store with a token endpoint,
//! injectable faults, and a driver on a virtual clock.

use crate::flows::{block_on, Driven, Flow, Host};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::scim::{ScimError, User};
use crate::UnixMillis;
use serde_json::{json, Value};
use std::collections::VecDeque;

pub const SIM_TOKEN_URL: &str = "http://idp.test/oauth/token";
pub const SIM_ACCESS_TOKEN: &str = "sim-access-token";
/// Where the simulator serves NICE's Admin API.
pub const SIM_ADMIN_BASE: &str = "http://cxone.test/incontactapi/services/v31.0";
const ADMIN_PREFIX: &str = "/incontactapi/services/v31.0";
const START: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer the next request with this status (and `Retry-After`).
    Status(u16, Option<&'static str>),
    /// Answer the next request with this status and body.
    Body(u16, &'static str),
    /// Answer the next request with this 3xx status and `Location`.
    Redirect(u16, &'static str),
    /// The next request gets no answer.
    Transport,
    /// The user vanishes just before the next DELETE.
    DeleteAfterLookup,
}

/// What the simulator does with the next Bulk operation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BulkPlan {
    Normal,
    /// Not applied; answers this status.
    Fail(u16),
    /// Applied, but left out of the answer.
    Drop,
}

#[derive(Debug, Default)]
pub struct SimServer {
    users: Vec<Value>,
    next_id: u32,
    faults: VecDeque<Fault>,
    log: Vec<String>,
    require_token: bool,
    reject_tokens: bool,
    /// Bulk answers: HTTP status (200 when 0) and whether results come back reversed.
    pub bulk_status: u16,
    pub bulk_reversed: bool,
    /// `bulk.maxOperations` / `maxPayloadSize` in ServiceProviderConfig (0: not said).
    pub max_operations: usize,
    pub max_payload: usize,
    /// The bulkIds of every Bulk request received.
    pub bulk_batches: Vec<Vec<String>>,
    bulk_plan: VecDeque<BulkPlan>,
    hide_limits: bool,
    /// Answers filtered listings with every user, as a broken server might.
    pub ignore_filter: bool,
    /// Answers every listing from its first page, whatever `startIndex` asks.
    pub ignore_start_index: bool,
    /// The `filter` of every listing asked for, decoded, in order.
    pub filters: Vec<String>,
    /// The virtual time of the request being handled (set by [`drive`]).
    now: u64,
    /// Token bucket on /scim/v2: (requests per second, burst), level, last refill.
    rate_limit: Option<(f64, f64)>,
    bucket: f64,
    refilled: u64,
    /// Requests answered 429 by the rate limit.
    pub throttled: u32,
    /// With the rate limit, every /scim/v2 answer tells the bucket as `RateLimit-Policy` and
    /// `RateLimit` (draft-ietf-httpapi-ratelimit-headers), as the stand-in does.
    pub quota_headers: bool,
    /// Virtual time one request takes (5 ms when 0).
    pub service_ms: u64,
    /// `expires_in` of the tokens issued (3600 when `None`).
    pub token_expires_in: Option<u64>,
    /// Behave as NICE publishes CXone: no `/Bulk` or `/ServiceProviderConfig`, `DELETE` answers
    /// 404 and deletes nothing, listings need a `userName eq` filter and nothing else.
    pub cxone: bool,
    /// Admin API: the agents logged in (by agentId), and each agent's skills, groups and
    /// number of scheduled callbacks (by agentId).
    pub logged_in: std::collections::BTreeSet<String>,
    pub dependencies: std::collections::BTreeMap<String, (Vec<String>, Vec<String>, usize)>,
    /// Extra agents the Admin API lists besides the users' own (a second agent for a name).
    pub extra_agents: Vec<Value>,
    /// The Admin API keeps answering `isActive:true` for agents whose users are inactive.
    pub agents_stay_active: bool,
    /// Admin API requests whose path ends with the key are answered with the status.
    pub admin_fails: std::collections::BTreeMap<&'static str, u16>,
}

fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> HttpResponse {
    HttpResponse::new(
        status,
        serde_json::to_string(&ScimError::new(status, scim_type, detail)).unwrap_or_default(),
    )
}

impl SimServer {
    /// Sets the virtual time of the next requests (what [`drive`] does before each send).
    pub fn now_for_tests(&mut self, now: u64) {
        self.now = now;
    }

    /// A simulated CXone as NICE publishes it (see [`SimServer::cxone`]).
    pub fn cxone() -> Self {
        Self {
            cxone: true,
            ..Self::default()
        }
    }

    pub fn with_auth() -> Self {
        Self {
            require_token: true,
            ..Self::default()
        }
    }

    /// The next Bulk operations, in order: `None` processed normally, `Some(s)` refused with `s`.
    pub fn queue_bulk_statuses(&mut self, plan: &[Option<u16>]) {
        self.bulk_plan
            .extend(plan.iter().map(|p| p.map_or(BulkPlan::Normal, BulkPlan::Fail)));
    }

    /// The `n`th queued Bulk operation is applied but left out of its answer.
    pub fn drop_result_of_bulk_op(&mut self, n: usize) {
        self.bulk_plan[n] = BulkPlan::Drop;
    }

    /// Answer 429 + Retry-After (whole seconds, rounded up) beyond `per_second` requests.
    pub fn limit_rate(&mut self, per_second: f64, burst: f64) {
        self.rate_limit = Some((per_second, burst));
        self.bucket = burst;
    }

    fn take_token(&mut self) -> Option<u64> {
        let (rate, burst) = self.rate_limit?;
        let elapsed = self.now.saturating_sub(self.refilled) as f64 / 1000.0;
        self.bucket = (self.bucket + elapsed * rate).min(burst);
        self.refilled = self.now;
        if self.bucket >= 1.0 {
            self.bucket -= 1.0;
            return None;
        }
        self.throttled += 1;
        Some(((1.0 - self.bucket) / rate).ceil().max(1.0) as u64)
    }

    /// Enforce payload/operation limits without advertising them.
    pub fn hide_limits(&mut self) {
        self.hide_limits = true;
    }

    /// Every SCIM request is refused with 401, whatever its token.
    pub fn reject_every_token(&mut self) {
        self.reject_tokens = true;
    }

    pub fn insert(&mut self, json: &str) -> String {
        self.next_id += 1;
        let id = format!("u{}", self.next_id);
        let mut v: Value = serde_json::from_str(json).unwrap();
        v["id"] = json!(id);
        self.users.push(v);
        id
    }

    /// A user under an id of the test's choosing (a broken or hostile server's).
    pub fn insert_as(&mut self, id: &str, json: &str) {
        let mut v: Value = serde_json::from_str(json).unwrap();
        v["id"] = json!(id);
        self.users.push(v);
    }

    pub fn fail_next(&mut self, fault: Fault) {
        self.faults.push_back(fault);
    }

    pub fn log(&self) -> Vec<String> {
        self.log.clone()
    }

    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    pub fn count(&self) -> usize {
        self.users.len()
    }

    pub fn users(&self) -> Vec<User> {
        self.users
            .iter()
            .map(|v| serde_json::from_value(v.clone()).unwrap())
            .collect()
    }

    pub fn user(&self, id: &str) -> User {
        self.users().into_iter().find(|u| u.id.as_deref() == Some(id)).unwrap()
    }

    pub fn handle(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let resp = self.answer(req)?;
        match self.rate_limit {
            Some((rate, burst)) if self.quota_headers && req.url.contains("/scim/v2") => {
                // Whole tokens left, and seconds until the next one (rounded up).
                let remaining = (self.bucket + 1e-9).floor();
                let until = if self.bucket >= burst - 1e-9 {
                    0.0
                } else {
                    (remaining + 1.0 - self.bucket) / rate
                };
                let reset = (until - 1e-9).ceil().max(if remaining > 0.0 { 0.0 } else { 1.0 });
                let window = (burst / rate - 1e-9).ceil().max(1.0);
                let (q, w, r, t) = (burst as u64, window as u64, remaining as u64, reset as u64);
                Ok(resp
                    .with_header("RateLimit-Policy", &format!("\"default\";q={q};w={w}"))
                    .with_header("RateLimit", &format!("\"default\";r={r};t={t}")))
            }
            _ => Ok(resp),
        }
    }

    fn answer(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let (path, query) = {
            let rest = req.url.split_once("://").map_or(req.url.as_str(), |(_, r)| r);
            let rest = &rest[rest.find('/').unwrap_or(rest.len())..];
            rest.split_once('?')
                .map_or((rest.to_string(), String::new()), |(p, q)| {
                    (p.to_string(), q.to_string())
                })
        };
        self.log.push(format!("{} {path}", req.method.as_str()));
        if let Some(f) = query.split('&').find_map(|kv| kv.strip_prefix("filter=")) {
            self.filters.push(percent_decode(f));
        }
        match self.faults.front().copied() {
            Some(Fault::DeleteAfterLookup) if req.method == Method::Delete => {
                self.faults.pop_front();
                let id = path.rsplit('/').next().unwrap_or_default().to_string();
                self.users.retain(|u| u["id"] != json!(id));
            }
            Some(Fault::DeleteAfterLookup) | None => {}
            Some(f) => {
                self.faults.pop_front();
                return match f {
                    Fault::Status(s, ra) => {
                        let resp = scim_error(s, None, "injected");
                        Ok(match ra {
                            Some(v) => resp.with_header("Retry-After", v),
                            None => resp,
                        })
                    }
                    Fault::Body(s, body) => Ok(HttpResponse::new(s, body)),
                    Fault::Redirect(s, location) => Ok(HttpResponse::new(s, "").with_header("Location", location)),
                    Fault::Transport => Err(TransportError("connection reset".into())),
                    Fault::DeleteAfterLookup => unreachable!(),
                };
            }
        }
        if req.url == SIM_TOKEN_URL {
            assert!(req
                .body
                .as_deref()
                .unwrap_or("")
                .contains("grant_type=client_credentials"));
            return Ok(HttpResponse::new(
                200,
                json!({"access_token": SIM_ACCESS_TOKEN, "token_type": "Bearer", "expires_in": self.token_expires_in.unwrap_or(3600)})
                    .to_string(),
            ));
        }
        if let Some(rest) = path.strip_prefix(ADMIN_PREFIX) {
            return Ok(self.admin(req.method, rest, &query));
        }
        if req.url.contains("/scim/v2") {
            if let Some(secs) = self.take_token() {
                return Ok(scim_error(429, None, "rate limited").with_header("Retry-After", &secs.to_string()));
            }
        }
        if self.reject_tokens
            || self.require_token && req.header_value("authorization") != Some(&format!("Bearer {SIM_ACCESS_TOKEN}"))
        {
            return Ok(scim_error(401, None, "bad token"));
        }
        let body: Value = req
            .body
            .as_deref()
            .map(|b| serde_json::from_str(b).unwrap())
            .unwrap_or(Value::Null);
        let id = path.strip_prefix("/scim/v2/Users/").map(str::to_string);
        if self.cxone {
            if let Some(refused) = self.cxone_refuses(req.method, &path, &query) {
                return Ok(refused);
            }
        }
        if path == "/scim/v2/ServiceProviderConfig" {
            let mut bulk = json!({"supported": true});
            if self.max_operations > 0 && !self.hide_limits {
                bulk["maxOperations"] = json!(self.max_operations);
            }
            if self.max_payload > 0 && !self.hide_limits {
                bulk["maxPayloadSize"] = json!(self.max_payload);
            }
            return Ok(HttpResponse::new(200, json!({"bulk": bulk}).to_string()));
        }
        if path == "/scim/v2/Bulk" {
            return Ok(self.bulk(&body, req.body.as_deref().map_or(0, str::len)));
        }
        if id.is_none() && path != "/scim/v2/Users" {
            return Ok(scim_error(404, None, "no such endpoint"));
        }
        Ok(match (req.method, id) {
            (Method::Get, None) => self.list(&query),
            (Method::Get, Some(id)) => match self.users.iter().find(|u| u["id"] == json!(id)) {
                Some(u) => HttpResponse::new(200, u.to_string()),
                None => scim_error(404, None, "not found"),
            },
            (Method::Post, None) => self.create(body),
            (Method::Patch, Some(id)) => self.patch(&id, &body),
            (Method::Delete, Some(id)) => {
                let before = self.users.len();
                self.users.retain(|u| u["id"] != json!(id));
                if before == self.users.len() {
                    scim_error(404, None, "not found")
                } else {
                    HttpResponse::new(204, "")
                }
            }
            _ => scim_error(404, None, "no such endpoint"),
        })
    }

    fn bulk(&mut self, body: &Value, size: usize) -> HttpResponse {
        if self.max_payload > 0 && size > self.max_payload {
            return scim_error(413, None, "payload too large");
        }
        let ops = body["Operations"].as_array().cloned().unwrap_or_default();
        if self.max_operations > 0 && ops.len() > self.max_operations {
            return scim_error(413, None, "too many operations");
        }
        self.bulk_batches.push(
            ops.iter()
                .map(|o| o["bulkId"].as_str().unwrap_or_default().to_string())
                .collect(),
        );
        let mut results = Vec::new();
        for op in ops {
            let bulk_id = op["bulkId"].clone();
            let plan = self.bulk_plan.pop_front().unwrap_or(BulkPlan::Normal);
            if let BulkPlan::Fail(status) = plan {
                results.push(json!({"bulkId": bulk_id, "status": status.to_string(), "response": {"status": status.to_string(), "detail": "injected"}}));
                continue;
            }
            let path = op["path"].as_str().unwrap_or_default();
            let resp = match op["method"].as_str() {
                Some("POST") => self.create(op["data"].clone()),
                Some("PATCH") => self.patch(path.trim_start_matches("/Users/"), &op["data"]),
                _ => scim_error(400, Some("invalidSyntax"), "unsupported bulk method"),
            };
            if plan == BulkPlan::Drop {
                continue;
            }
            let mut result = json!({"method": op["method"], "bulkId": bulk_id, "status": resp.status.to_string()});
            if resp.status == 201 {
                let id = serde_json::from_str::<Value>(&resp.body).unwrap()["id"].clone();
                result["location"] = json!(format!("http://cxone.test/scim/v2/Users/{}", id.as_str().unwrap()));
            } else if resp.status >= 400 {
                result["response"] = serde_json::from_str(&resp.body).unwrap();
            }
            results.push(result);
        }
        if self.bulk_reversed {
            results.reverse();
        }
        let status = if self.bulk_status == 0 { 200 } else { self.bulk_status };
        HttpResponse::new(
            status,
            json!({"schemas": [crate::scim::bulk::BULK_RESPONSE_SCHEMA], "Operations": results}).to_string(),
        )
    }

    /// The agentId of the user `id` (`u7` → `1007`).
    pub fn agent_id_of(&self, id: &str) -> String {
        format!("{}", 1000 + id.trim_start_matches('u').parse::<u32>().unwrap_or(0))
    }

    fn agents(&self) -> Vec<Value> {
        let mut agents: Vec<Value> = self
            .users
            .iter()
            .map(|u| {
                let id = u["id"].as_str().unwrap_or_default();
                json!({
                    "agentId": self.agent_id_of(id).parse::<u64>().unwrap(),
                    "userName": u["userName"], "userID": id,
                    "isActive": self.agents_stay_active || u["active"].as_bool().unwrap_or(true),
                    "teamId": 5, "teamName": "Default Team",
                })
            })
            .collect();
        agents.extend(self.extra_agents.iter().cloned());
        agents
    }

    /// NICE's Admin API over the users: search (a contains-search), logout, dependencies.
    fn admin(&mut self, method: Method, path: &str, query: &str) -> HttpResponse {
        let agents = self.agents();
        let known = |id: &str| {
            agents
                .iter()
                .any(|a| a["agentId"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
        };
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let Some((_, status)) = self.admin_fails.iter().find(|(k, _)| path.ends_with(*k)) {
            return HttpResponse::new(*status, r#"{"error":"injected"}"#);
        }
        match (method, parts.as_slice()) {
            (Method::Get, ["agents"]) => {
                let wanted = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("searchString="))
                    .map(percent_decode)
                    .unwrap_or_default()
                    .to_lowercase();
                let found: Vec<&Value> = agents
                    .iter()
                    .filter(|a| {
                        a["userName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_lowercase()
                            .contains(&wanted)
                    })
                    .collect();
                if found.is_empty() {
                    return HttpResponse::new(204, "");
                }
                HttpResponse::new(200, json!({"totalRecords": found.len(), "agents": found}).to_string())
            }
            (Method::Post, ["agents", id, "logout"]) if known(id) => {
                self.logged_in.remove(*id);
                HttpResponse::new(202, "")
            }
            (Method::Get, ["agents", id, kind]) if known(id) => {
                let (skills, groups, callbacks) = self.dependencies.get(*id).cloned().unwrap_or_default();
                let body = match *kind {
                    "skills" if !skills.is_empty() => json!({"agentSkillAssignments": skills.iter().enumerate()
                        .map(|(i, n)| json!({"skillId": 100 + i, "skillName": n, "isActive": true})).collect::<Vec<_>>()}),
                    "groups" if !groups.is_empty() => json!({"agentGroups": groups.iter().enumerate()
                        .map(|(i, n)| json!({"groupId": 200 + i, "groupName": n})).collect::<Vec<_>>()}),
                    "scheduled-callbacks" if callbacks > 0 => json!({"callbacks": (0..callbacks)
                        .map(|i| json!({"callbackId": 300 + i})).collect::<Vec<_>>()}),
                    "skills" | "groups" | "scheduled-callbacks" => return HttpResponse::new(204, ""),
                    _ => return HttpResponse::new(404, r#"{"error":"no such endpoint"}"#),
                };
                HttpResponse::new(200, body.to_string())
            }
            _ => HttpResponse::new(404, r#"{"error":"not found"}"#),
        }
    }

    /// What CXone does not offer, answered as it answers it.
    fn cxone_refuses(&self, method: Method, path: &str, query: &str) -> Option<HttpResponse> {
        let users = path == "/scim/v2/Users";
        if !users && !path.starts_with("/scim/v2/Users/") || method == Method::Delete {
            return Some(scim_error(404, None, "not found"));
        }
        let filter = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("filter="))
            .map(percent_decode);
        let by_user_name = filter.as_deref().is_some_and(|f| {
            f.strip_prefix("userName eq ")
                .is_some_and(|v| serde_json::from_str::<String>(v).is_ok())
        });
        (users && method == Method::Get && !by_user_name)
            .then(|| scim_error(400, Some("invalidFilter"), "search by userName only"))
    }

    fn list(&self, query: &str) -> HttpResponse {
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(percent_decode)
        };
        let matches: Vec<&Value> = match param("filter").filter(|_| !self.ignore_filter) {
            Some(f) => {
                let clauses: Vec<(String, String)> = f
                    .split(" or ")
                    .map(|c| {
                        let (attr, quoted) = c.split_once(" eq ").unwrap();
                        (attr.to_string(), serde_json::from_str(quoted).unwrap())
                    })
                    .collect();
                self.users
                    .iter()
                    .filter(|u| {
                        clauses
                            .iter()
                            .any(|(attr, want)| match (attr.as_str(), u[attr.as_str()].as_str()) {
                                ("userName", Some(v)) => v.eq_ignore_ascii_case(want),
                                (_, Some(v)) => v == want,
                                _ => false,
                            })
                    })
                    .collect()
            }
            None => self.users.iter().collect(),
        };
        let count: usize = param("count").map_or(100, |c| c.parse().unwrap()).min(self.page_cap());
        let start: usize = match param("startIndex") {
            Some(c) if !self.ignore_start_index => c.parse().unwrap(),
            _ => 1,
        };
        let page: Vec<&Value> = matches.iter().skip(start - 1).take(count).copied().collect();
        HttpResponse::new(
            200,
            json!({"schemas":[crate::scim::LIST_RESPONSE_SCHEMA],"totalResults": matches.len(), "Resources": page})
                .to_string(),
        )
    }

    /// Servers cap page sizes; the simulator caps at 7 to exercise paging.
    fn page_cap(&self) -> usize {
        7
    }

    fn create(&mut self, body: Value) -> HttpResponse {
        let name = body["userName"].as_str().unwrap_or_default().to_lowercase();
        if self
            .users
            .iter()
            .any(|u| u["userName"].as_str().unwrap_or_default().to_lowercase() == name)
        {
            return scim_error(409, Some("uniqueness"), "userName taken");
        }
        let id = self.insert(&body.to_string());
        HttpResponse::new(
            201,
            self.users.iter().find(|u| u["id"] == json!(id)).unwrap().to_string(),
        )
    }

    fn patch(&mut self, id: &str, body: &Value) -> HttpResponse {
        // userName stays unique (RFC 7643 §4.1.1), whichever way it is changed.
        for op in body["Operations"].as_array().into_iter().flatten() {
            let renamed = match op["path"].as_str() {
                Some("userName") => op["value"].as_str(),
                None => op["value"]["userName"].as_str(),
                _ => None,
            };
            if let Some(name) = renamed.map(str::to_lowercase) {
                let taken = self
                    .users
                    .iter()
                    .any(|u| u["id"] != json!(id) && u["userName"].as_str().unwrap_or_default().to_lowercase() == name);
                if taken {
                    return scim_error(409, Some("uniqueness"), "userName taken");
                }
            }
        }
        let Some(user) = self.users.iter_mut().find(|u| u["id"] == json!(id)) else {
            return scim_error(404, None, "not found");
        };
        for op in body["Operations"].as_array().unwrap() {
            let path = op["path"].as_str().unwrap();
            let value = op["value"].clone();
            match (op["op"].as_str().unwrap(), path) {
                (_, p) if p.contains("[0]") => {
                    return scim_error(400, Some("invalidPath"), "positional paths are not SCIM")
                }
                ("replace", r#"emails[type eq "work"].value"#) => {
                    for e in user["emails"].as_array_mut().unwrap() {
                        if e["type"] == "work" {
                            e["value"] = value.clone();
                        }
                    }
                }
                ("add", "emails") => {
                    let mut all = user["emails"].as_array().cloned().unwrap_or_default();
                    all.extend(value.as_array().unwrap().iter().cloned());
                    user["emails"] = json!(all);
                }
                ("remove", p) if p.starts_with("urn:") => {
                    let (urn, attr) = p.rsplit_once(':').unwrap();
                    if let Some(ext) = user[urn].as_object_mut() {
                        ext.remove(attr);
                    }
                }
                ("remove", p) => {
                    user.as_object_mut().unwrap().remove(p);
                }
                (_, p) if p.starts_with("urn:") => {
                    // An extension's attribute (RFC 7644 §3.10): `urn:…:User:attr`.
                    let (urn, attr) = p.rsplit_once(':').unwrap();
                    if !user[urn].is_object() {
                        user[urn] = json!({});
                    }
                    user[urn][attr] = value;
                }
                (_, p) => match p.split_once('.') {
                    Some((outer, inner)) => {
                        if !user[outer].is_object() {
                            user[outer] = json!({});
                        }
                        user[outer][inner] = value;
                    }
                    None => user[p] = value,
                },
            }
        }
        HttpResponse::new(204, "")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The simulator as a [`Host`] on a virtual clock: each request (or several sent at once)
/// costs the server's service time, at least 5 ms; waits jump the clock.
pub struct Virtual<'a> {
    pub server: &'a mut SimServer,
    pub now: u64,
    steps: u32,
}

impl<'a> Virtual<'a> {
    pub fn new(server: &'a mut SimServer) -> Self {
        Self {
            server,
            now: START,
            steps: 0,
        }
    }
}

impl Host for Virtual<'_> {
    fn now(&self) -> UnixMillis {
        self.now
    }

    fn admit(&mut self, _reqs: &[HttpRequest]) -> bool {
        self.steps += 1;
        assert!(self.steps <= 1000, "flow did not finish in 1000 steps");
        true
    }

    async fn send_all(&mut self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        self.server.now = self.now;
        self.now += self.server.service_ms.max(5);
        reqs.iter().map(|r| self.server.handle(r)).collect()
    }

    async fn sleep_until(&mut self, until: UnixMillis) -> bool {
        assert!(until > self.now, "a wait must move time forward");
        self.now = until;
        true
    }
}

/// Runs a flow against the simulator on a virtual clock; returns the outcome and the virtual
/// time it took (ms).
pub fn drive<F: Flow>(flow: &mut F, server: &mut SimServer) -> (F::Output, u64) {
    let mut host = Virtual::new(server);
    match block_on(crate::flows::drive(flow, &mut host)) {
        Driven::Done(out) => (out, host.now - START),
        Driven::Stopped => panic!("the virtual host never stops a flow"),
    }
}

/// What [`FirstPageFlow`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstPage {
    pub users_fetched: usize,
    pub total_results: u64,
}

/// A flow of one `GET /Users` page through the shared exchange (retries, redirects, waits):
/// the smallest flow there is, for the tests of what wraps or drives flows.
#[derive(Debug, Clone)]
pub struct FirstPageFlow {
    exchange: crate::flows::exchange::Exchange,
    done: Option<Result<FirstPage, crate::flows::FlowError>>,
}

impl FirstPageFlow {
    pub fn new(base_url: &str, count: u64, retry: crate::retry::RetryPolicy, seed: u64) -> Self {
        let mut exchange = crate::flows::exchange::Exchange::new(retry, seed);
        exchange.start(HttpRequest::scim(
            Method::Get,
            crate::scim::filter::users_page_url(base_url, 1, count),
        ));
        Self { exchange, done: None }
    }

    fn finish(&mut self, result: Result<FirstPage, crate::flows::FlowError>) {
        self.exchange.finish();
        self.done = Some(result);
    }

    fn handle(&mut self, resp: HttpResponse) {
        let read = match resp.status {
            200 => serde_json::from_str::<crate::scim::ListResponse<User>>(&resp.body)
                .map(|l| FirstPage {
                    users_fetched: l.resources.len(),
                    total_results: l.total_results,
                })
                .map_err(|e| crate::flows::FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body)),
            _ => Err(self.exchange.rejected(&resp)),
        };
        self.finish(read);
    }
}

crate::flows::exchange::exchange_flow!(FirstPageFlow => FirstPage);

#[cfg(test)]
mod first_page_tests {
    use super::*;
    use crate::flows::FlowError;
    use crate::retry::RetryPolicy;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn counts_the_first_page() {
        let mut s = SimServer::default();
        for i in 0..3 {
            s.insert(&format!(r#"{{"userName":"u{i}@x.io"}}"#));
        }
        let mut flow = FirstPageFlow::new("http://cxone.test/scim/v2", 2, RetryPolicy::default(), 1);
        let page = drive(&mut flow, &mut s).0.unwrap();
        assert_eq!(
            page,
            FirstPage {
                users_fetched: 2,
                total_results: 3
            }
        );
        let mut s = SimServer::default();
        s.fail_next(Fault::Status(403, None));
        let mut flow = FirstPageFlow::new("http://cxone.test/scim/v2", 2, RetryPolicy::default(), 1);
        assert!(matches!(
            drive(&mut flow, &mut s).0,
            Err(FlowError::Rejected { status: 403, .. })
        ));
    }
}
