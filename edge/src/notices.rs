//! Outbound notices, signed with the Standard Webhooks scheme, retried with backoff, and parked
//! in KV for replay when the receiver keeps failing:
//! - to the IAM system (`IAM_WEBHOOK_URL`, `IAM_WEBHOOK_SECRET`): each role sync's result;
//! - to HR (`HR_WEBHOOK_URL`, `HR_WEBHOOK_SECRET`): each leaver, once its steps have settled.
//!
//! A notice that fails never turns the change into a failure: it has happened in CXone and is
//! in the audit trail either way.

use crate::config::Config;
use crate::driver::{now_ms, seed, send};
use crate::kv::{ParkedNotice, State};
use cxone_scim_core::audit::{iso8601, AuditEntry, Outbound, RoleSyncNotice};
use cxone_scim_core::deprovision::DeprovisionNotice;
use cxone_scim_core::http::{HttpRequest, Method};
use cxone_scim_core::retry::{is_retryable_status, RetryDecision, RetryState};
use cxone_scim_core::settings::NoticeReceiver;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use worker::Delay;

/// What became of a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Notice {
    /// No receiver is configured.
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

/// Where `notice` goes, when its receiver is configured.
pub fn receiver<'a>(config: &'a Config, notice: &Outbound) -> Option<&'a NoticeReceiver> {
    match notice {
        Outbound::RoleSync(_) => config.iam.as_ref(),
        Outbound::Leaver(_) => config.deprovision.hr.as_ref(),
    }
}

/// One delivery with its retries: `Ok(attempts)` or the last error.
async fn deliver(config: &Config, to: &NoticeReceiver, notice: &Outbound) -> (Result<(), String>, u32) {
    let mut retry = RetryState::new(config.retry, seed());
    loop {
        retry.record_attempt();
        // Signed for each try: the receiver checks the timestamp's age.
        let signed = notice.sign(&to.secret, now_ms());
        let mut req = HttpRequest::new(Method::Post, to.url.clone());
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

/// Sends `notice` to its receiver, parking it when it cannot be delivered.
async fn send_or_park(config: &Config, state: &State, notice: Outbound) -> Notice {
    let Some(to) = receiver(config, &notice) else {
        return Notice::Off;
    };
    let id = notice.id();
    match deliver(config, to, &notice).await {
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

/// Sends the notice of a role sync recorded as `entry`.
pub async fn notify(config: &Config, state: &State, entry: &AuditEntry, reason: Option<String>) -> Notice {
    let notice = RoleSyncNotice::from_entry(entry, reason);
    send_or_park(config, state, Outbound::RoleSync(notice)).await
}

/// Tells HR of a leaver whose steps have settled.
pub async fn tell_hr(config: &Config, state: &State, notice: DeprovisionNotice) -> Notice {
    send_or_park(config, state, Outbound::Leaver(notice)).await
}

/// Sends a parked notice again; delivered, it is no longer kept.
pub async fn replay(config: &Config, state: &State, parked: ParkedNotice) -> Notice {
    let Some(to) = receiver(config, &parked.notice) else {
        return Notice::Off;
    };
    match deliver(config, to, &parked.notice).await {
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
