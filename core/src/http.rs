//! Plain HTTP values exchanged between a flow and its host.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

pub const SCIM_JSON: &str = "application/scim+json";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A request a flow wants sent. The body is text: SCIM JSON or a form. `Debug` shows the
/// method, the URL and the headers, credentials redacted, and only the body's length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl HttpRequest {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }

    /// Sets a header, replacing any value of the same (case-insensitive) name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// A SCIM JSON request with `body` serialised.
    pub fn scim_json<T: Serialize>(method: Method, url: impl Into<String>, body: &T) -> Self {
        let mut req = Self::new(method, url).header("Accept", SCIM_JSON);
        // Serialising our own models cannot fail (string keys, no non-finite floats).
        req.body = serde_json::to_string(body).ok();
        req.header("Content-Type", SCIM_JSON)
    }

    /// A SCIM request without a body (GET, DELETE).
    pub fn scim(method: Method, url: impl Into<String>) -> Self {
        Self::new(method, url).header("Accept", SCIM_JSON)
    }

    /// A short description for logs and errors: method and path, never headers or body.
    pub fn describe(&self) -> String {
        let path = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
        let path = path.split('?').next().unwrap_or(path);
        format!("{} {}", self.method.as_str(), path)
    }
}

/// A response handed back to a flow. `Debug` shows the status, the headers, credentials
/// redacted, and only the body's length.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// For a 3xx answer: where it points (`Location`, query and fragment left out: they may
    /// carry tokens) and that it was not followed. `None` for any other status.
    pub fn redirect_detail(&self) -> Option<String> {
        if !(300..400).contains(&self.status) {
            return None;
        }
        let target = self.header("location").map(str::trim).filter(|l| !l.is_empty());
        Some(match target {
            Some(target) => {
                let target = target.split(['?', '#']).next().unwrap_or(target);
                format!(
                    "redirected to {}; redirects are not followed",
                    truncated(target, REDIRECT_TARGET_LIMIT)
                )
            }
            None => "redirect without a Location; redirects are not followed".to_string(),
        })
    }
}

/// Headers whose values are credentials.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

/// Headers as `name: value`, credentials as `name: [redacted]`.
struct HeadersDebug<'a>(&'a [(String, String)]);

impl fmt::Debug for HeadersDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in self.0 {
            if CREDENTIAL_HEADERS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
                list.entry(&format_args!("{name}: [redacted]"));
            } else {
                list.entry(&format_args!("{name}: {value:?}"));
            }
        }
        list.finish()
    }
}

/// A body as its length: bodies carry secrets (a token request) and personal data.
struct BodyDebug(usize);

impl fmt::Debug for BodyDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} bytes]", self.0)
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &HeadersDebug(&self.headers))
            .field("body", &self.body.as_ref().map(|b| BodyDebug(b.len())))
            .finish()
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &HeadersDebug(&self.headers))
            .field("body", &BodyDebug(self.body.len()))
            .finish()
    }
}

/// Longest redirect target kept in an error.
const REDIRECT_TARGET_LIMIT: usize = 512;

/// The request never produced a response (DNS, connect, reset, timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport error: {0}")]
pub struct TransportError(pub String);

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// At most `limit` bytes of `body`, cut at a character boundary: enough of a raw answer to
/// diagnose it without keeping all of it.
pub fn truncated(body: &str, limit: usize) -> String {
    let mut end = body.len().min(limit);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

/// Percent-encodes a query component or form value (RFC 3986 unreserved characters kept).
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` body from pairs.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn encodes_filters_and_forms() {
        assert_eq!(
            encode_component(r#"userName eq "a b@x.com""#),
            "userName%20eq%20%22a%20b%40x.com%22"
        );
        assert_eq!(
            form_body(&[("grant_type", "client_credentials"), ("scope", "a b")]),
            "grant_type=client_credentials&scope=a%20b"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn truncation_respects_characters() {
        assert_eq!(truncated("abcdef", 4), "abcd");
        assert_eq!(truncated("aé", 2), "a", "never splits a multi-byte character");
        assert_eq!(truncated("ab", 10), "ab");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn headers_are_case_insensitive_and_replaced() {
        let req = HttpRequest::new(Method::Get, "http://h/scim/v2/Users?filter=x")
            .header("accept", "a")
            .header("Accept", "b");
        assert_eq!(req.headers.len(), 1);
        assert_eq!(req.header_value("ACCEPT"), Some("b"));
        assert_eq!(req.describe(), "GET /scim/v2/Users");
        let resp = HttpResponse::new(429, "").with_header("Retry-After", "3");
        assert_eq!(resp.header("retry-after"), Some("3"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn redirects_are_described_with_their_target() {
        let resp = HttpResponse::new(302, "").with_header("location", " https://sso.example/login?token=t#x ");
        assert_eq!(
            resp.redirect_detail().as_deref(),
            Some("redirected to https://sso.example/login; redirects are not followed")
        );
        assert_eq!(
            HttpResponse::new(304, "").redirect_detail().as_deref(),
            Some("redirect without a Location; redirects are not followed")
        );
        assert_eq!(
            HttpResponse::new(200, "")
                .with_header("Location", "/x")
                .redirect_detail(),
            None
        );
        assert_eq!(HttpResponse::new(400, "").redirect_detail(), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn debug_shows_neither_credentials_nor_bodies() {
        let req = HttpRequest::scim_json(
            Method::Post,
            "http://h/scim/v2/Users",
            &serde_json::json!({"userName": "jdoe@x.io"}),
        )
        .header("Authorization", "Bearer sk-live-123");
        let text = format!("{req:?}");
        assert_eq!(
            text,
            r#"HttpRequest { method: Post, url: "http://h/scim/v2/Users", headers: [Accept: "application/scim+json", Content-Type: "application/scim+json", Authorization: [redacted]], body: Some([24 bytes]) }"#
        );
        let resp = HttpResponse::new(200, r#"{"access_token":"at-secret"}"#).with_header("Set-Cookie", "s=1");
        let text = format!("{resp:?}");
        assert!(!text.contains("at-secret") && !text.contains("s=1"), "{text}");
        assert!(text.contains("[28 bytes]"), "{text}");
    }
}
