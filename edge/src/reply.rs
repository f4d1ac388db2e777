//! JSON responses and SCIM-style errors.

use cxone_scim_core::scim::ScimError;
use serde::Serialize;
use worker::{Headers, Response, Result};

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
