//! Reading a `/users/delta` round one page at a time. Each page is a flow of its own: the host
//! applies the page's changes, stores where to go on (the next page, or the round's deltaLink
//! once every change before it was applied, held or parked), and reads on from there later —
//! in this invocation or another. Graph forgetting a cursor (410 Gone, `syncStateNotFound`,
//! `resyncRequired`) starts a full resync from the beginning; 429 and 5xx are retried with
//! Retry-After by the shared exchange.

use super::delta::{DeltaPage, DeltaUser};
use crate::flows::exchange::Exchange;
use crate::flows::{Flow, FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::retry::RetryPolicy;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// Where a sync stands between pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "at", content = "link")]
pub enum Position {
    /// No cursor: the next read starts a full round.
    Start,
    /// Inside a round: the `@odata.nextLink` still to read.
    Page(String),
    /// Between rounds: the `@odata.deltaLink` of the last complete one.
    Round(String),
}

/// Why Graph says a user left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// `@removed.reason = changed`: soft-deleted (restorable for 30 days) or out of scope.
    Changed,
    /// `@removed.reason = deleted`: deleted for good.
    Deleted,
}

/// One entry of a page, as the sync will treat it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Change {
    /// A new user, or the properties of a user that changed (only those, after the first round).
    Upsert {
        user: Box<DeltaUser>,
    },
    Removed {
        id: String,
        removal: Removal,
    },
}

/// What one page gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageRead {
    pub changes: Vec<Change>,
    /// Where to read on: the next page, or (last page) the cursor of the next round.
    pub next: Position,
    /// Graph no longer knew the position it was asked for: this page begins a full round, and
    /// users missing from it must not be taken for leavers.
    pub resynced: bool,
}

/// Reads the page at a position.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaReader {
    base_url: String,
    select: Vec<String>,
    position: Position,
    resynced: bool,
    exchange: Exchange,
    /// Not kept: a restored reader asks for its page again.
    #[serde(skip)]
    started: bool,
    #[serde(skip)]
    outcome: Option<Result<PageRead, FlowError>>,
}

/// Graph's error body: `{"error":{"code","message"}}`.
#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorInner,
}

#[derive(Deserialize)]
struct GraphErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn graph_error(resp: &HttpResponse) -> Option<GraphErrorInner> {
    serde_json::from_str::<GraphErrorBody>(&resp.body).ok().map(|b| b.error)
}

/// The cursor is gone: Graph keeps delta state for a limited time (7 days for directory
/// objects) and answers 410, or an error naming the lost sync state.
fn cursor_lost(resp: &HttpResponse) -> bool {
    resp.status == 410
        || graph_error(resp).is_some_and(|e| {
            matches!(
                e.code.as_str(),
                "syncStateNotFound" | "resyncRequired" | "syncStateInvalid"
            )
        })
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + host_end])
}

impl DeltaReader {
    /// `base_url`: Graph's root with its version (`https://graph.microsoft.com/v1.0`);
    /// `select`: the user properties the attribute map reads (`id` is always added).
    pub fn new(base_url: &str, select: &[&str], position: Position, retry: RetryPolicy, seed: u64) -> Self {
        let mut select: Vec<String> = select.iter().map(|s| s.to_string()).collect();
        if !select.iter().any(|s| s == "id") {
            select.insert(0, "id".into());
        }
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            select,
            position,
            resynced: false,
            exchange: Exchange::new(retry, seed),
            started: false,
            outcome: None,
        }
    }

    fn start_url(&self) -> String {
        format!("{}/users/delta?$select={}", self.base_url, self.select.join(","))
    }

    fn url(&self) -> String {
        match &self.position {
            Position::Start => self.start_url(),
            Position::Page(link) | Position::Round(link) => link.clone(),
        }
    }

    fn request(&self) -> HttpRequest {
        HttpRequest::new(Method::Get, self.url()).header("Accept", "application/json")
    }

    /// Links Graph hands out are followed only on Graph's own origin: a link elsewhere would
    /// carry the bearer token there.
    fn check_origin(&self, link: &str) -> Result<(), FlowError> {
        match (origin(link), origin(&self.base_url)) {
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => Ok(()),
            _ => Err(FlowError::Rejected {
                request: self.exchange.describe(),
                status: 200,
                scim_type: None,
                detail: Some(format!("Graph answered with a link to another origin: {link}")),
            }),
        }
    }

    fn read(&mut self, resp: &HttpResponse) -> Result<PageRead, FlowError> {
        let page = DeltaPage::from_slice(resp.body.as_bytes())
            .map_err(|e| FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body))?;
        let next = match (page.next_link, page.delta_link) {
            (Some(link), _) => {
                self.check_origin(&link)?;
                Position::Page(link)
            }
            (None, Some(link)) => {
                self.check_origin(&link)?;
                Position::Round(link)
            }
            (None, None) => {
                return Err(FlowError::unreadable(
                    self.exchange.describe(),
                    resp.status,
                    "a page with neither @odata.nextLink nor @odata.deltaLink",
                    &resp.body,
                ))
            }
        };
        let changes = page
            .value
            .into_iter()
            .map(|user| match user.removed.as_ref().map(|r| r.reason.as_str()) {
                Some("deleted") => Change::Removed {
                    id: user.id,
                    removal: Removal::Deleted,
                },
                // `changed`, or a reason this version does not know: restorable at worst.
                Some(_) => Change::Removed {
                    id: user.id,
                    removal: Removal::Changed,
                },
                None => Change::Upsert { user: Box::new(user) },
            })
            .collect();
        Ok(PageRead {
            changes,
            next,
            resynced: self.resynced,
        })
    }
}

impl Flow for DeltaReader {
    type Output = Result<PageRead, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if let Some(out) = self.outcome.take() {
            return Step::Done(out);
        }
        if !self.started {
            self.started = true;
            let req = self.request();
            self.exchange.start(req);
        }
        self.exchange.step(now).unwrap_or(Step::Wait { until: now + 1 })
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        let resp = match self.exchange.filter(resp, now) {
            Ok(Some(resp)) => resp,
            Ok(None) => return,
            Err(e) => return self.finish(Err(e)),
        };
        if resp.status == 200 {
            let out = self.read(&resp);
            return self.finish(out);
        }
        if cursor_lost(&resp) && self.position != Position::Start && !self.resynced {
            self.position = Position::Start;
            self.resynced = true;
            let req = self.request();
            self.exchange.start(req);
            return;
        }
        let mut err = self.exchange.rejected(&resp);
        if let (FlowError::Rejected { detail, .. }, Some(g)) = (&mut err, graph_error(&resp)) {
            *detail = Some(format!("{}: {}", g.code, g.message));
        }
        self.finish(Err(err));
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.finish(Err(e));
        }
    }
}

impl DeltaReader {
    fn finish(&mut self, out: Result<PageRead, FlowError>) {
        self.exchange.finish();
        self.outcome = Some(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "https://graph.microsoft.com/v1.0";
    const INITIAL: &str = include_str!("../../tests/fixtures/graph_users_delta_initial.json");
    const CHANGES: &str = include_str!("../../tests/fixtures/graph_users_delta_changes.json");

    fn reader(position: Position) -> DeltaReader {
        DeltaReader::new(
            BASE,
            &["userPrincipalName", "givenName"],
            position,
            RetryPolicy::default(),
            1,
        )
    }

    /// Runs the reader against canned answers, returning the output and the URLs asked for.
    fn run(mut r: DeltaReader, answers: Vec<HttpResponse>) -> (Result<PageRead, FlowError>, Vec<String>) {
        let mut answers = answers.into_iter();
        let mut urls = Vec::new();
        let mut now = 1_000;
        for _ in 0..50 {
            match r.next_step(now) {
                Step::Send(req) => {
                    urls.push(req.url.clone());
                    r.on_response(answers.next().expect("an answer for every request"), now);
                }
                Step::SendAll(_) => panic!("this flow sends one request at a time"),
                Step::Wait { until } => now = until,
                Step::Done(out) => return (out, urls),
            }
            now += 10;
        }
        panic!("the reader did not finish");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_first_page_selects_the_mapped_properties_and_points_at_the_next() {
        let (out, urls) = run(reader(Position::Start), vec![HttpResponse::new(200, INITIAL)]);
        assert_eq!(
            urls,
            [format!("{BASE}/users/delta?$select=id,userPrincipalName,givenName")]
        );
        let page = out.unwrap();
        assert!(!page.resynced);
        assert!(matches!(&page.next, Position::Page(l) if l.contains("$skiptoken=")));
        assert_eq!(page.changes.len(), 4);
        assert!(matches!(
            &page.changes[2],
            Change::Removed {
                removal: Removal::Deleted,
                ..
            }
        ));
        assert!(matches!(&page.changes[0], Change::Upsert { user } if user.text("givenName") == Some("Cameron")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_last_page_gives_the_next_rounds_cursor_and_soft_deletions() {
        let (out, urls) = run(
            reader(Position::Round(format!("{BASE}/users/delta?$deltatoken=abc"))),
            vec![HttpResponse::new(200, CHANGES)],
        );
        assert_eq!(urls, [format!("{BASE}/users/delta?$deltatoken=abc")]);
        let page = out.unwrap();
        assert!(matches!(&page.next, Position::Round(l) if l.contains("$deltatoken=")));
        assert_eq!(
            page.changes[1],
            Change::Removed {
                id: "8ffff70c-1c63-4860-b963-e34ec660931d".into(),
                removal: Removal::Changed
            }
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_lost_cursor_starts_a_full_resync_once() {
        let gone = HttpResponse::new(
            410,
            r#"{"error":{"code":"syncStateNotFound","message":"The sync state is gone."}}"#,
        );
        let (out, urls) = run(
            reader(Position::Round(format!("{BASE}/users/delta?$deltatoken=old"))),
            vec![gone.clone(), HttpResponse::new(200, INITIAL)],
        );
        assert_eq!(urls.len(), 2);
        assert!(urls[1].ends_with("/users/delta?$select=id,userPrincipalName,givenName"));
        assert!(out.unwrap().resynced);
        // Gone again right after a resync is an error, not a loop.
        let (out, _) = run(
            reader(Position::Round(format!("{BASE}/users/delta?$deltatoken=old"))),
            vec![gone.clone(), gone],
        );
        let err = out.unwrap_err();
        assert!(err.to_string().contains("syncStateNotFound"), "{err}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn throttling_is_waited_out() {
        let mut throttled = HttpResponse::new(429, r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#);
        throttled.headers.push(("Retry-After".into(), "2".into()));
        let (out, urls) = run(
            reader(Position::Start),
            vec![throttled, HttpResponse::new(200, INITIAL)],
        );
        assert_eq!(urls.len(), 2);
        assert_eq!(out.unwrap().changes.len(), 4);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn links_to_another_origin_are_not_followed() {
        let page = r#"{"@odata.nextLink":"https://graph.evil.example/v1.0/users/delta?$skiptoken=x","value":[]}"#;
        let (out, _) = run(reader(Position::Start), vec![HttpResponse::new(200, page)]);
        assert!(out.unwrap_err().to_string().contains("another origin"));
        let (out, _) = run(reader(Position::Start), vec![HttpResponse::new(200, r#"{"value":[]}"#)]);
        assert!(out.unwrap_err().to_string().contains("neither"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_position_survives_a_checkpoint() {
        let p = Position::Page(format!("{BASE}/users/delta?$skiptoken=s"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), p);
        assert_eq!(serde_json::to_string(&Position::Start).unwrap(), r#"{"at":"start"}"#);
    }
}
