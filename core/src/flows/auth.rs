//! Bearer authentication around any flow: fetch a client-credentials token when there is no
//! fresh one, and after a 401 from CXone refresh once and resend once.

use super::exchange::Exchange;
use super::{Flow, FlowError, Step};
use crate::http::{HttpResponse, TransportError};
use crate::retry::RetryPolicy;
use crate::token::{CachedToken, ClientCredentials};
use crate::UnixMillis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Nothing,
    Token,
    Inner,
}

#[derive(Debug, Clone)]
pub struct Authorized<F> {
    inner: F,
    creds: ClientCredentials,
    token: Option<CachedToken>,
    token_refreshed: bool,
    /// The token was just fetched and has not been sent yet: it is used once even if it is
    /// already due for refresh (a lifetime of 0 s), so a request never waits on token fetches.
    token_unused: bool,
    token_exchange: Exchange,
    sent: Sent,
    /// The request in flight has already been resent after a 401.
    resent_after_401: bool,
    failed: Option<FlowError>,
}

impl<F> Authorized<F> {
    /// Wraps `inner`; `cached` is a token from the host's cache, if any.
    pub fn new(inner: F, creds: ClientCredentials, cached: Option<CachedToken>, retry: RetryPolicy, seed: u64) -> Self {
        Self {
            inner,
            creds,
            token: cached,
            token_refreshed: false,
            token_unused: false,
            token_exchange: Exchange::new(retry, seed ^ 0x5eed),
            sent: Sent::Nothing,
            resent_after_401: false,
            failed: None,
        }
    }

    /// A token obtained during this flow, for the host to cache.
    pub fn refreshed_token(&self) -> Option<&CachedToken> {
        self.token.as_ref().filter(|_| self.token_refreshed)
    }

    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The wrapped flow, for a host that feeds it between steps (a bulk run's rows).
    pub fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }
}

impl<F, T> Flow for Authorized<F>
where
    F: Flow<Output = Result<T, FlowError>>,
    T: Clone,
{
    type Output = F::Output;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if let Some(e) = &self.failed {
            return Step::Done(Err(e.clone()));
        }
        if self.sent == Sent::Token {
            if let Some(step) = self.token_exchange.step(now) {
                return step;
            }
        }
        // The requests to send, and whether the flow asked for them all at once.
        let (mut requests, all) = match self.inner.next_step(now) {
            Step::Send(req) => (vec![req], false),
            Step::SendAll(reqs) => (reqs, true),
            Step::Wait { until } => return Step::Wait { until },
            Step::Done(out) => return Step::Done(out),
        };
        match self.token.as_ref().filter(|t| self.token_unused || t.is_fresh(now)) {
            Some(token) => {
                for req in &mut requests {
                    req.set_header("Authorization", token.authorization());
                }
                self.token_unused = false;
                self.sent = Sent::Inner;
                match requests.pop() {
                    Some(req) if !all => Step::Send(req),
                    last => {
                        requests.extend(last);
                        Step::SendAll(requests)
                    }
                }
            }
            None => {
                self.token_exchange.start(self.creds.token_request());
                self.sent = Sent::Token;
                self.token_exchange.step(now).unwrap_or(Step::Wait { until: now })
            }
        }
    }

    /// Several answers at once: a 401 among them drops the token (one refresh, as for a single
    /// request); the flow reads every answer, the refused ones as not done.
    fn on_answers(&mut self, answers: Vec<super::Answer>, now: UnixMillis) {
        if self.sent != Sent::Inner {
            return super::one_by_one(self, answers, now);
        }
        self.sent = Sent::Nothing;
        let refused = answers.iter().any(|a| a.as_ref().is_ok_and(|r| r.status == 401));
        if refused && !self.resent_after_401 {
            self.resent_after_401 = true;
            self.token = None;
        } else {
            self.resent_after_401 = false;
        }
        self.inner.on_answers(answers, now);
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        match self.sent {
            Sent::Token => match self.token_exchange.filter(resp, now) {
                Ok(None) => {}
                Ok(Some(resp)) => {
                    self.sent = Sent::Nothing;
                    match self.creds.read_token_response(&resp, now) {
                        Ok(token) => {
                            self.token = Some(token);
                            self.token_refreshed = true;
                            self.token_unused = true;
                        }
                        Err(e) => self.failed = Some(FlowError::Auth(e.to_string())),
                    }
                }
                Err(e) => self.failed = Some(FlowError::Auth(e.to_string())),
            },
            Sent::Inner if resp.status == 401 && !self.resent_after_401 => {
                // The cached token was revoked or rotated: get a new one, resend once.
                self.resent_after_401 = true;
                self.token = None;
                self.sent = Sent::Nothing;
            }
            Sent::Inner | Sent::Nothing => {
                self.resent_after_401 = false;
                self.sent = Sent::Nothing;
                self.inner.on_response(resp, now);
            }
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        match self.sent {
            Sent::Token => {
                if let Err(e) = self.token_exchange.on_transport(err, now) {
                    self.failed = Some(FlowError::Auth(e.to_string()));
                }
            }
            Sent::Inner | Sent::Nothing => {
                self.sent = Sent::Nothing;
                self.inner.on_transport_error(err, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::FlowError;
    use crate::secret::SecretString;
    use crate::testutil::FirstPageFlow;
    use crate::testutil::{drive, Fault, SimServer, SIM_TOKEN_URL};
    use wasm_bindgen_test::wasm_bindgen_test;

    fn creds() -> ClientCredentials {
        ClientCredentials {
            token_url: SIM_TOKEN_URL.into(),
            client_id: "cid".into(),
            client_secret: SecretString::new("sec"),
            scope: None,
            grant: crate::token::Grant::ClientCredentials,
        }
    }

    fn flow(cached: Option<CachedToken>) -> Authorized<FirstPageFlow> {
        let inner = FirstPageFlow::new("http://cxone.test/scim/v2", 10, RetryPolicy::default(), 3);
        Authorized::new(inner, creds(), cached, RetryPolicy::default(), 3)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_pending_token_request_does_not_show_the_secret() {
        let creds = ClientCredentials {
            client_secret: SecretString::new("cs-4f9e2b7d"),
            ..creds()
        };
        let inner = FirstPageFlow::new("http://cxone.test/scim/v2", 10, RetryPolicy::default(), 3);
        let mut f = Authorized::new(inner, creds, None, RetryPolicy::default(), 3);
        let step = f.next_step(0);
        assert!(
            matches!(step, Step::Send(ref req) if req.url == SIM_TOKEN_URL),
            "{step:?}"
        );
        for text in [format!("{step:?}"), format!("{f:?}")] {
            assert!(!text.contains("cs-4f9e2b7d"), "{text}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn fetches_a_token_first_and_reports_it_for_caching() {
        let mut s = SimServer::with_auth();
        let mut f = flow(None);
        assert!(drive(&mut f, &mut s).0.is_ok());
        assert_eq!(s.log(), ["POST /oauth/token", "GET /scim/v2/Users"]);
        let token = f.refreshed_token().cloned().unwrap();
        // A second flow with that token does not ask again.
        s.clear_log();
        let mut f2 = flow(Some(token));
        assert!(drive(&mut f2, &mut s).0.is_ok());
        assert_eq!(s.log(), ["GET /scim/v2/Users"]);
        assert!(f2.refreshed_token().is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refreshes_once_after_401_then_gives_the_401_to_the_flow() {
        let mut s = SimServer::with_auth();
        let stale = CachedToken {
            access_token: SecretString::new("revoked"),
            expires_at: u64::MAX,
            refresh_at: None,
        };
        let mut f = flow(Some(stale.clone()));
        assert!(drive(&mut f, &mut s).0.is_ok());
        assert_eq!(
            s.log(),
            ["GET /scim/v2/Users", "POST /oauth/token", "GET /scim/v2/Users"]
        );
        // CXone keeps refusing even fresh tokens: exactly one refresh, then the error.
        let mut s = SimServer::with_auth();
        s.reject_every_token();
        let mut f = flow(Some(stale));
        let err = drive(&mut f, &mut s).0.unwrap_err();
        assert!(matches!(err, FlowError::Rejected { status: 401, .. }), "{err:?}");
        assert_eq!(s.log().iter().filter(|l| l.contains("token")).count(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn expiring_tokens_are_refreshed_before_use() {
        let mut s = SimServer::with_auth();
        let nearly = CachedToken {
            access_token: SecretString::new(crate::testutil::SIM_ACCESS_TOKEN),
            expires_at: 30_000,
            refresh_at: None,
        };
        let mut f = flow(Some(nearly));
        assert!(drive(&mut f, &mut s).0.is_ok());
        assert_eq!(s.log()[0], "POST /oauth/token");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn token_endpoint_refusal_is_an_auth_error() {
        let mut s = SimServer::with_auth();
        s.fail_next(Fault::Body(401, r#"{"error":"invalid_client"}"#));
        let err = drive(&mut flow(None), &mut s).0.unwrap_err();
        assert_eq!(
            err,
            FlowError::Auth("token endpoint answered 401 (invalid_client)".into())
        );
        let mut s = SimServer::with_auth();
        s.fail_next(Fault::Status(503, None));
        assert!(
            drive(&mut flow(None), &mut s).0.is_ok(),
            "token endpoint 503 is retried"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn short_lived_tokens_are_used_not_fetched_for_every_request() {
        // 30 s: inside the 60 s margin, but good for half its life.
        let mut s = SimServer::with_auth();
        s.token_expires_in = Some(30);
        let mut f = flow(None);
        assert!(drive(&mut f, &mut s).0.is_ok());
        assert_eq!(s.log(), ["POST /oauth/token", "GET /scim/v2/Users"]);
        let token = f.refreshed_token().cloned().unwrap();
        assert_eq!(token.refresh_at, Some(1_000_005 + 15_000));
        // The next flow (and its retry after a 503) within those 15 s reuses it.
        s.clear_log();
        s.fail_next(Fault::Status(503, None));
        let mut f = flow(Some(token));
        assert!(drive(&mut f, &mut s).0.is_ok());
        assert_eq!(s.log(), ["GET /scim/v2/Users", "GET /scim/v2/Users"]);
        assert!(f.refreshed_token().is_none());
        // 0 s: due for refresh as it arrives, yet sent once instead of fetched again and again.
        let mut s = SimServer::with_auth();
        s.token_expires_in = Some(0);
        assert!(drive(&mut flow(None), &mut s).0.is_ok());
        assert_eq!(s.log(), ["POST /oauth/token", "GET /scim/v2/Users"]);
    }
}
