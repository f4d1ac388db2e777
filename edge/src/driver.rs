//! The one loop that executes core flows: `fetch` for `Send`, a timer for `Wait`.

use crate::kv::State;
use cxone_scim_core::flows::{drive as core_drive, Authorized, Flow, FlowError, Host};
use cxone_scim_core::http::{HttpRequest, HttpResponse, Method, TransportError};
use cxone_scim_core::retry::RetryPolicy;
use cxone_scim_core::token::{CachedToken, ClientCredentials};
use cxone_scim_core::UnixMillis;
use futures_util::future::{join_all, select, Either};
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{AbortController, Date, Delay, Fetch, Headers, Request, RequestInit, RequestRedirect};

/// A request that takes longer than this counts as a transport error (and is retried), unless
/// the budget it is sent under says otherwise (`CXONE_REQUEST_TIMEOUT_MS` under a lease).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(cxone_scim_core::budget::REQUEST_TIMEOUT_MS);

thread_local! {
    /// Access tokens by credentials (CXone's, Graph's), kept for the life of the isolate (KV
    /// holds them across isolates).
    static TOKENS: RefCell<Vec<(String, CachedToken)>> = const { RefCell::new(Vec::new()) };
}

/// Where a token for `creds` is cached: one key per token endpoint and client.
fn token_key(creds: &ClientCredentials) -> String {
    cxone_scim_core::digest::key_of(&format!("{}\n{}", creds.token_url, creds.client_id))
}

pub fn now_ms() -> UnixMillis {
    Date::now().as_millis()
}

pub fn seed() -> u64 {
    (js_sys::Math::random() * u64::MAX as f64) as u64
}

pub use cxone_scim_core::budget::Budget;

/// The Worker as core's [`Host`]: `fetch` within the budget's timeout, timers for waits, and
/// the budget (subrequests, a lease's deadline) deciding whether a request may start.
pub struct WorkerHost<'a> {
    pub budget: &'a mut Budget,
}

impl Host for WorkerHost<'_> {
    fn now(&self) -> UnixMillis {
        now_ms()
    }

    fn admit(&mut self, reqs: &[HttpRequest]) -> bool {
        self.budget.take_steps(reqs.len() as u32, now_ms())
    }

    async fn send_all(&mut self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        send_all(reqs, Duration::from_millis(self.budget.timeout_ms())).await
    }

    async fn sleep_until(&mut self, until: UnixMillis) -> bool {
        Delay::from(Duration::from_millis(until.saturating_sub(now_ms()))).await;
        true
    }
}

/// Runs `flow` within `budget`. `None` when the budget ran out first; the flow is then exactly
/// where it stopped and may be resumed, in this invocation or after a checkpoint.
pub async fn drive<F: Flow>(flow: &mut F, budget: &mut Budget) -> Option<F::Output> {
    core_drive(flow, &mut WorkerHost { budget }).await.done()
}

/// Wraps `inner` in bearer authentication with the cached token: isolate memory, else KV.
pub async fn authorized<F>(inner: F, creds: &ClientCredentials, retry: RetryPolicy, state: &State) -> Authorized<F> {
    let key = token_key(creds);
    let mut cached = TOKENS.with(|t| t.borrow().iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone()));
    if cached.as_ref().is_none_or(|t| !t.is_fresh(now_ms())) {
        cached = state.token(&key).await.ok().flatten();
    }
    Authorized::new(inner, creds.clone(), cached, retry, seed())
}

/// Keeps a token the flow had to fetch, in isolate memory and KV.
pub async fn keep_token<F>(flow: &Authorized<F>, creds: &ClientCredentials, state: &State) {
    if let Some(token) = flow.refreshed_token() {
        let key = token_key(creds);
        TOKENS.with(|t| {
            let mut tokens = t.borrow_mut();
            tokens.retain(|(k, _)| *k != key);
            tokens.push((key.clone(), token.clone()));
        });
        // A cache write that fails costs one token request later, nothing more.
        let _ = state.store_token(&key, token, now_ms()).await;
    }
}

/// Runs `inner` to completion with CXone bearer authentication within `budget`.
pub async fn run_authorized<F, T>(
    inner: F,
    creds: &ClientCredentials,
    retry: RetryPolicy,
    state: &State,
    budget: &mut Budget,
) -> Result<T, FlowError>
where
    F: Flow<Output = Result<T, FlowError>>,
    T: Clone,
{
    run_authorized_then(inner, creds, retry, state, budget, |_| ()).await.0
}

/// [`run_authorized`], and what `after` reads off the flow once it stopped (requests it made,
/// state worth keeping after a failure).
pub async fn run_authorized_then<F, T, R>(
    inner: F,
    creds: &ClientCredentials,
    retry: RetryPolicy,
    state: &State,
    budget: &mut Budget,
    after: impl FnOnce(&F) -> R,
) -> (Result<T, FlowError>, R)
where
    F: Flow<Output = Result<T, FlowError>>,
    T: Clone,
{
    let given = budget.remaining();
    let mut flow = authorized(inner, creds, retry, state).await;
    let out = drive(&mut flow, budget).await;
    keep_token(&flow, creds, state).await;
    let read = after(flow.inner());
    (out.unwrap_or_else(|| Err(FlowError::BudgetExhausted(given))), read)
}

/// A request a dry run would have sent, without its headers (they carry the token).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedRequest {
    pub method: &'static str,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

impl PlannedRequest {
    pub fn of(req: &HttpRequest) -> Self {
        Self {
            method: req.method.as_str(),
            url: req.url.clone(),
            body: req.body.as_deref().and_then(|b| serde_json::from_str(b).ok()),
        }
    }
}

/// Drives `inner` as far as reading goes: token requests and `GET`s are sent, the first
/// request that would change CXone is returned instead of sent (what follows depends on its
/// answer). `None` when the flow finished without wanting to write.
pub async fn plan_first_write<F, T>(
    inner: F,
    creds: &ClientCredentials,
    retry: RetryPolicy,
    state: &State,
    budget: &mut Budget,
) -> Option<PlannedRequest>
where
    F: Flow<Output = Result<T, FlowError>>,
    T: Clone,
{
    plan_first_write_then(inner, creds, retry, state, budget, |_| ())
        .await
        .0
}

/// [`plan_first_write`], and what `after` reads off the flow where it stopped.
pub async fn plan_first_write_then<F, T, R>(
    inner: F,
    creds: &ClientCredentials,
    retry: RetryPolicy,
    state: &State,
    budget: &mut Budget,
    after: impl FnOnce(&F) -> R,
) -> (Option<PlannedRequest>, R)
where
    F: Flow<Output = Result<T, FlowError>>,
    T: Clone,
{
    let mut flow = authorized(inner, creds, retry, state).await;
    let mut host = Planning {
        host: WorkerHost { budget },
        token_url: &creds.token_url,
        first_write: None,
    };
    let _ = core_drive(&mut flow, &mut host).await;
    let planned = host.first_write;
    keep_token(&flow, creds, state).await;
    (planned, after(flow.inner()))
}

/// Sends what only reads (token requests, `GET`s) and stops at the first request that would
/// change CXone, keeping it.
struct Planning<'a, 'b> {
    host: WorkerHost<'a>,
    token_url: &'b str,
    first_write: Option<PlannedRequest>,
}

impl Host for Planning<'_, '_> {
    fn now(&self) -> UnixMillis {
        now_ms()
    }

    fn admit(&mut self, reqs: &[HttpRequest]) -> bool {
        if let Some(req) = reqs.iter().find(|r| r.method != Method::Get && r.url != self.token_url) {
            self.first_write = Some(PlannedRequest::of(req));
            return false;
        }
        self.host.admit(reqs)
    }

    async fn send_all(&mut self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        self.host.send_all(reqs).await
    }

    async fn sleep_until(&mut self, until: UnixMillis) -> bool {
        self.host.sleep_until(until).await
    }
}

fn method(m: Method) -> worker::Method {
    match m {
        Method::Get => worker::Method::Get,
        Method::Post => worker::Method::Post,
        Method::Put => worker::Method::Put,
        Method::Patch => worker::Method::Patch,
        Method::Delete => worker::Method::Delete,
    }
}

/// Sends every request at once, each within `timeout`; the answers in the requests' order.
pub async fn send_all(reqs: &[HttpRequest], timeout: Duration) -> Vec<Result<HttpResponse, TransportError>> {
    join_all(reqs.iter().map(|req| send_within(req, timeout))).await
}

pub async fn send(req: &HttpRequest) -> Result<HttpResponse, TransportError> {
    send_within(req, REQUEST_TIMEOUT).await
}

/// [`send`] with another limit on the wait (a Bulk request does the work of many).
pub async fn send_within(req: &HttpRequest, timeout: Duration) -> Result<HttpResponse, TransportError> {
    let fail = |e: worker::Error| TransportError(e.to_string());
    let headers = Headers::new();
    for (name, value) in &req.headers {
        headers.set(name, value).map_err(fail)?;
    }
    let mut init = RequestInit::new();
    // Never follow a redirect: it could carry the bearer token or client secret elsewhere. A
    // 3xx goes back to the flow, which reports it with its target.
    init.with_method(method(req.method))
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if let Some(body) = &req.body {
        init.with_body(Some(JsValue::from_str(body)));
    }
    let request = Request::new_with_init(&req.url, &init).map_err(fail)?;
    let fetch = Fetch::Request(request);
    // A request given up on is aborted, not left to land later under someone else's lease.
    let abort = AbortController::default();
    let signal = abort.signal();
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(Delay::from(timeout));
    let mut resp = match select(sending, timer).await {
        Either::Left((resp, _)) => resp.map_err(fail)?,
        Either::Right((_, sending)) => {
            abort.abort();
            drop(sending);
            return Err(TransportError(format!("no answer within {} ms", timeout.as_millis())));
        }
    };
    let status = resp.status_code();
    let headers = resp.headers().entries().collect();
    let body = resp.text().await.map_err(fail)?;
    Ok(HttpResponse { status, headers, body })
}
