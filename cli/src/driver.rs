//! The CLI's one loop: core flows driven with a blocking HTTP client and the system clock.

use cxone_scim_core::flows::{block_on, drive_watched, Driven, Flow, Host};
use cxone_scim_core::http::{HttpRequest, HttpResponse, TransportError};
use cxone_scim_core::UnixMillis;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn seed() -> u64 {
    now_ms() ^ u64::from(std::process::id()).rotate_left(32)
}

pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Self {
        Self {
            // Redirects are not followed (the flow reports them with their target), as in the Worker.
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .redirects(0)
                .build(),
        }
    }

    /// Sends every request at once, one thread each; the answers in the requests' order.
    pub fn send_all(&self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        std::thread::scope(|scope| {
            let sending: Vec<_> = reqs.iter().map(|req| scope.spawn(move || self.send(req))).collect();
            sending
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(TransportError("the sending thread stopped".into())))
                })
                .collect()
        })
    }

    pub fn send(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut call = self.agent.request(req.method.as_str(), &req.url);
        for (name, value) in &req.headers {
            call = call.set(name, value);
        }
        let answer = match &req.body {
            Some(body) => call.send_string(body),
            None => call.call(),
        };
        let resp = match answer {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => return Err(TransportError(e.to_string())),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let body = resp.into_string().map_err(|e| TransportError(e.to_string()))?;
        Ok(HttpResponse { status, headers, body })
    }
}

/// The command line as core's [`Host`]: blocking sends (several at once on threads), the system
/// clock, and no budget: it runs a flow to its end.
struct Blocking<'a> {
    http: &'a Http,
    /// A dry run's host: requests that change something (all but `GET`s and the token
    /// request to this URL) stop the drive instead of going out.
    reads_only: Option<&'a str>,
}

impl Host for Blocking<'_> {
    fn now(&self) -> UnixMillis {
        now_ms()
    }

    fn admit(&mut self, reqs: &[HttpRequest]) -> bool {
        match self.reads_only {
            Some(token_url) => reqs
                .iter()
                .all(|r| r.method == cxone_scim_core::http::Method::Get || r.url == token_url),
            None => true,
        }
    }

    async fn send_all(&mut self, reqs: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        match reqs {
            [one] => vec![self.http.send(one)],
            _ => self.http.send_all(reqs),
        }
    }

    async fn sleep_until(&mut self, until: UnixMillis) -> bool {
        std::thread::sleep(Duration::from_millis(until.saturating_sub(now_ms())));
        true
    }
}

/// Runs `flow` to the end; `after_response` sees it after every answer (progress display).
pub fn run<F: Flow>(flow: &mut F, http: &Http, mut after_response: impl FnMut(&F)) -> F::Output {
    let mut host = Blocking { http, reads_only: None };
    loop {
        // A blocking host never stops a flow; were it to, the flow would resume where it stopped.
        if let Driven::Done(out) = block_on(drive_watched(flow, &mut host, &mut after_response)) {
            return out;
        }
    }
}

/// Runs `flow` as far as reading goes (`GET`s and the token request to `token_url`) and stops
/// at its first write, which is not sent; `Some` output when it finished without writing.
pub fn run_reads<F: Flow>(flow: &mut F, http: &Http, token_url: &str) -> Option<F::Output> {
    let mut host = Blocking {
        http,
        reads_only: Some(token_url),
    };
    block_on(drive_watched(flow, &mut host, &mut |_: &F| {})).done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxone_scim_core::http::Method;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn redirects_come_back_unfollowed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).unwrap();
            conn.write_all(
                format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{port}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        });
        let req = HttpRequest::new(Method::Get, format!("http://127.0.0.1:{port}/scim/v2/Users"));
        let resp = Http::new().send(&req).unwrap();
        server.join().unwrap();
        assert_eq!(resp.status, 307);
        assert_eq!(
            resp.header("location"),
            Some(format!("http://127.0.0.1:{port}/elsewhere").as_str())
        );
    }
}
