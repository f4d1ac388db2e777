//! Reading the first page of users: the connectivity check behind `/test/validate`.

use super::exchange::Exchange;
use super::{Flow, FlowError, Step};
use crate::http::{HttpRequest, HttpResponse, Method, TransportError};
use crate::retry::RetryPolicy;
use crate::scim::{filter, ListResponse, User};
use crate::UnixMillis;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstPage {
    pub users_fetched: usize,
    pub total_results: u64,
}

#[derive(Debug, Clone)]
pub struct FirstPageFlow {
    exchange: Exchange,
    done: Option<Result<FirstPage, FlowError>>,
}

impl FirstPageFlow {
    pub fn new(base_url: &str, count: u64, retry: RetryPolicy, seed: u64) -> Self {
        let mut exchange = Exchange::new(retry, seed);
        exchange.start(HttpRequest::scim(
            Method::Get,
            filter::users_page_url(base_url, 1, count),
        ));
        Self { exchange, done: None }
    }
}

impl Flow for FirstPageFlow {
    type Output = Result<FirstPage, FlowError>;

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
        self.done = match self.exchange.filter(resp, now) {
            Ok(None) => return,
            Ok(Some(resp)) if resp.status == 200 => Some(
                serde_json::from_str::<ListResponse<User>>(&resp.body)
                    .map(|l| FirstPage {
                        users_fetched: l.resources.len(),
                        total_results: l.total_results,
                    })
                    .map_err(|e| FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body)),
            ),
            Ok(Some(resp)) => Some(Err(self.exchange.rejected(&resp))),
            Err(e) => Some(Err(e)),
        };
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.done = Some(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{drive, Fault, SimServer};
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
