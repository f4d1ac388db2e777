//! The cxone-scim Worker. It routes requests and performs I/O (fetch, KV, timers); every
//! decision is made by `cxone_scim_core`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod audit_trail;
mod bulk;
mod config;
mod driver;
mod kv;
mod ledger;
mod notices;
mod reply;
mod routes;
mod sync;
mod wasm_bench;

use worker::{console_log, event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, &env).await
}

/// The cron (`[triggers] crons` in wrangler.toml): a Graph sync pass, and the change-notification
/// subscriptions checked, when Graph sync is configured.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let Ok(config) = config::Config::load(&env) else {
        console_log!(
            "{{\"event\":\"cron\",\"cron\":{:?},\"detail\":\"misconfigured\"}}",
            event.cron()
        );
        return;
    };
    let Some(graph) = &config.graph else { return };
    let renew = graph.notification_url.is_some();
    let kicked = match sync::Sync::open(&env) {
        Ok(s) => s.kick("cron", renew).await,
        Err(e) => Err(e),
    };
    if let Err(e) = kicked {
        console_log!("{{\"event\":\"cron\",\"detail\":{:?}}}", e.to_string());
    }
}
