//! Bulk runs across invocations. A slice runs the core's [`BulkRun`] within the invocation's
//! subrequest budget, checkpoints it in KV after every answer, and leaves the rest to the next
//! invocation (a queue message). A lease keeps two invocations off one run.

use crate::config::Config;
use crate::driver::{authorized, drive, keep_token, now_ms, Budget};
use crate::kv::{RunRecord, State};
use cxone_scim_core::audit::iso8601;
use cxone_scim_core::bulk::BulkRun;
use serde::{Deserialize, Serialize};
use worker::{Env, Result};

pub const QUEUE_BINDING: &str = "BULK_QUEUE";
/// How long a lease lasts without a checkpoint renewing it.
pub const LEASE_MS: u64 = 15_000;
/// Subrequests kept back for the final checkpoint and the queue message.
const RESERVE: u32 = 2;
/// Checkpoints are written at most this often (and at the end of every slice). A step redone
/// after a restart is harmless: the pre-check tells this run's own creations from others'.
const CHECKPOINT_EVERY_MS: u64 = 2_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMessage {
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SliceEnd {
    Finished,
    /// The budget ran out; more work remains.
    Paused,
    /// Another invocation holds the lease until then.
    Busy {
        until: u64,
    },
    /// The run cannot continue until something outside changes.
    Failed(String),
}

/// Runs as much of the run as `budget` allows. `record` was just read from KV.
pub async fn run_slice(
    config: &Config,
    state: &State,
    record: &mut RunRecord,
    budget: &mut Budget,
) -> Result<SliceEnd> {
    let now = now_ms();
    if record.flow.is_finished() {
        return Ok(SliceEnd::Finished);
    }
    if record.lease_until > now {
        return Ok(SliceEnd::Busy {
            until: record.lease_until,
        });
    }
    record.lease_until = now + LEASE_MS;
    record.last_error = None;
    state.save_run(record).await?;
    budget.take(2); // the save above, the token read below
    let mut flow = authorized(record.flow.clone(), &config.credentials, config.retry, state).await;
    // Each step: one fetch and one checkpoint.
    let mut steps = Budget::new(budget.remaining().saturating_sub(RESERVE), 2);
    let before = steps.remaining();
    let mut last_checkpoint = now;
    let out = drive(&mut flow, &mut steps, async |f| {
        if now_ms().saturating_sub(last_checkpoint) < CHECKPOINT_EVERY_MS {
            return;
        }
        last_checkpoint = now_ms();
        record.flow = f.inner().clone();
        record.updated_at = iso8601(last_checkpoint);
        record.lease_until = last_checkpoint + LEASE_MS;
        // A failed checkpoint only means redoing a few steps after a restart.
        let _ = state.save_run(record).await;
    })
    .await;
    budget.take(before - steps.remaining());
    keep_token(&flow, &config.credentials, state).await;
    record.flow = flow.inner().clone();
    record.updated_at = iso8601(now_ms());
    record.lease_until = 0;
    let end = match out {
        Some(Ok(_)) => SliceEnd::Finished,
        None => SliceEnd::Paused,
        Some(Err(e)) => {
            record.last_error = Some(e.to_string());
            SliceEnd::Failed(e.to_string())
        }
    };
    state.save_run(record).await?;
    budget.take(1);
    Ok(end)
}

/// Hands the rest of a run to the next invocation.
pub async fn continue_later(env: &Env, run_id: &str) -> Result<()> {
    env.queue(QUEUE_BINDING)?
        .send(RunMessage {
            run_id: run_id.to_string(),
        })
        .await
}

/// The queue consumer: one slice per message, and a new message while work remains.
pub async fn on_message(env: &Env, msg: &RunMessage) -> Result<()> {
    let config = Config::load(env).map_err(|p| worker::Error::RustError(format!("misconfigured: {}", p.join("; "))))?;
    let state = State::open(env)?;
    for _ in 0..2 {
        let Some(mut record) = state.run(&msg.run_id).await? else {
            return Ok(());
        };
        let mut budget = Budget::new(config.subrequest_budget.saturating_sub(1), 1);
        match run_slice(&config, &state, &mut record, &mut budget).await? {
            SliceEnd::Finished | SliceEnd::Failed(_) => return Ok(()),
            SliceEnd::Paused => return continue_later(env, &msg.run_id).await,
            // Wait out a lease that may belong to an invocation that died; if it is renewed
            // meanwhile, its holder is alive and carries on alone.
            SliceEnd::Busy { until } => {
                worker::Delay::from(std::time::Duration::from_millis(until.saturating_sub(now_ms()) + 200)).await;
            }
        }
    }
    Ok(())
}

/// A fresh record for a new run.
pub fn new_record(run_id: &str, digest: String, flow: BulkRun) -> RunRecord {
    let now = iso8601(now_ms());
    RunRecord {
        run_id: run_id.to_string(),
        input_digest: digest,
        created_at: now.clone(),
        updated_at: now,
        lease_until: 0,
        last_error: None,
        flow,
    }
}
