//! Outbound notices to the IAM system (`IAM_WEBHOOK_URL`): each role sync's result, signed with
//! the Standard Webhooks scheme (`IAM_WEBHOOK_SECRET`), retried with backoff, and parked in KV
//! for replay when the receiver keeps failing. A notice that fails never turns a sync into a
//! failure: the change in CXone has happened and is in the audit trail either way.

use crate::config::Config;
use crate::driver::{now_ms, seed, send};
use crate::kv::{ParkedNotice, State};
use cxone_scim_core::audit::{iso8601, AuditEntry, RoleSyncNotice};
use cxone_scim_core::http::{HttpRequest, Method};
use cxone_scim_core::retry::{is_retryable_status, RetryDecision, RetryState};
use serde::Serialize;
use std::time::Duration;
use worker::Delay;

/// What became of a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Notice {
    /// No IAM receiver is configured.
    Off,
    Delivered {
        id: String,
        attempts: u32,
    },
    /// Kept for `POST /notices/{id}/replay` (and the cron's retry).
    Parked {
        id: String,
        attempts: u32,
        error: String,
    },
}

/// One delivery with its retries: `Ok(attempts)` or the last error.
async fn deliver(config: &Config, notice: &RoleSyncNotice) -> (Result<(), String>, u32) {
    let Some(iam) = &config.iam else {
        return (Ok(()), 0);
    };
    let mut retry = RetryState::new(config.retry, seed());
    loop {
        retry.record_attempt();
        // Signed for each try: the receiver checks the timestamp's age.
        let signed = notice.sign(&iam.secret, now_ms());
        let mut req = HttpRequest::new(Method::Post, iam.url.clone());
        for (name, value) in signed.headers() {
            req = req.header(name, &value);
        }
        req.body = Some(signed.body.clone());
        let error = match send(&req).await {
            Ok(resp) if resp.is_success() => return (Ok(()), retry.attempts),
            Ok(resp) if !is_retryable_status(resp.status) => {
                return (Err(format!("the receiver answered {}", resp.status)), retry.attempts)
            }
            Ok(resp) => format!("the receiver answered {}", resp.status),
            Err(e) => e.to_string(),
        };
        match retry.after_failure(None, now_ms()) {
            RetryDecision::RetryAt(at) => {
                Delay::from(Duration::from_millis(at.saturating_sub(now_ms()))).await;
            }
            RetryDecision::GiveUp => return (Err(error), retry.attempts),
        }
    }
}

/// Sends the notice of a role sync recorded as `entry`, parking it when it cannot be delivered.
pub async fn notify(config: &Config, state: &State, entry: &AuditEntry, reason: Option<String>) -> Notice {
    if config.iam.is_none() {
        return Notice::Off;
    }
    let notice = RoleSyncNotice::from_entry(entry, reason);
    let id = notice.id();
    match deliver(config, &notice).await {
        (Ok(()), attempts) => Notice::Delivered { id, attempts },
        (Err(error), attempts) => {
            let parked = ParkedNotice {
                id: id.clone(),
                notice,
                attempts,
                error: error.clone(),
                parked_at: iso8601(now_ms()),
            };
            // Losing the parked copy loses only the notice; the trail keeps the change.
            let _ = state.park_notice(&parked).await;
            Notice::Parked { id, attempts, error }
        }
    }
}

/// Sends a parked notice again; delivered, it is no longer kept.
pub async fn replay(config: &Config, state: &State, parked: ParkedNotice) -> Notice {
    match deliver(config, &parked.notice).await {
        (Ok(()), attempts) => {
            let _ = state.drop_notice(&parked.id).await;
            Notice::Delivered {
                id: parked.id,
                attempts: parked.attempts + attempts,
            }
        }
        (Err(error), attempts) => {
            let again = ParkedNotice {
                attempts: parked.attempts + attempts,
                error: error.clone(),
                ..parked
            };
            let _ = state.park_notice(&again).await;
            Notice::Parked {
                id: again.id,
                attempts: again.attempts,
                error,
            }
        }
    }
}
