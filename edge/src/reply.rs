//! JSON responses and SCIM-style errors.

use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::scim::ScimError;
use serde::Serialize;
use worker::{Headers, Request, Response, Result};

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::from_json(body)?.with_status(status).with_headers(headers))
}

/// `{"schemas":[...Error],"status":"401","scimType"?,"detail"}` with that HTTP status.
pub fn error(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Result<Response> {
    json(status, &ScimError::new(status, scim_type, detail))
}

/// 401 for the admin endpoints, with the challenge RFC 6750 asks for.
pub fn unauthorized(detail: &str) -> Result<Response> {
    let resp = error(401, None, detail)?;
    resp.headers().set("WWW-Authenticate", "Bearer")?;
    Ok(resp)
}

/// The request body, or `None` when it is over `max` bytes (as declared, or as read).
pub async fn body_within(req: &mut Request, max: usize) -> Result<Option<Vec<u8>>> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Ok(None);
    }
    let bytes = req.bytes().await?;
    Ok((bytes.len() <= max).then_some(bytes))
}

pub fn too_large(max: usize) -> Result<Response> {
    error(413, None, format!("body over {max} bytes"))
}

/// The one way an [`ApiError`] becomes a response (with `Retry-After` when it says so).
pub fn api_error(e: &ApiError) -> Result<Response> {
    let resp = json(e.status, &e.to_scim())?;
    if let Some(secs) = e.retry_after_secs {
        resp.headers().set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}
