//! One request at a time, with retries: the bookkeeping every flow shares.

use super::{FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::retry::{is_retryable_status, retry_after_ms, RetryDecision, RetryPolicy, RetryState};
use crate::scim::ScimError;
use crate::UnixMillis;

/// The [`super::Flow`] impl of a flow that talks to CXone through an [`Exchange`] (its fields
/// `done` and `exchange`, its methods `handle` and `finish`): the outcome once done, else the
/// exchange's next request; answers go through the exchange (retries, waits) to `handle`.
macro_rules! exchange_flow {
    ($flow:ty => $out:ty) => {
        impl $crate::flows::Flow for $flow {
            type Output = Result<$out, $crate::flows::FlowError>;

            fn next_step(&mut self, now: $crate::UnixMillis) -> $crate::flows::Step<Self::Output> {
                if let Some(done) = &self.done {
                    return $crate::flows::Step::Done(done.clone());
                }
                self.exchange.step(now).unwrap_or_else(|| {
                    $crate::flows::Step::Done(Err($crate::flows::FlowError::Ambiguous(
                        "no request to send".into(),
                    )))
                })
            }

            fn on_response(&mut self, resp: $crate::http::HttpResponse, now: $crate::UnixMillis) {
                if self.done.is_some() {
                    return;
                }
                match self.exchange.filter(resp, now) {
                    Ok(Some(resp)) => self.handle(resp),
                    Ok(None) => {}
                    Err(e) => self.finish(Err(e)),
                }
            }

            fn on_transport_error(&mut self, err: $crate::http::TransportError, now: $crate::UnixMillis) {
                if self.done.is_some() {
                    return;
                }
                if let Err(e) = self.exchange.on_transport(err, now) {
                    self.finish(Err(e));
                }
            }
        }
    };
}
pub(crate) use exchange_flow;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Exchange {
    /// Not kept in a checkpoint: a restored flow starts its request again (and a Bulk body
    /// would make every checkpoint as large as the request).
    #[serde(skip)]
    pending: Option<HttpRequest>,
    wait_until: Option<UnixMillis>,
    retry: RetryState,
}

impl Exchange {
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            pending: None,
            wait_until: None,
            retry: RetryState::new(policy, seed),
        }
    }

    /// Makes `req` the request in flight, with a fresh attempt budget.
    pub fn start(&mut self, req: HttpRequest) {
        self.pending = Some(req);
        self.wait_until = None;
        self.retry.reset();
    }

    /// Nothing in flight any more (the answer was handled).
    pub fn finish(&mut self) {
        self.pending = None;
        self.wait_until = None;
    }

    /// The request in flight.
    pub fn pending(&self) -> Option<&HttpRequest> {
        self.pending.as_ref()
    }

    /// Tries made of the request in flight.
    pub fn attempts(&self) -> u32 {
        self.retry.attempts
    }

    pub fn describe(&self) -> String {
        self.pending.as_ref().map(HttpRequest::describe).unwrap_or_default()
    }

    /// Wait for the backoff, else send the request in flight.
    pub fn step<O>(&self, now: UnixMillis) -> Option<Step<O>> {
        match self.wait_until {
            Some(until) if until > now => Some(Step::Wait { until }),
            _ => self.pending.clone().map(Step::Send),
        }
    }

    /// Takes a response: `Ok(Some(resp))` for the flow to handle, `Ok(None)` when a retry is
    /// scheduled, `Err` when the budget is spent.
    pub fn filter(&mut self, resp: HttpResponse, now: UnixMillis) -> Result<Option<HttpResponse>, FlowError> {
        self.retry.record_attempt();
        if !is_retryable_status(resp.status) {
            return Ok(Some(resp));
        }
        let last = format!("HTTP {}", resp.status);
        self.schedule(retry_after_ms(&resp, now), now, last, Some(resp.status))
            .map(|()| None)
    }

    pub fn on_transport(&mut self, err: TransportError, now: UnixMillis) -> Result<(), FlowError> {
        self.retry.record_attempt();
        self.schedule(None, now, err.to_string(), None)
    }

    fn schedule(
        &mut self,
        retry_after: Option<u64>,
        now: UnixMillis,
        last: String,
        last_status: Option<u16>,
    ) -> Result<(), FlowError> {
        match self.retry.after_failure(retry_after, now) {
            RetryDecision::RetryAt(at) => {
                self.wait_until = Some(at);
                Ok(())
            }
            RetryDecision::GiveUp => Err(FlowError::RetriesExhausted {
                request: self.describe(),
                attempts: self.retry.attempts,
                last,
                last_status,
            }),
        }
    }

    /// The error for a final non-success answer, with CXone's SCIM error fields when given. A
    /// redirect (never followed: it could take the bearer token elsewhere) names its target.
    pub fn rejected(&self, resp: &HttpResponse) -> FlowError {
        if let Some(detail) = resp.redirect_detail() {
            return FlowError::Rejected {
                request: self.describe(),
                status: resp.status,
                scim_type: None,
                detail: Some(detail),
            };
        }
        let scim = ScimError::from_body(&resp.body);
        FlowError::Rejected {
            request: self.describe(),
            status: resp.status,
            scim_type: scim.as_ref().and_then(|e| e.scim_type.clone()),
            detail: scim.and_then(|e| e.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::testutil::FirstPageFlow;
    use crate::testutil::{drive, Fault, SimServer};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn redirects_are_not_retried_and_name_their_target() {
        let mut x = Exchange::new(RetryPolicy::default(), 1);
        x.start(HttpRequest::new(
            Method::Get,
            "https://cxone.example/scim/v2/Users?count=1",
        ));
        let resp = HttpResponse::new(301, "").with_header("Location", "https://elsewhere.example/scim/v2/Users");
        let resp = x.filter(resp, 0).unwrap().expect("a redirect is final, not retried");
        assert_eq!(
            x.rejected(&resp),
            FlowError::Rejected {
                request: "GET /scim/v2/Users".into(),
                status: 301,
                scim_type: None,
                detail: Some(
                    "redirected to https://elsewhere.example/scim/v2/Users; redirects are not followed".into()
                ),
            }
        );
        for status in [302, 303, 307, 308] {
            let mut s = SimServer::default();
            s.fail_next(Fault::Redirect(
                status,
                "https://elsewhere.example/scim/v2/Users?sig=abc",
            ));
            let mut flow = FirstPageFlow::new("https://cxone.example/scim/v2", 10, RetryPolicy::default(), 1);
            let err = drive(&mut flow, &mut s).0.unwrap_err();
            assert_eq!(s.log(), ["GET /scim/v2/Users"], "{status} is not retried");
            assert_eq!(err.upstream_status(), Some(status));
            let text = err.to_string();
            assert!(
                text.contains("redirected to https://elsewhere.example/scim/v2/Users; redirects are not followed"),
                "{text}"
            );
            assert!(!text.contains("sig=abc"), "{text}");
        }
    }
}
