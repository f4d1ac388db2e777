//! The one loop that runs a flow. Each host (the Worker, the command line, a test) implements
//! [`Host`] once: how to tell the time, whether it may send now (its budget, a lease's
//! deadline), how it sends, and how it waits. Nothing here sends or sleeps by itself.

use super::{Flow, Step};
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::UnixMillis;

/// What a host does for a flow.
#[allow(async_fn_in_trait)] // one host per target, called with its own concrete type
pub trait Host {
    fn now(&self) -> UnixMillis;

    /// Whether `reqs` (one request, or several to send at once) may go now, taking what they
    /// cost. `false` stops the drive with the flow where it is, to be resumed later.
    fn admit(&mut self, reqs: &[HttpRequest]) -> bool;

    /// Sends every request (at once where the host can); the answers in the requests' order.
    async fn send_all(&mut self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>>;

    /// Waits until `until`; `false` when that is longer than this host waits in place (the
    /// drive stops, to be resumed then).
    async fn sleep_until(&mut self, until: UnixMillis) -> bool;
}

/// How a drive ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven<T> {
    Done(T),
    /// The host would not send or wait; the flow is exactly where it stopped.
    Stopped,
}

impl<T> Driven<T> {
    pub fn done(self) -> Option<T> {
        match self {
            Self::Done(out) => Some(out),
            Self::Stopped => None,
        }
    }
}

/// Runs `flow` with `host` until it is done or the host stops it.
pub async fn drive<F: Flow, H: Host>(flow: &mut F, host: &mut H) -> Driven<F::Output> {
    drive_watched(flow, host, |_| {}).await
}

/// [`drive`], `watch` seeing the flow after every answer (a progress display, say).
pub async fn drive_watched<F: Flow, H: Host>(
    flow: &mut F,
    host: &mut H,
    mut watch: impl FnMut(&F),
) -> Driven<F::Output> {
    loop {
        let (reqs, at_once) = match flow.next_step(host.now()) {
            Step::Send(req) => (vec![req], false),
            Step::SendAll(reqs) => (reqs, true),
            Step::Wait { until } => {
                if !host.sleep_until(until).await {
                    return Driven::Stopped;
                }
                continue;
            }
            Step::Done(out) => return Driven::Done(out),
        };
        if !host.admit(&reqs) {
            return Driven::Stopped;
        }
        let mut answers = host.send_all(&reqs).await;
        let now = host.now();
        match answers.pop() {
            Some(Ok(resp)) if !at_once => flow.on_response(resp, now),
            Some(Err(e)) if !at_once => flow.on_transport_error(e, now),
            last => {
                answers.extend(last);
                flow.on_answers(answers, now);
            }
        }
        watch(flow);
    }
}

/// Runs a future whose every await is ready when first polled: a blocking host's (the command
/// line's, whose sends and sleeps block), or a test's. Never for one that really waits.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::FlowError;
    use crate::http::Method;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Asks for one request, then a wait, then two at once, then is done with what it heard.
    #[derive(Default)]
    struct Script {
        heard: Vec<String>,
        wait_until: Option<UnixMillis>,
    }

    fn get(path: &str) -> HttpRequest {
        HttpRequest::new(Method::Get, format!("http://cxone.test{path}"))
    }

    impl Flow for Script {
        type Output = Result<Vec<String>, FlowError>;

        fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
            match (self.heard.len(), self.wait_until) {
                (0, _) => Step::Send(get("/one")),
                (1, None) => {
                    self.wait_until = Some(now + 100);
                    Step::Wait { until: now + 100 }
                }
                (1, Some(until)) if now < until => Step::Wait { until },
                (1, Some(_)) => Step::SendAll(vec![get("/two"), get("/three")]),
                _ => Step::Done(Ok(self.heard.clone())),
            }
        }

        fn on_response(&mut self, resp: HttpResponse, _now: UnixMillis) {
            self.heard.push(format!("one:{}", resp.body));
        }

        fn on_transport_error(&mut self, _err: TransportError, _now: UnixMillis) {}

        fn on_answers(&mut self, answers: Vec<Result<HttpResponse, TransportError>>, _now: UnixMillis) {
            for a in answers {
                self.heard
                    .push(format!("all:{}", a.map(|r| r.body).unwrap_or_default()));
            }
        }
    }

    struct Scripted {
        now: UnixMillis,
        budget: u32,
        sent: Vec<Vec<String>>,
        waits_in_place: bool,
    }

    impl Host for Scripted {
        fn now(&self) -> UnixMillis {
            self.now
        }

        fn admit(&mut self, reqs: &[HttpRequest]) -> bool {
            let n = reqs.len() as u32;
            if n > self.budget {
                return false;
            }
            self.budget -= n;
            true
        }

        async fn send_all(&mut self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
            self.sent.push(reqs.iter().map(|r| r.url.clone()).collect());
            self.now += 5;
            reqs.iter()
                .map(|r| Ok(HttpResponse::new(200, r.url.rsplit('/').next().unwrap_or_default())))
                .collect()
        }

        async fn sleep_until(&mut self, until: UnixMillis) -> bool {
            if !self.waits_in_place {
                return false;
            }
            self.now = until;
            true
        }
    }

    fn host(budget: u32, waits_in_place: bool) -> Scripted {
        Scripted {
            now: 1_000,
            budget,
            sent: Vec::new(),
            waits_in_place,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_flow_runs_to_its_end_one_request_and_several_at_once() {
        let (mut flow, mut h) = (Script::default(), host(10, true));
        let out = block_on(drive(&mut flow, &mut h));
        assert_eq!(
            out,
            Driven::Done(Ok(vec!["one:one".into(), "all:two".into(), "all:three".into()]))
        );
        assert_eq!(h.sent.len(), 2, "the two went at once");
        assert_eq!(h.budget, 7);
        assert_eq!(h.now, 1_110, "5 ms, 100 ms waited, 5 ms");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_host_that_cannot_pay_or_wait_stops_the_flow_where_it_is() {
        let (mut flow, mut h) = (Script::default(), host(2, true));
        assert_eq!(block_on(drive(&mut flow, &mut h)), Driven::Stopped);
        assert_eq!(
            flow.heard,
            vec!["one:one".to_string()],
            "two at once did not fit in one"
        );
        // Resumed with more budget, it goes on from there.
        h.budget = 2;
        assert!(block_on(drive(&mut flow, &mut h)).done().is_some());

        let (mut flow, mut h) = (Script::default(), host(10, false));
        assert_eq!(block_on(drive(&mut flow, &mut h)), Driven::Stopped);
        assert_eq!(flow.heard.len(), 1, "stopped at the wait");
        let mut watched = 0;
        let mut h = host(10, true);
        block_on(drive_watched(&mut flow, &mut h, |_| watched += 1));
        assert_eq!(watched, 1, "one answer (the two at once) after the wait");
    }
}
