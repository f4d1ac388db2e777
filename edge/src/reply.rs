//! JSON responses and SCIM-style errors.

use cxone_scim_core::api_error::ApiError;
use futures_util::StreamExt;
use serde::Serialize;
use worker::{Headers, Request, Response, Result};

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::from_json(body)?.with_status(status).with_headers(headers))
}

/// 401 for the admin endpoints, with the challenge RFC 6750 asks for.
pub fn unauthorized(detail: &str) -> Result<Response> {
    let resp = api_error(&ApiError::unauthorized(detail))?;
    resp.headers().set("WWW-Authenticate", "Bearer")?;
    Ok(resp)
}

/// What an oversized body is read on (and thrown away) for at least, before giving up on it.
const DRAIN_AT_LEAST: usize = 1024 * 1024;

/// The request body, or `None` when it is over `max` bytes: as declared by `Content-Length`,
/// or as read. A body without a length is read as a stream and reading stops (the stream is cancelled) as soon
/// as more than `max` bytes have arrived, so a body without a length cannot make it buffer more.
pub async fn body_within(req: &mut Request, max: usize) -> Result<Option<Vec<u8>>> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Ok(None);
    }
    if req.inner().body().is_none() {
        return Ok(Some(Vec::new()));
    }
    if declared.is_some() {
        // The length is framed by HTTP and within the cap: read at once (a stream read chunk by
        // chunk costs more than the whole webhook's own work).
        let body = req.bytes().await?;
        return Ok((body.len() <= max).then_some(body));
    }
    let mut chunks = req.stream()?;
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if chunk.len() > max - body.len() {
            // Past the cap: read on without keeping anything, up to a bound, so that a sender
            // that is still uploading gets its answer on a clean connection.
            let mut discarded = body.len() + chunk.len();
            drop(body);
            let bound = max.saturating_mul(4).max(DRAIN_AT_LEAST);
            while discarded <= bound {
                match chunks.next().await {
                    Some(Ok(more)) => discarded += more.len(),
                    _ => break,
                }
            }
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A change's answer as the sender gets it (`Retry-After` when it should come back).
pub fn answer(answer: cxone_scim_core::apply::ApplyAnswer) -> Result<Response> {
    let resp = json(answer.status, &answer.body)?;
    if let Some(secs) = answer.retry_after_secs {
        resp.headers().set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}

/// The one way an [`ApiError`] becomes a response (with `Retry-After` when it says so).
pub fn api_error(e: &ApiError) -> Result<Response> {
    let resp = json(e.status, &e.to_scim())?;
    if let Some(secs) = e.retry_after_secs {
        resp.headers().set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::{Method, RequestInit};

    fn post(body: JsValue) -> Request {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body));
        Request::new_with_init("http://w.test/x", &init).unwrap()
    }

    /// A POST whose body is `source`, a JS `ReadableStream` underlying source, with no
    /// Content-Length.
    fn streaming_post(source: &str) -> Request {
        let make = js_sys::Function::new_no_args(&format!(
            "return new Request('http://w.test/x', \
               {{ method: 'POST', body: new ReadableStream({source}), duplex: 'half' }});"
        ));
        let req: worker::web_sys::Request = make.call0(&JsValue::NULL).unwrap().unchecked_into();
        Request::from(req)
    }

    /// `chunks` pieces of `size` bytes (`a`s).
    fn streamed(chunks: usize, size: usize) -> Request {
        streaming_post(&format!(
            "{{ start(c) {{ for (let i = 0; i < {chunks}; i++) c.enqueue(new Uint8Array({size}).fill(97)); c.close(); }} }}"
        ))
    }

    #[wasm_bindgen_test]
    async fn bodies_are_capped_as_they_are_read() {
        let mut req = streamed(3, 4);
        assert_eq!(req.headers().get("Content-Length").unwrap(), None);
        assert_eq!(body_within(&mut req, 12).await.unwrap(), Some(b"aaaaaaaaaaaa".to_vec()));
        assert_eq!(body_within(&mut streamed(3, 4), 11).await.unwrap(), None);
        assert_eq!(body_within(&mut streamed(1_000, 1_024), 4_096).await.unwrap(), None);
        // A body that never ends is refused once it passes the cap, not read forever.
        let mut endless = streaming_post("{ pull(c) { c.enqueue(new Uint8Array(1024)); } }");
        assert_eq!(body_within(&mut endless, 10_000).await.unwrap(), None);
        assert_eq!(
            body_within(&mut post("{}".into()), 2).await.unwrap(),
            Some(b"{}".to_vec())
        );
        assert_eq!(body_within(&mut post("{}".into()), 1).await.unwrap(), None);
        let mut get = Request::new("http://w.test/x", Method::Get).unwrap();
        assert_eq!(body_within(&mut get, 0).await.unwrap(), Some(Vec::new()));
        let mut declared = post("{}".into());
        declared
            .headers_mut()
            .unwrap()
            .set("Content-Length", "20000000")
            .unwrap();
        assert_eq!(body_within(&mut declared, 1_000).await.unwrap(), None);
    }
}
