//! `GET /failures`: events CXone could not take, oldest first. `GET /metrics`: the isolate's
//! wasm linear memory, for leak checks.

use crate::kv::State;
use crate::reply;
use serde_json::json;
use worker::{Env, Response, Result};

pub async fn failures(env: &Env) -> Result<Response> {
    let failures = State::open(env)?.failures().await?;
    reply::json(200, &json!({"count": failures.len(), "failures": failures}))
}

/// WebAssembly pages are 64 KiB.
const WASM_PAGE: usize = 65_536;

pub fn metrics() -> Result<Response> {
    #[cfg(target_arch = "wasm32")]
    let bytes = core::arch::wasm32::memory_size(0) * WASM_PAGE;
    #[cfg(not(target_arch = "wasm32"))]
    let bytes = 0usize;
    reply::json(200, &json!({"wasmMemoryBytes": bytes}))
}
