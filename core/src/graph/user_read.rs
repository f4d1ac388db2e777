//! One user read in full: `GET /users/{id}?$select=<the mapped properties>`. A delta entry that
//! carries only its changed properties may lack what finds or creates the person (the
//! userPrincipalName); the sync reads the user before planning such a change.

use super::delta::DeltaUser;
use super::wire::{graph_error, rejected};
use crate::flows::exchange::Exchange;
use crate::flows::{Flow, FlowError, Step};
use crate::http::{encode_component, HttpRequest, HttpResponse, Method, TransportError};
use crate::retry::RetryPolicy;
use crate::UnixMillis;

#[derive(Debug, Clone)]
pub struct UserReadFlow {
    request: HttpRequest,
    exchange: Exchange,
    started: bool,
    outcome: Option<Result<Option<DeltaUser>, FlowError>>,
}

impl UserReadFlow {
    /// `select`: the properties the attribute map reads.
    pub fn new(base_url: &str, user_id: &str, select: &[&str], retry: RetryPolicy, seed: u64) -> Self {
        let url = format!(
            "{}/users/{}?$select={}",
            base_url.trim_end_matches('/'),
            encode_component(user_id),
            select.join(",")
        );
        Self {
            request: HttpRequest::new(Method::Get, url).header("Accept", "application/json"),
            exchange: Exchange::new(retry, seed),
            started: false,
            outcome: None,
        }
    }

    fn finish(&mut self, out: Result<Option<DeltaUser>, FlowError>) {
        self.exchange.finish();
        self.outcome = Some(out);
    }
}

impl Flow for UserReadFlow {
    /// `None`: Graph no longer knows the user (its own 404).
    type Output = Result<Option<DeltaUser>, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if let Some(out) = &self.outcome {
            return Step::Done(out.clone());
        }
        if !self.started {
            self.started = true;
            self.exchange.start(self.request.clone());
        }
        self.exchange.step(now).unwrap_or(Step::Wait { until: now + 1 })
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        if self.outcome.is_some() {
            return;
        }
        let resp = match self.exchange.filter(resp, now) {
            Ok(Some(resp)) => resp,
            Ok(None) => return,
            Err(e) => return self.finish(Err(e)),
        };
        let out = match resp.status {
            200 => serde_json::from_str::<DeltaUser>(&resp.body)
                .map(Some)
                .map_err(|e| FlowError::unreadable(self.exchange.describe(), resp.status, e, &resp.body)),
            404 if graph_error(&resp).is_some() => Ok(None),
            _ => Err(rejected(&self.exchange, &resp)),
        };
        self.finish(out);
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if self.outcome.is_some() {
            return;
        }
        if let Err(e) = self.exchange.on_transport(err, now) {
            self.finish(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn run(answer: HttpResponse) -> (Result<Option<DeltaUser>, FlowError>, String) {
        let mut f = UserReadFlow::new(
            "https://graph.microsoft.com/v1.0/",
            "a b",
            &["id", "userPrincipalName", "jobTitle"],
            RetryPolicy::default(),
            1,
        );
        let Step::Send(req) = f.next_step(0) else {
            panic!("a request first")
        };
        f.on_response(answer, 1);
        let Step::Done(out) = f.next_step(2) else {
            panic!("done after one answer")
        };
        (out, req.url)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_selected_properties_of_one_user() {
        let body = r#"{"@odata.context":"x","id":"a b","userPrincipalName":"ab@contoso.com","jobTitle":null}"#;
        let (out, url) = run(HttpResponse::new(200, body));
        assert_eq!(
            url,
            "https://graph.microsoft.com/v1.0/users/a%20b?$select=id,userPrincipalName,jobTitle"
        );
        let user = out.unwrap().unwrap();
        assert_eq!(user.text("userPrincipalName"), Some("ab@contoso.com"));
        assert_eq!(user.property("jobTitle"), Some(&serde_json::Value::Null));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_graphs_own_404_says_the_user_is_gone() {
        let gone = r#"{"error":{"code":"Request_ResourceNotFound","message":"gone"}}"#;
        assert_eq!(run(HttpResponse::new(404, gone)).0, Ok(None));
        assert!(run(HttpResponse::new(404, "not found")).0.is_err());
        assert!(run(HttpResponse::new(403, gone)).0.is_err());
    }
}
