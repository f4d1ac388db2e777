//! One request at a time, with retries: the bookkeeping every flow shares.

use super::{FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::retry::{is_retryable_status, retry_after_ms, RetryDecision, RetryPolicy, RetryState};
use crate::scim::ScimError;
use crate::UnixMillis;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Exchange {
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

    /// The error for a final non-success answer, with CXone's SCIM error fields when given.
    pub fn rejected(&self, resp: &HttpResponse) -> FlowError {
        let scim = ScimError::from_body(&resp.body);
        FlowError::Rejected {
            request: self.describe(),
            status: resp.status,
            scim_type: scim.as_ref().and_then(|e| e.scim_type.clone()),
            detail: scim.and_then(|e| e.detail),
        }
    }
}
