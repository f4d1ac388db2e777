//! What the Worker keeps in Workers KV, under one binding and four key families:
//! - `done:{webhook-id}`   the first answer to a delivery (redeliveries get it back)
//! - `order:{subject}`     the newest event timestamp applied for a person
//! - `failure:{webhook-id}` an event CXone could not take, kept for replay
//! - `token:{client-id}`   the cached CXone access token

use crate::config::KV_BINDING;
use cxone_scim_core::token::CachedToken;
use cxone_scim_core::UnixMillis;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{kv::KvStore, Env, Result};

const DONE_TTL_SECS: u64 = 7 * 24 * 3600;
const ORDER_TTL_SECS: u64 = 30 * 24 * 3600;
/// KV refuses expirations under 60 s.
const MIN_TTL_SECS: u64 = 60;

/// An event that could not be applied; listed by `GET /failures`, cleared by a later success.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRecord {
    pub event_id: String,
    pub webhook_timestamp: i64,
    pub first_failed_at: String,
    pub last_failed_at: String,
    pub attempts: u32,
    pub operation: String,
    pub subject: String,
    pub error: Value,
    pub detail: String,
    /// The event as received, for replay.
    pub event: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderMark {
    pub timestamp: i64,
    pub event_id: String,
}

pub struct State {
    kv: KvStore,
}

fn kv_error(e: worker::kv::KvError) -> worker::Error {
    worker::Error::RustError(format!("KV: {e}"))
}

impl State {
    pub fn open(env: &Env) -> Result<Self> {
        Ok(Self {
            kv: env.kv(KV_BINDING)?,
        })
    }

    /// Read as text and parsed here: KV's own JSON path goes through JS numbers, which cannot
    /// hold a u64 exactly.
    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.kv.get(key).text().await.map_err(kv_error)? {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }

    async fn put<T: Serialize>(&self, key: &str, value: &T, ttl_secs: Option<u64>) -> Result<()> {
        let text = serde_json::to_string(value)?;
        let mut put = self.kv.put(key, text).map_err(kv_error)?;
        if let Some(ttl) = ttl_secs {
            put = put.expiration_ttl(ttl.max(MIN_TTL_SECS));
        }
        put.execute().await.map_err(kv_error)
    }

    pub async fn answered(&self, event_id: &str) -> Result<Option<Value>> {
        self.get(&format!("done:{event_id}")).await
    }

    pub async fn remember_answer(&self, event_id: &str, answer: &Value) -> Result<()> {
        self.put(&format!("done:{event_id}"), answer, Some(DONE_TTL_SECS)).await
    }

    pub async fn last_applied(&self, subject: &str) -> Result<Option<OrderMark>> {
        self.get(&format!("order:{subject}")).await
    }

    pub async fn mark_applied(&self, subject: &str, mark: &OrderMark) -> Result<()> {
        self.put(&format!("order:{subject}"), mark, Some(ORDER_TTL_SECS)).await
    }

    pub async fn failure(&self, event_id: &str) -> Result<Option<FailureRecord>> {
        self.get(&format!("failure:{event_id}")).await
    }

    pub async fn record_failure(&self, record: &FailureRecord) -> Result<()> {
        self.put(&format!("failure:{}", record.event_id), record, None).await
    }

    pub async fn clear_failure(&self, event_id: &str) -> Result<()> {
        self.kv.delete(&format!("failure:{event_id}")).await.map_err(kv_error)
    }

    pub async fn failures(&self) -> Result<Vec<FailureRecord>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let mut list = self.kv.list().prefix("failure:".to_string());
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await.map_err(kv_error)?;
            for key in &page.keys {
                if let Some(rec) = self.get::<FailureRecord>(&key.name).await? {
                    out.push(rec);
                }
            }
            match page.cursor.filter(|_| !page.list_complete) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out.sort_by(|a, b| a.first_failed_at.cmp(&b.first_failed_at));
        Ok(out)
    }

    pub async fn token(&self, client_id: &str) -> Result<Option<CachedToken>> {
        self.get(&format!("token:{client_id}")).await
    }

    pub async fn store_token(&self, client_id: &str, token: &CachedToken, now: UnixMillis) -> Result<()> {
        let ttl = token.expires_at.saturating_sub(now) / 1000;
        self.put(&format!("token:{client_id}"), token, Some(ttl)).await
    }
}

/// A bulk run between invocations: the run itself, and who is working on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub run_id: String,
    pub input_digest: String,
    pub created_at: String,
    pub updated_at: String,
    /// An invocation working on the run renews this with every checkpoint.
    pub lease_until: UnixMillis,
    /// Why the run cannot go on (CXone refused our credentials, say); cleared on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub flow: cxone_scim_core::bulk::BulkRun,
}

const RUN_TTL_SECS: u64 = 30 * 24 * 3600;

impl State {
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.get(&format!("run:{run_id}")).await
    }

    pub async fn save_run(&self, record: &RunRecord) -> Result<()> {
        self.put(&format!("run:{}", record.run_id), record, Some(RUN_TTL_SECS))
            .await
    }
}
