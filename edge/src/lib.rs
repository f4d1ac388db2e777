//! The cxone-scim Worker. It routes requests and performs I/O (fetch, KV, timers); every
//! decision is made by `cxone_scim_core`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod bulk;
mod config;
mod driver;
mod kv;
mod ledger;
mod reply;
mod routes;
mod wasm_bench;

use worker::{console_error, event, Context, Env, MessageBatch, MessageExt, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, &env).await
}

/// Continues bulk runs that outgrew one invocation's subrequest budget.
#[event(queue)]
async fn queue(batch: MessageBatch<bulk::RunMessage>, env: Env, _ctx: Context) -> Result<()> {
    for message in batch.messages()? {
        if let Err(e) = bulk::on_message(&env, message.body()).await {
            // Left unacknowledged: the queue delivers it again.
            console_error!(
                "{{\"queue\":\"bulk\",\"runId\":{:?},\"error\":{:?}}}",
                message.body().run_id,
                e.to_string()
            );
            message.retry();
            continue;
        }
        message.ack();
    }
    Ok(())
}
