//! `GET /failures`: events CXone could not take, oldest first.

use crate::kv::State;
use crate::reply;
use serde_json::json;
use worker::{Env, Response, Result};

pub async fn failures(env: &Env) -> Result<Response> {
    let failures = State::open(env)?.failures().await?;
    reply::json(200, &json!({"count": failures.len(), "failures": failures}))
}
