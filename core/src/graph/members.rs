//! The groups a user belongs to, nested groups included:
//! `GET /users/{id}/transitiveMemberOf/microsoft.graph.group`, every page of it. The cast keeps
//! directory roles and administrative units out; `$top=999` (Graph's largest page) keeps the
//! requests per person down, and the host reports them from [`MemberOfFlow::requests`].
//! Further pages come by absolute `@odata.nextLink`, followed only on Graph's origin; 429 and
//! 5xx are retried with Retry-After by the shared exchange; a user Graph no longer knows (404)
//! is an outcome of its own.

use super::wire::{foreign_link, graph_error, rejected, same_origin};
use crate::flows::exchange::Exchange;
use crate::flows::{Flow, FlowError, Step};
use crate::http::{encode_component, HttpRequest, HttpResponse, Method, TransportError};
use crate::policy::GroupInput;
use crate::retry::RetryPolicy;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// What Graph says of a user's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "groups")]
pub enum Membership {
    /// Every group the user is in, directly or through nested groups, in Graph's order.
    Groups(Vec<GroupInput>),
    /// Graph answered 404 with its error body: the user was deleted (or never existed).
    UserGone,
}

/// One page of the listing.
#[derive(Deserialize)]
struct GroupPage {
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(default)]
    value: Vec<GroupItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupItem {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// Reads every page of a user's transitive group memberships.
#[derive(Debug, Clone)]
pub struct MemberOfFlow {
    base_url: String,
    /// The page to read next.
    url: String,
    /// Pages already read, so that a link back to one of them ends the flow instead of looping.
    read: Vec<String>,
    groups: Vec<GroupInput>,
    requests: u32,
    exchange: Exchange,
    started: bool,
    outcome: Option<Result<Membership, FlowError>>,
}

impl MemberOfFlow {
    /// `base_url`: Graph's root with its version (`https://graph.microsoft.com/v1.0`);
    /// `user_id`: the user's object id (or userPrincipalName), percent-encoded into the path.
    pub fn new(base_url: &str, user_id: &str, retry: RetryPolicy, seed: u64) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let url = format!(
            "{base_url}/users/{}/transitiveMemberOf/microsoft.graph.group?$select=id,displayName&$top=999",
            encode_component(user_id)
        );
        Self {
            base_url,
            url,
            read: Vec::new(),
            groups: Vec::new(),
            requests: 0,
            exchange: Exchange::new(retry, seed),
            started: false,
            outcome: None,
        }
    }

    /// Requests sent so far, retries and every page included.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    fn request(&self) -> HttpRequest {
        HttpRequest::new(Method::Get, self.url.clone()).header("Accept", "application/json")
    }

    /// Takes one page: `Ok(true)` when there is another to read.
    fn read_page(&mut self, resp: &HttpResponse) -> Result<bool, FlowError> {
        let page: GroupPage = serde_json::from_str(&resp.body)
            .map_err(|e| FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body))?;
        for item in page.value {
            let group = GroupInput {
                display_name: item.display_name,
                id: item.id,
            };
            let repeated = group.id.is_some() && self.groups.iter().any(|g| g.id == group.id);
            if !repeated {
                self.groups.push(group);
            }
        }
        let Some(link) = page.next_link else {
            return Ok(false);
        };
        if !same_origin(&link, &self.base_url) {
            return Err(foreign_link(&self.exchange, resp.status, &link));
        }
        self.read.push(std::mem::replace(&mut self.url, link));
        if self.read.contains(&self.url) {
            return Err(FlowError::unreadable(
                self.exchange.describe(),
                resp.status,
                "@odata.nextLink points back at a page already read",
                "",
            ));
        }
        Ok(true)
    }

    fn finish(&mut self, out: Result<Membership, FlowError>) {
        self.exchange.finish();
        self.outcome = Some(out);
    }
}

impl Flow for MemberOfFlow {
    type Output = Result<Membership, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if let Some(out) = &self.outcome {
            return Step::Done(out.clone());
        }
        if !self.started {
            self.started = true;
            let req = self.request();
            self.exchange.start(req);
        }
        self.exchange.step(now).unwrap_or(Step::Wait { until: now + 1 })
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        if self.outcome.is_some() {
            return;
        }
        self.requests += 1;
        let resp = match self.exchange.filter(resp, now) {
            Ok(Some(resp)) => resp,
            Ok(None) => return,
            Err(e) => return self.finish(Err(e)),
        };
        match resp.status {
            200 => match self.read_page(&resp) {
                Ok(true) => {
                    let req = self.request();
                    self.exchange.start(req);
                }
                Ok(false) => {
                    let groups = std::mem::take(&mut self.groups);
                    self.finish(Ok(Membership::Groups(groups)));
                }
                Err(e) => self.finish(Err(e)),
            },
            // Only Graph's own 404: a bare one (a proxy, a wrong base URL) must not read as a
            // user who left.
            404 if graph_error(&resp).is_some() => self.finish(Ok(Membership::UserGone)),
            _ => {
                let err = rejected(&self.exchange, &resp);
                self.finish(Err(err));
            }
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if self.outcome.is_some() {
            return;
        }
        self.requests += 1;
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.finish(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "https://graph.microsoft.com/v1.0";
    const USER: &str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
    const SAMPLE: &str = include_str!("../../tests/fixtures/graph_transitive_member_of.json");
    const NOT_FOUND: &str = r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource '87d349ed-44d7-43e1-9a83-5f2406dee5bd' does not exist or one of its queried reference-property objects are not present.","innerError":{"date":"2024-05-01T10:00:00","request-id":"r","client-request-id":"r"}}}"#;

    fn flow() -> MemberOfFlow {
        MemberOfFlow::new(BASE, USER, RetryPolicy::default(), 7)
    }

    fn first_url() -> String {
        format!("{BASE}/users/{USER}/transitiveMemberOf/microsoft.graph.group?$select=id,displayName&$top=999")
    }

    /// The documented sample with its first group replaced and, optionally, a next link.
    fn page(group: (&str, &str), next: Option<&str>) -> String {
        let mut doc: Value = serde_json::from_str(SAMPLE).unwrap();
        doc["value"][0] = json!({"displayName": group.0, "id": group.1});
        if let Some(next) = next {
            doc["@odata.nextLink"] = json!(next);
        }
        doc.to_string()
    }

    /// Runs the flow against canned answers, returning the output and the URLs asked for.
    fn run(f: &mut MemberOfFlow, answers: Vec<HttpResponse>) -> (Result<Membership, FlowError>, Vec<String>) {
        let mut answers = answers.into_iter();
        let mut urls = Vec::new();
        let mut now = 1_000;
        for _ in 0..50 {
            match f.next_step(now) {
                Step::Send(req) => {
                    assert_eq!(req.header_value("accept"), Some("application/json"));
                    assert_eq!(req.header_value("authorization"), None, "the host adds the token");
                    urls.push(req.url.clone());
                    f.on_response(answers.next().expect("an answer for every request"), now);
                }
                Step::SendAll(_) => panic!("this flow sends one request at a time"),
                Step::Wait { until } => now = until,
                Step::Done(out) => {
                    assert_eq!(f.next_step(now), Step::Done(out.clone()), "the outcome stays");
                    return (out, urls);
                }
            }
            now += 10;
        }
        panic!("the flow did not finish");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_documented_sample() {
        let mut f = flow();
        let (out, urls) = run(&mut f, vec![HttpResponse::new(200, SAMPLE)]);
        assert_eq!(urls, [first_url()]);
        assert_eq!(
            out.unwrap(),
            Membership::Groups(vec![GroupInput {
                display_name: Some("Contoso-tier Query Notification".into()),
                id: Some("11111111-2222-3333-4444-555555555555".into()),
            }])
        );
        assert_eq!(f.requests(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn follows_the_next_link_to_the_last_page() {
        let next = format!("{}&$skiptoken=RFNwdAIAAQAAAA", first_url());
        let mut f = flow();
        let (out, urls) = run(
            &mut f,
            vec![
                HttpResponse::new(200, page(("cxone-agent", "g1"), Some(&next))),
                HttpResponse::new(200, page(("All Staff", "g2"), None)),
            ],
        );
        assert_eq!(urls, [first_url(), next]);
        let Membership::Groups(groups) = out.unwrap() else {
            panic!("groups expected")
        };
        let names: Vec<_> = groups.iter().map(|g| g.display_name.as_deref().unwrap()).collect();
        assert_eq!(names, ["cxone-agent", "All Staff"]);
        assert_eq!(f.requests(), 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_next_link_to_another_origin_is_refused() {
        let mut f = flow();
        let evil = "https://graph.evil.example/v1.0/users/x/transitiveMemberOf?$skiptoken=abc";
        let (out, urls) = run(
            &mut f,
            vec![HttpResponse::new(200, page(("cxone-agent", "g1"), Some(evil)))],
        );
        assert_eq!(urls.len(), 1, "the foreign link is not asked for");
        let text = out.unwrap_err().to_string();
        assert!(text.contains("another origin: https://graph.evil.example/"), "{text}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_link_back_to_a_page_already_read_ends_the_flow() {
        let mut f = flow();
        let (out, urls) = run(
            &mut f,
            vec![HttpResponse::new(200, page(("cxone-agent", "g1"), Some(&first_url())))],
        );
        assert_eq!(urls.len(), 1);
        assert!(out.unwrap_err().to_string().contains("already read"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn graphs_404_means_the_user_is_gone() {
        let mut f = flow();
        let (out, _) = run(&mut f, vec![HttpResponse::new(404, NOT_FOUND)]);
        assert_eq!(out.unwrap(), Membership::UserGone);
        // A 404 without Graph's error body is not taken for a leaver.
        let (out, _) = run(&mut flow(), vec![HttpResponse::new(404, "<html>Not Found</html>")]);
        assert_eq!(out.unwrap_err().upstream_status(), Some(404));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn throttling_is_waited_out_and_counted() {
        let throttled = HttpResponse::new(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"Please retry again later."}}"#,
        )
        .with_header("Retry-After", "2");
        let mut f = flow();
        let mut answers = vec![throttled, HttpResponse::new(200, SAMPLE)].into_iter();
        let mut sent_at = Vec::new();
        let mut now = 1_000;
        let out = loop {
            match f.next_step(now) {
                Step::Send(_) => {
                    sent_at.push(now);
                    f.on_response(answers.next().unwrap(), now);
                }
                Step::SendAll(_) => panic!("this flow sends one request at a time"),
                Step::Wait { until } => now = until,
                Step::Done(out) => break out,
            }
        };
        assert!(matches!(out.unwrap(), Membership::Groups(g) if g.len() == 1));
        assert_eq!(f.requests(), 2);
        assert!(sent_at[1] >= sent_at[0] + 2_000, "Retry-After kept: {sent_at:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refusals_carry_graphs_error_and_the_id_is_encoded() {
        let mut f = MemberOfFlow::new(&format!("{BASE}/"), "ana b/c#d@contoso.com", RetryPolicy::default(), 1);
        let denied = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#;
        let (out, urls) = run(&mut f, vec![HttpResponse::new(403, denied)]);
        assert!(
            urls[0].starts_with(&format!(
                "{BASE}/users/ana%20b%2Fc%23d%40contoso.com/transitiveMemberOf/"
            )),
            "{}",
            urls[0]
        );
        let text = out.unwrap_err().to_string();
        assert!(
            text.contains("Authorization_RequestDenied: Insufficient privileges"),
            "{text}"
        );
    }
}
