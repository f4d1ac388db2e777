//! The connectivity check behind `/test/validate`: a token, a search, and the schemas.
//!
//! 1. Where the server searches by `userName eq` alone (CXone), a search for a userName nobody
//!    has (a random UUID the host passes in), as Entra's Test Connection does: 200 with no
//!    account. An account in that answer is a server that ignores filters, and nothing could be
//!    matched safely. Elsewhere, the first page of users.
//! 2. `GET /Schemas`, to say whether `roles` and NICE's extension with `team` are there (what
//!    role and team writes need). A server without `/Schemas` is reported, not failed.

use super::exchange::Exchange;
use super::{Flow, FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::profile::Capabilities;
use crate::retry::RetryPolicy;
use crate::scim::{filter, ListResponse, User};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

use crate::scim::user::NICE_USER_SCHEMA as NICE_USER_EXTENSION;

const CORE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Users read where the server lists without a filter.
const FIRST_PAGE: u64 = 10;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCheck {
    /// The search sent: `userName eq "<uuid>"`, or none for a first page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    pub users_fetched: usize,
    pub total_results: u64,
    /// `None` when the server has no readable `/Schemas`.
    pub schemas: Option<SchemaSupport>,
}

/// What `/Schemas` says the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSupport {
    /// The core User schema has `roles`.
    pub roles: bool,
    /// NICE's User extension is there.
    pub nice_extension: bool,
    /// …with `team`.
    pub team: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Search,
    Schemas,
}

#[derive(Debug, Clone)]
pub struct ConnectionCheckFlow {
    base_url: String,
    search: Option<String>,
    phase: Phase,
    exchange: Exchange,
    found: Option<(usize, u64)>,
    done: Option<Result<ConnectionCheck, FlowError>>,
}

impl ConnectionCheckFlow {
    /// `probe` is a userName nobody has (a random UUID from the host), searched for where the
    /// server cannot list without a filter.
    pub fn new(base_url: &str, caps: Capabilities, probe: &str, retry: RetryPolicy, seed: u64) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let search = (!caps.filters_by_external_id()).then(|| filter::eq("userName", probe));
        let url = match &search {
            Some(f) => filter::users_filter_url(&base_url, f),
            None => filter::users_page_url(&base_url, 1, FIRST_PAGE),
        };
        let mut exchange = Exchange::new(retry, seed);
        exchange.start(HttpRequest::scim(Method::Get, url));
        Self {
            base_url,
            search,
            phase: Phase::Search,
            exchange,
            found: None,
            done: None,
        }
    }

    fn on_search(&mut self, resp: &HttpResponse) -> Result<(), FlowError> {
        if resp.status != 200 {
            return Err(self.exchange.rejected(resp));
        }
        let list: ListResponse<User> = serde_json::from_str(&resp.body)
            .map_err(|e| FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body))?;
        if let Some(search) = &self.search {
            let listed = list.resources.len() as u64;
            if listed > 0 || list.total_results > 0 {
                return Err(FlowError::Ambiguous(format!(
                    "CXone answered {search} (a userName nobody has) with {} accounts: it ignores \
                     filters, and no account could be matched safely",
                    listed.max(list.total_results)
                )));
            }
        }
        self.found = Some((list.resources.len(), list.total_results));
        self.phase = Phase::Schemas;
        self.exchange
            .start(HttpRequest::scim(Method::Get, format!("{}/Schemas", self.base_url)));
        Ok(())
    }

    fn finish(&mut self, schemas: Option<SchemaSupport>) {
        let (users_fetched, total_results) = self.found.unwrap_or_default();
        self.done = Some(Ok(ConnectionCheck {
            search: self.search.clone(),
            users_fetched,
            total_results,
            schemas,
        }));
    }
}

/// A userName nobody has, for the search: a version 4 UUID made of the host's random `a`, `b`.
pub fn probe_user_name(a: u64, b: u64) -> String {
    let a = (a & !0xf000) | 0x4000; // version 4
    let b = (b & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Reads `/Schemas` (a ListResponse of schemas, or a bare array as some servers send).
fn schema_support(body: &str) -> Option<SchemaSupport> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Schema {
        id: String,
        #[serde(default)]
        attributes: Vec<Attribute>,
    }
    #[derive(Deserialize)]
    struct Attribute {
        name: String,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answer {
        List {
            #[serde(rename = "Resources", default)]
            resources: Vec<Schema>,
        },
        Bare(Vec<Schema>),
    }
    let schemas = match serde_json::from_str::<Answer>(body).ok()? {
        Answer::List { resources } | Answer::Bare(resources) => resources,
    };
    let has = |id: &str, attribute: &str| {
        schemas
            .iter()
            .any(|s| s.id == id && s.attributes.iter().any(|a| a.name.eq_ignore_ascii_case(attribute)))
    };
    Some(SchemaSupport {
        roles: has(CORE_USER_SCHEMA, "roles"),
        nice_extension: schemas.iter().any(|s| s.id == NICE_USER_EXTENSION),
        team: has(NICE_USER_EXTENSION, "team"),
    })
}

impl Flow for ConnectionCheckFlow {
    type Output = Result<ConnectionCheck, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        match &self.done {
            Some(done) => Step::Done(done.clone()),
            None => self
                .exchange
                .step(now)
                .unwrap_or_else(|| Step::Done(Err(FlowError::Ambiguous("nothing to send".into())))),
        }
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        if self.done.is_some() {
            return;
        }
        let resp = match self.exchange.filter(resp, now) {
            Ok(None) => return,
            Ok(Some(resp)) => resp,
            Err(e) => {
                // The search is the check; the schemas only add to it.
                match self.phase {
                    Phase::Search => self.done = Some(Err(e)),
                    Phase::Schemas => self.finish(None),
                }
                return;
            }
        };
        match self.phase {
            Phase::Search => {
                if let Err(e) = self.on_search(&resp) {
                    self.done = Some(Err(e));
                }
            }
            Phase::Schemas if resp.status == 200 => self.finish(schema_support(&resp.body)),
            Phase::Schemas => self.finish(None),
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if let Err(e) = self.exchange.on_transport(err, now) {
            match self.phase {
                Phase::Search => self.done = Some(Err(e)),
                Phase::Schemas => self.finish(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::testutil::{drive, Fault, SimServer};
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "http://cxone.test/scim/v2";
    const PROBE: &str = "6f0b8f0e-7d61-4b8e-9a55-1c0f7c1e2a90";

    fn check(s: &mut SimServer, profile: Profile) -> Result<ConnectionCheck, FlowError> {
        let mut flow = ConnectionCheckFlow::new(BASE, profile.capabilities(), PROBE, RetryPolicy::default(), 1);
        drive(&mut flow, s).0
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn on_cxone_a_user_name_nobody_has_is_searched_and_must_find_nobody() {
        let mut s = SimServer::cxone();
        s.insert(r#"{"userName":"jdoe@x.io"}"#);
        let out = check(&mut s, Profile::Cxone).unwrap();
        assert_eq!(out.search.as_deref(), Some(format!("userName eq \"{PROBE}\"").as_str()));
        assert_eq!((out.users_fetched, out.total_results), (0, 0));
        assert_eq!(s.log(), ["GET /scim/v2/Users", "GET /scim/v2/Schemas"]);
        // A server that ignores the filter cannot be matched against.
        let mut s = SimServer::default();
        s.ignore_filter = true;
        s.insert(r#"{"userName":"jdoe@x.io"}"#);
        let err = check(&mut s, Profile::Cxone).unwrap_err();
        assert!(err.to_string().contains("ignores filters"), "{err}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn elsewhere_the_first_page_is_read_and_missing_schemas_are_reported_not_failed() {
        let mut s = SimServer::default();
        for i in 0..3 {
            s.insert(&format!(r#"{{"userName":"u{i}@x.io"}}"#));
        }
        let out = check(&mut s, Profile::Rfc7644).unwrap();
        assert_eq!((out.search, out.users_fetched, out.total_results), (None, 3, 3));
        assert_eq!(out.schemas, None, "the simulator has no /Schemas");
        let mut s = SimServer::default();
        s.fail_next(Fault::Status(403, None));
        assert!(matches!(
            check(&mut s, Profile::Rfc7644),
            Err(FlowError::Rejected { status: 403, .. })
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_probe_is_a_version_4_uuid() {
        assert_eq!(probe_user_name(0, 0), "00000000-0000-4000-8000-000000000000");
        let p = probe_user_name(u64::MAX, u64::MAX);
        assert_eq!(p, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_ne!(probe_user_name(1, 2), probe_user_name(2, 1));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn schemas_say_whether_roles_and_the_nice_team_are_kept() {
        let cxone = format!(
            r#"{{"totalResults":2,"Resources":[
                {{"id":"{CORE_USER_SCHEMA}","attributes":[{{"name":"userName"}},{{"name":"roles"}}]}},
                {{"id":"{NICE_USER_EXTENSION}","attributes":[{{"name":"team"}},{{"name":"loginAuthenticator"}}]}}]}}"#
        );
        assert_eq!(
            schema_support(&cxone),
            Some(SchemaSupport {
                roles: true,
                nice_extension: true,
                team: true
            })
        );
        let bare = format!(r#"[{{"id":"{CORE_USER_SCHEMA}","attributes":[{{"name":"userName"}}]}}]"#);
        assert_eq!(
            schema_support(&bare),
            Some(SchemaSupport {
                roles: false,
                nice_extension: false,
                team: false
            })
        );
        assert_eq!(schema_support("<html>"), None);
    }
}
