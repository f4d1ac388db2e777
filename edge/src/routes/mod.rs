//! Routing, admin authentication, and the one audit line per request.

mod admin;
mod audit;
mod bulk;
mod deprovision;
mod graph;
mod health;
pub(crate) mod lifecycle;
mod people;
mod roles;

use crate::config::Config;
use crate::driver::now_ms;
use crate::reply;
use cxone_scim_core::api_error::ApiError;
use cxone_scim_core::audit::{AuditRecord, Outcome};
use cxone_scim_core::dry_run;
use worker::{console_log, Env, Request, Response, Result};

pub async fn handle(req: Request, env: &Env) -> Result<Response> {
    let started = now_ms();
    let path = req.path();
    let mut audit = AuditRecord::new(started, req.method().as_ref(), &path);
    let resp = route(req, env, &path, &mut audit).await.or_else(|e| {
        audit.detail = Some(format!("internal error: {e}"));
        reply::api_error(&ApiError::internal())
    })?;
    audit.status = resp.status_code();
    if audit.status >= 400 && audit.outcome == Outcome::Success {
        audit.outcome = Outcome::Rejected;
    }
    audit.latency_ms = now_ms().saturating_sub(started);
    console_log!("{}", audit.to_json_line());
    Ok(resp)
}

/// Every route the Worker serves, parsed once from method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Healthz,
    Lifecycle,
    Validate,
    Metrics,
    Failures,
    ReplayFailure(String),
    Conflicts,
    DismissConflict(String),
    BulkStart,
    BulkRun(String),
    GraphNotifications,
    SyncStatus,
    SyncRun,
    SyncApprove,
    SyncReject,
    Audit,
    AuditVerify,
    AuditParked,
    ReplayAuditParked,
    RoleSync,
    Notices,
    ReplayNotice(String),
    Person(String),
    ResetMarks(String),
    Deprovision,
    Leavers,
    Leaver(String),
    ReplayLeaver(String),
    LeaverBatch(String),
    ApproveLeaverBatch(String),
    RejectLeaverBatch(String),
}

impl Route {
    /// An admin POST whose body holds `dryRun` alone (bulk runs and role sync read it inside
    /// their own bodies).
    fn reads_dry_run(&self) -> bool {
        matches!(
            self,
            Self::ReplayFailure(_)
                | Self::ReplayNotice(_)
                | Self::ReplayAuditParked
                | Self::ResetMarks(_)
                | Self::ReplayLeaver(_)
                | Self::ApproveLeaverBatch(_)
                | Self::RejectLeaverBatch(_)
                | Self::SyncRun
                | Self::SyncApprove
                | Self::SyncReject
        )
    }
}

/// The route for `method path`: 404 for an unknown path, 405 (with `Allow`) for another method.
fn parse(method: &str, path: &str) -> std::result::Result<Route, (u16, &'static str)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        ["healthz"] => (Route::Healthz, "GET"),
        ["webhooks", "lifecycle"] => (Route::Lifecycle, "POST"),
        ["test", "validate"] => (Route::Validate, "GET"),
        ["metrics"] => (Route::Metrics, "GET"),
        ["failures"] => (Route::Failures, "GET"),
        ["failures", id, "replay"] if !id.is_empty() => (Route::ReplayFailure(id.to_string()), "POST"),
        ["conflicts"] => (Route::Conflicts, "GET"),
        ["conflicts", id] if !id.is_empty() => (Route::DismissConflict(id.to_string()), "DELETE"),
        ["provision", "bulk"] => (Route::BulkStart, "POST"),
        ["provision", "bulk", id] if !id.is_empty() => (Route::BulkRun(id.to_string()), "GET"),
        ["graph", "notifications"] => (Route::GraphNotifications, "POST"),
        ["sync", "status"] => (Route::SyncStatus, "GET"),
        ["sync", "run"] => (Route::SyncRun, "POST"),
        ["sync", "approve"] => (Route::SyncApprove, "POST"),
        ["sync", "reject"] => (Route::SyncReject, "POST"),
        ["audit"] => (Route::Audit, "GET"),
        ["roles", "sync"] => (Route::RoleSync, "POST"),
        ["notices"] => (Route::Notices, "GET"),
        ["notices", id, "replay"] if !id.is_empty() => (Route::ReplayNotice(id.to_string()), "POST"),
        ["audit", "verify"] => (Route::AuditVerify, "GET"),
        ["audit", "parked"] => (Route::AuditParked, "GET"),
        ["audit", "parked", "replay"] => (Route::ReplayAuditParked, "POST"),
        ["people", key] if !key.is_empty() => (Route::Person(key.to_string()), "GET"),
        ["people", key, "reset-marks"] if !key.is_empty() => (Route::ResetMarks(key.to_string()), "POST"),
        ["deprovision"] if method == "GET" => (Route::Leavers, "GET"),
        ["deprovision"] if method == "POST" => (Route::Deprovision, "POST"),
        ["deprovision"] => return Err((405, "GET, POST")),
        ["deprovision", "batches", id] if !id.is_empty() => (Route::LeaverBatch(id.to_string()), "GET"),
        ["deprovision", "batches", id, "approve"] if !id.is_empty() => {
            (Route::ApproveLeaverBatch(id.to_string()), "POST")
        }
        ["deprovision", "batches", id, "reject"] if !id.is_empty() => {
            (Route::RejectLeaverBatch(id.to_string()), "POST")
        }
        ["deprovision", id] if !id.is_empty() => (Route::Leaver(id.to_string()), "GET"),
        ["deprovision", id, "replay"] if !id.is_empty() => (Route::ReplayLeaver(id.to_string()), "POST"),
        _ => return Err((404, "")),
    };
    if method != allowed {
        return Err((405, allowed));
    }
    Ok(route)
}

async fn route(mut req: Request, env: &Env, path: &str, audit: &mut AuditRecord) -> Result<Response> {
    let route = match parse(req.method().as_ref(), path) {
        Ok(r) => r,
        Err((404, _)) => return reply::api_error(&ApiError::not_found(format!("no route {path}"))),
        Err((_, allowed)) => {
            let resp = reply::api_error(&ApiError::method_not_allowed(path, allowed))?;
            resp.headers().set("Allow", allowed)?;
            return Ok(resp);
        }
    };
    let presented = req.headers().get("Authorization")?;
    // Read from ADMIN_TOKEN alone, so it works when the rest of the configuration is broken.
    let admin = crate::config::admin_tokens(env).is_some_and(|t| t.authorizes(presented.as_deref()));
    if route == Route::Healthz {
        return health::healthz(env, admin);
    }
    let config = match Config::shared(env) {
        Ok(c) => c,
        Err(problems) => {
            audit.detail = Some(problems.join("; "));
            // What is wrong is told to admins only, as on /healthz.
            let detail = if admin {
                format!("misconfigured: {}", problems.join("; "))
            } else {
                "misconfigured; an admin token shows the problems".to_string()
            };
            return reply::api_error(&ApiError::unavailable(detail));
        }
    };
    if route == Route::Lifecycle {
        return lifecycle::handle(req, env, &config, audit).await;
    }
    if route == Route::GraphNotifications {
        return graph::notifications(req, env, &config, audit).await;
    }
    if !admin {
        return reply::unauthorized("admin bearer token missing or wrong");
    }
    // Read before anything runs: a request whose dryRun cannot be read does nothing.
    let dry_run = if route.reads_dry_run() {
        match dry_run(&mut req).await? {
            Ok(d) => d,
            Err(e) => return reply::api_error(&e),
        }
    } else {
        false
    };
    match route {
        Route::BulkStart => bulk::post(req, env, &config, audit).await,
        Route::BulkRun(id) => bulk::get(&req, env, &id).await,
        Route::Validate => health::validate(env, &config).await,
        Route::Metrics => admin::metrics(),
        Route::Failures => admin::failures(&req, env).await,
        Route::Conflicts => admin::conflicts(&req, env).await,
        Route::DismissConflict(id) => admin::dismiss_conflict(env, &id).await,
        Route::ReplayFailure(id) => admin::replay(env, &config, &id, dry_run, audit).await,
        Route::SyncStatus => graph::status(env, &config).await,
        Route::Audit => audit::list(&req, env).await,
        Route::RoleSync => roles::sync(req, env, &config, audit).await,
        Route::Notices => admin::notices(&req, env).await,
        Route::ReplayNotice(id) => admin::replay_notice(env, &config, &id, dry_run).await,
        Route::AuditVerify => audit::verify(&req, env).await,
        Route::AuditParked => admin::parked_audits(&req, env).await,
        Route::ReplayAuditParked => audit::replay_parked(env, &config, dry_run).await,
        Route::Person(key) => people::show(env, &key).await,
        Route::ResetMarks(key) => people::reset_marks(env, &config, &key, dry_run, audit).await,
        Route::SyncRun => graph::run(env, &config, dry_run).await,
        Route::Deprovision => deprovision::post(req, env, &config, audit).await,
        Route::Leavers => deprovision::list(&req, env).await,
        Route::Leaver(id) => deprovision::show(env, &id).await,
        Route::ReplayLeaver(id) => deprovision::replay(env, &config, &id, dry_run, audit).await,
        Route::LeaverBatch(id) => deprovision::batch(&req, env, &id).await,
        Route::ApproveLeaverBatch(id) => deprovision::decide(env, &id, true, dry_run).await,
        Route::RejectLeaverBatch(id) => deprovision::decide(env, &id, false, dry_run).await,
        Route::SyncApprove | Route::SyncReject => {
            graph::decide(env, &config, route == Route::SyncApprove, dry_run).await
        }
        Route::Healthz | Route::Lifecycle | Route::GraphNotifications => {
            reply::api_error(&ApiError::not_found(path.to_string()))
        }
    }
}

/// `dryRun` of an admin POST whose body holds nothing else: read strictly by core
/// (`true|false`, any case, query or body), else the 400 or 413 to answer with.
async fn dry_run(req: &mut Request) -> Result<std::result::Result<bool, ApiError>> {
    let Some(body) = reply::body_within(req, dry_run::MAX_FLAG_BODY).await? else {
        return Ok(Err(ApiError::too_large(dry_run::MAX_FLAG_BODY)));
    };
    let url = req.url()?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok(dry_run::read(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &body).map_err(ApiError::from))
}

/// The body of an admin POST whose typed body carries `dryRun` too (bulk runs, role sync,
/// leavers): what the query says of `dryRun`, and the body within `max` bytes; else the 400 or
/// 413 to answer with.
pub(crate) async fn typed_body(
    req: &mut Request,
    max: usize,
) -> Result<std::result::Result<(Option<bool>, Vec<u8>), ApiError>> {
    let query = match dry_run_query(req)? {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    Ok(match reply::body_within(req, max).await? {
        Some(bytes) => Ok((query, bytes)),
        None => Err(ApiError::too_large(max)),
    })
}

/// What the query says of `dryRun`, for the admin POSTs whose typed body carries it too.
fn dry_run_query(req: &Request) -> Result<std::result::Result<Option<bool>, ApiError>> {
    let url = req.url()?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok(dry_run::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(ApiError::from))
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
    fn routes_parse_once() {
        assert_eq!(parse("POST", "/webhooks/lifecycle"), Ok(Route::Lifecycle));
        assert_eq!(
            parse("POST", "/failures/ab12/replay"),
            Ok(Route::ReplayFailure("ab12".into()))
        );
        assert_eq!(
            parse("DELETE", "/conflicts/ab12"),
            Ok(Route::DismissConflict("ab12".into()))
        );
        assert_eq!(parse("GET", "/provision/bulk/r-1"), Ok(Route::BulkRun("r-1".into())));
        assert_eq!(parse("POST", "/graph/notifications"), Ok(Route::GraphNotifications));
        assert_eq!(parse("GET", "/sync/status"), Ok(Route::SyncStatus));
        assert_eq!(parse("POST", "/sync/approve"), Ok(Route::SyncApprove));
        assert_eq!(parse("GET", "/sync/run"), Err((405, "POST")));
        assert_eq!(parse("GET", "/audit/parked"), Ok(Route::AuditParked));
        assert_eq!(parse("POST", "/audit/parked/replay"), Ok(Route::ReplayAuditParked));
        assert_eq!(parse("GET", "/audit/parked/replay"), Err((405, "POST")));
        assert_eq!(parse("GET", "/people/ext:e-1"), Ok(Route::Person("ext:e-1".into())));
        assert_eq!(
            parse("POST", "/people/user:a%40b.co/reset-marks"),
            Ok(Route::ResetMarks("user:a%40b.co".into()))
        );
        assert_eq!(parse("GET", "/people/ext:e-1/reset-marks"), Err((405, "POST")));
        // Every POST reads dryRun: in a body of its own, or inside its typed body.
        for (path, own) in [
            ("/failures/x/replay", true),
            ("/notices/x/replay", true),
            ("/audit/parked/replay", true),
            ("/people/ext:e/reset-marks", true),
            ("/sync/run", true),
            ("/sync/approve", true),
            ("/sync/reject", true),
            ("/provision/bulk", false),
            ("/roles/sync", false),
            ("/deprovision", false),
            ("/deprovision/dp_1/replay", true),
            ("/deprovision/batches/lb_1/approve", true),
            ("/deprovision/batches/lb_1/reject", true),
        ] {
            assert_eq!(parse("POST", path).map(|r| r.reads_dry_run()), Ok(own), "{path}");
        }
        assert_eq!(parse("GET", "/conflicts/ab12"), Err((405, "DELETE")));
        assert_eq!(parse("GET", "/deprovision"), Ok(Route::Leavers));
        assert_eq!(parse("POST", "/deprovision"), Ok(Route::Deprovision));
        assert_eq!(parse("PUT", "/deprovision"), Err((405, "GET, POST")));
        assert_eq!(parse("GET", "/deprovision/dp_1"), Ok(Route::Leaver("dp_1".into())));
        assert_eq!(
            parse("GET", "/deprovision/batches/lb_1"),
            Ok(Route::LeaverBatch("lb_1".into()))
        );
        assert_eq!(parse("GET", "/deprovision/dp_1/replay"), Err((405, "POST")));
        for unknown in ["/", "/failures/", "/failures/x/y", "/provision/bulk/", "/webhooks"] {
            assert_eq!(parse("GET", unknown).map_err(|e| e.0), Err(404), "{unknown}");
        }
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
        let (status, body) = call_as(
            Some("edge-admin-token-two-0123456789abcdef"),
            Method::Get,
            "/healthz",
            &env,
        )
        .await;
        assert_eq!(status, 503);
        assert_eq!(body["status"], "misconfigured");
        assert_eq!(body["problems"], serde_json::json!(BINDING_PROBLEMS));
        // The admin token still counts when everything else is broken.
        let broken = env_of(&[
            ("ADMIN_TOKEN", "edge-admin-token-one-0123456789abcdef"),
            ("ROLE_POLICY", "{"),
        ]);
        let (_, body) = call_as(
            Some("edge-admin-token-one-0123456789abcdef"),
            Method::Get,
            "/healthz",
            &broken,
        )
        .await;
        assert!(body["problems"].as_array().unwrap().len() > 2, "{body}");
        let (status, body) = call(Method::Get, "/failures", &env).await;
        assert_eq!(status, 503);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("misconfigured") && !detail.contains("binding"),
            "{detail}"
        );
        let (_, body) = call_as(
            Some("edge-admin-token-one-0123456789abcdef"),
            Method::Get,
            "/failures",
            &env,
        )
        .await;
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .contains("KV namespace binding STATE is missing"));
    }
}
