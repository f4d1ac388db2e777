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

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, &env).await
}
