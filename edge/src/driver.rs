//! The one loop that executes core flows: `fetch` for `Send`, a timer for `Wait`.

use crate::kv::State;
use cxone_scim_core::flows::{Authorized, Flow, FlowError, Step};
use cxone_scim_core::http::{HttpRequest, HttpResponse, Method, TransportError};
use cxone_scim_core::retry::RetryPolicy;
use cxone_scim_core::token::{CachedToken, ClientCredentials};
use cxone_scim_core::UnixMillis;
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{Date, Delay, Fetch, Headers, Request, RequestInit};

/// A CXone request that takes longer than this counts as a transport error (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

thread_local! {
    /// The access token, kept for the life of the isolate (KV holds it across isolates).
    static TOKEN: RefCell<Option<CachedToken>> = const { RefCell::new(None) };
}

pub fn now_ms() -> UnixMillis {
    Date::now().as_millis()
}

pub fn seed() -> u64 {
    (js_sys::Math::random() * u64::MAX as f64) as u64
}

pub async fn run<F: Flow>(flow: &mut F) -> F::Output {
    loop {
        match flow.next_step(now_ms()) {
            Step::Send(req) => match send(&req).await {
                Ok(resp) => flow.on_response(resp, now_ms()),
                Err(e) => flow.on_transport_error(e, now_ms()),
            },
            Step::Wait { until } => Delay::from(Duration::from_millis(until.saturating_sub(now_ms()))).await,
            Step::Done(out) => return out,
        }
    }
}

/// Runs `inner` with CXone bearer authentication: the token comes from isolate memory, else KV,
/// else the token endpoint; a refreshed token is written back to both.
pub async fn run_authorized<F, T>(
    inner: F,
    creds: &ClientCredentials,
    retry: RetryPolicy,
    state: &State,
) -> Result<T, FlowError>
where
    F: Flow<Output = Result<T, FlowError>>,
    T: Clone,
{
    let mut cached = TOKEN.with(|t| t.borrow().clone());
    if cached.as_ref().is_none_or(|t| !t.is_fresh(now_ms())) {
        cached = state.token(&creds.client_id).await.ok().flatten();
    }
    let mut flow = Authorized::new(inner, creds.clone(), cached, retry, seed());
    let out = run(&mut flow).await;
    if let Some(token) = flow.refreshed_token() {
        TOKEN.with(|t| *t.borrow_mut() = Some(token.clone()));
        // A cache write that fails costs one token request later, nothing more.
        let _ = state.store_token(&creds.client_id, token, now_ms()).await;
    }
    out
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

async fn send(req: &HttpRequest) -> Result<HttpResponse, TransportError> {
    let fail = |e: worker::Error| TransportError(e.to_string());
    let headers = Headers::new();
    for (name, value) in &req.headers {
        headers.set(name, value).map_err(fail)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method(req.method)).with_headers(headers);
    if let Some(body) = &req.body {
        init.with_body(Some(JsValue::from_str(body)));
    }
    let request = Request::new_with_init(&req.url, &init).map_err(fail)?;
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send());
    let timer = Box::pin(Delay::from(REQUEST_TIMEOUT));
    let mut resp = match select(sending, timer).await {
        Either::Left((resp, _)) => resp.map_err(fail)?,
        Either::Right(_) => {
            return Err(TransportError(format!(
                "no answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            )))
        }
    };
    let status = resp.status_code();
    let headers = resp.headers().entries().collect();
    let body = resp.text().await.map_err(fail)?;
    Ok(HttpResponse { status, headers, body })
}
