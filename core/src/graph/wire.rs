//! What the Graph flows share: reading Graph's error body, and following only links that stay
//! on Graph's own origin.

use crate::flows::exchange::Exchange;
use crate::flows::FlowError;
use crate::http::{truncated, HttpResponse};
use serde::Deserialize;

/// Longest piece of Graph's error message kept in an error.
const MESSAGE_LIMIT: usize = 512;

/// Graph's error body: `{"error":{"code","message","innerError":{...}}}`.
#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct GraphError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Graph's error fields, when the body has Graph's error shape.
pub(super) fn graph_error(resp: &HttpResponse) -> Option<GraphError> {
    serde_json::from_str::<GraphErrorBody>(&resp.body).ok().map(|b| b.error)
}

/// `scheme://host[:port]` of an absolute URL.
pub(super) fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + host_end])
}

/// Whether `link` is an absolute URL on the origin of `base`. A link elsewhere (or relative, or
/// with userinfo that turns the host into another) would carry the bearer token off Graph.
pub(super) fn same_origin(link: &str, base: &str) -> bool {
    matches!((origin(link), origin(base)), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// The error for a link Graph handed out that points elsewhere (its query left out: it may
/// carry tokens).
pub(super) fn foreign_link(exchange: &Exchange, status: u16, link: &str) -> FlowError {
    let shown = link.split(['?', '#']).next().unwrap_or(link);
    FlowError::Rejected {
        request: exchange.describe(),
        status,
        scim_type: None,
        detail: Some(format!(
            "Graph answered with a link to another origin: {}",
            truncated(shown, MESSAGE_LIMIT)
        )),
    }
}

/// The error for a final non-success answer, with Graph's `code: message` as its detail when
/// the body has Graph's error shape.
pub(super) fn rejected(exchange: &Exchange, resp: &HttpResponse) -> FlowError {
    let mut err = exchange.rejected(resp);
    if let (FlowError::Rejected { detail, .. }, Some(g)) = (&mut err, graph_error(resp)) {
        *detail = Some(format!("{}: {}", g.code, truncated(&g.message, MESSAGE_LIMIT)));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpRequest, Method};
    use crate::retry::RetryPolicy;
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "https://graph.microsoft.com/v1.0";

    #[wasm_bindgen_test(unsupported = test)]
    fn only_links_on_graphs_origin_are_followed() {
        assert!(same_origin("https://graph.microsoft.com/v1.0/users?$skiptoken=x", BASE));
        assert!(same_origin("HTTPS://Graph.Microsoft.com/v1.0/users", BASE));
        for foreign in [
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "https://graph.microsoft.com@evil.example/v1.0/users",
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "/v1.0/users?$skiptoken=x",
            "",
        ] {
            assert!(!same_origin(foreign, BASE), "{foreign:?} followed");
        }
        assert!(same_origin(
            "http://127.0.0.1:8795/v1.0/users?x=1",
            "http://127.0.0.1:8795/v1.0"
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn graph_errors_become_the_detail_and_foreign_links_lose_their_query() {
        let mut x = Exchange::new(RetryPolicy::default(), 1);
        x.start(HttpRequest::new(
            Method::Get,
            format!("{BASE}/users/u1/transitiveMemberOf"),
        ));
        let sample = include_str!("../../tests/fixtures/graph_error_response.json");
        let err = rejected(&x, &HttpResponse::new(416, sample));
        assert_eq!(
            err,
            FlowError::Rejected {
                request: "GET /v1.0/users/u1/transitiveMemberOf".into(),
                status: 416,
                scim_type: None,
                detail: Some("invalidRange: Uploaded fragment overlaps with existing data.".into()),
            }
        );
        let err = foreign_link(&x, 200, "https://evil.example/v1.0/users?$skiptoken=secret");
        let text = err.to_string();
        assert!(
            text.contains("another origin: https://evil.example/v1.0/users"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}
