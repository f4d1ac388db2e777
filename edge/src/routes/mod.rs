//! Routing, admin authentication, and the one audit line per request.

mod admin;
mod bulk;
mod health;
mod lifecycle;

use crate::config::Config;
use crate::driver::now_ms;
use crate::reply;
use cxone_scim_core::audit::{AuditRecord, Outcome};
use worker::{console_log, Env, Request, Response, Result};

pub async fn handle(req: Request, env: &Env) -> Result<Response> {
    let started = now_ms();
    let path = req.path();
    let mut audit = AuditRecord::new(started, req.method().as_ref(), &path);
    let resp = route(req, env, &path, &mut audit).await.or_else(|e| {
        audit.detail = Some(format!("internal error: {e}"));
        reply::error(500, None, "internal error; see the Worker log")
    })?;
    audit.status = resp.status_code();
    if audit.status >= 400 && audit.outcome == Outcome::Success {
        audit.outcome = Outcome::Rejected;
    }
    audit.latency_ms = now_ms().saturating_sub(started);
    console_log!("{}", audit.to_json_line());
    Ok(resp)
}

async fn route(req: Request, env: &Env, path: &str, audit: &mut AuditRecord) -> Result<Response> {
    let method = req.method();
    let run_id = path.strip_prefix("/provision/bulk/").filter(|id| !id.is_empty());
    let allowed = match path {
        "/healthz" => "GET",
        "/webhooks/lifecycle" | "/provision/bulk" => "POST",
        "/test/validate" | "/failures" | "/metrics" => "GET",
        _ if run_id.is_some() => "GET",
        _ => return reply::error(404, None, format!("no route {path}")),
    };
    if method.as_ref() != allowed {
        let resp = reply::error(405, None, format!("{path} accepts {allowed}"))?;
        resp.headers().set("Allow", allowed)?;
        return Ok(resp);
    }
    if path == "/healthz" {
        let presented = req.headers().get("Authorization")?;
        let admin = crate::config::admin_tokens(env).is_some_and(|t| t.authorizes(presented.as_deref()));
        return health::healthz(env, admin);
    }
    let config = match Config::load(env) {
        Ok(c) => c,
        Err(problems) => {
            audit.detail = Some(problems.join("; "));
            return reply::error(503, None, format!("misconfigured: {}", problems.join("; ")));
        }
    };
    if path == "/webhooks/lifecycle" {
        return lifecycle::handle(req, env, &config, audit).await;
    }
    if !config
        .admin_tokens
        .authorizes(req.headers().get("Authorization")?.as_deref())
    {
        return reply::unauthorized("admin bearer token missing or wrong");
    }
    match (path, run_id) {
        ("/provision/bulk", _) => bulk::post(req, env, &config, audit).await,
        ("/test/validate", _) => health::validate(env, &config).await,
        ("/metrics", _) => admin::metrics(),
        (_, Some(id)) => bulk::get(env, id).await,
        _ => admin::failures(env).await,
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::config::tests::{env_of, full_env, BINDING_PROBLEMS};
    use wasm_bindgen_test::wasm_bindgen_test;
    use worker::Method;

    async fn call(method: Method, path: &str, env: &Env) -> (u16, serde_json::Value) {
        call_as(None, method, path, env).await
    }

    async fn call_as(token: Option<&str>, method: Method, path: &str, env: &Env) -> (u16, serde_json::Value) {
        let mut req = Request::new(&format!("http://w.test{path}"), method).unwrap();
        if let Some(token) = token {
            req.headers_mut()
                .unwrap()
                .set("Authorization", &format!("Bearer {token}"))
                .unwrap();
        }
        let mut resp = handle(req, env).await.unwrap();
        (resp.status_code(), resp.json().await.unwrap())
    }

    #[wasm_bindgen_test]
    async fn unknown_routes_and_methods() {
        let env = env_of(&full_env());
        let (status, body) = call(Method::Get, "/nope", &env).await;
        assert_eq!((status, body["status"].as_str()), (404, Some("404")));
        let (status, _) = call(Method::Get, "/webhooks/lifecycle", &env).await;
        assert_eq!(status, 405);
    }

    #[wasm_bindgen_test]
    async fn healthz_reports_problems_to_admins_only_and_other_routes_refuse() {
        let env = env_of(&full_env());
        let (status, body) = call(Method::Get, "/healthz", &env).await;
        assert_eq!((status, body), (503, serde_json::json!({"status": "misconfigured"})));
        let (status, body) = call_as(Some("wrong"), Method::Get, "/healthz", &env).await;
        assert_eq!((status, body), (503, serde_json::json!({"status": "misconfigured"})));
        let (status, body) = call_as(Some("a2"), Method::Get, "/healthz", &env).await;
        assert_eq!(status, 503);
        assert_eq!(body["status"], "misconfigured");
        assert_eq!(body["problems"], serde_json::json!(BINDING_PROBLEMS));
        // The admin token still counts when everything else is broken.
        let broken = env_of(&[("ADMIN_TOKEN", "a1"), ("ROLE_POLICY", "{")]);
        let (_, body) = call_as(Some("a1"), Method::Get, "/healthz", &broken).await;
        assert!(body["problems"].as_array().unwrap().len() > 2, "{body}");
        let (status, body) = call(Method::Get, "/failures", &env).await;
        assert_eq!(status, 503);
        assert!(body["detail"].as_str().unwrap().starts_with("misconfigured"));
    }
}
