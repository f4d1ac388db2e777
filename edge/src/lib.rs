//! The cxone-scim Worker. It routes requests and performs I/O (fetch, KV, timers); every
//! decision is made by `cxone_scim_core`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod apply;
mod audit_trail;
mod bulk;
mod config;
mod driver;
mod kv;
mod leaver_batches;
mod ledger;
mod notices;
mod objects;
mod reply;
mod routes;
mod sync;
mod wasm_bench;

use worker::{console_log, event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, &env).await
}

/// The cron (`[triggers] crons` in wrangler.toml): parked audit records appended, parked IAM
/// notices sent again, and, when Graph sync is configured, a pass and the change-notification
/// subscriptions checked.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let Ok(config) = config::Config::shared(&env) else {
        console_log!(
            "{{\"event\":\"cron\",\"cron\":{:?},\"detail\":\"misconfigured\"}}",
            event.cron()
        );
        return;
    };
    // Audit records the trail could not take get appended (a few batches at a time).
    if let Err(e) = audit_trail::replay_parked(&env, &config, 5, false).await {
        console_log!("{{\"event\":\"cron\",\"detail\":{:?}}}", format!("audit replay: {e}"));
    }
    if config.iam.is_some() || config.deprovision.hr.is_some() {
        // Parked notices (to the IAM system, to HR) get another try with every cron (a few at a time).
        if let Ok(state) = kv::State::open(&env) {
            if let Ok((parked, _)) = state.notices(None, 5).await {
                for notice in parked {
                    let _ = notices::replay(&config, &state, notice).await;
                }
            }
        }
    }
    let Some(graph) = &config.graph else { return };
    let renew = graph.notification_url.is_some();
    let kicked = match sync::GraphSync::open(&env) {
        Ok(s) => s.kick("cron", renew).await,
        Err(e) => Err(e),
    };
    if let Err(e) = kicked {
        console_log!("{{\"event\":\"cron\",\"detail\":{:?}}}", e.to_string());
    }
}
