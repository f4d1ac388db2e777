//! What the Worker keeps in Workers KV (what eventual consistency suits), under one binding:
//! - `failure:{key}`  an event CXone did not take, kept 30 days for replay
//! - `conflict:{key}` an event that matched someone else's account, kept until dismissed
//! - `notice:{id}` a notice to the IAM system or HR that could not be delivered, kept 30 days
//! - `leaver:{id}` a leaver's record (its steps, for replay and for the auditor), kept 400 days
//! - `graph:cursor` the Graph delta cursor (written only by the sync object)
//! - `token:{key}` a cached access token (CXone's, Graph's), keyed by token endpoint and client
//!
//! `{key}` is a fixed-length hash of the webhook-id (`digest::key_of`), so no id passes KV's
//! 512-byte key limit. Whether an event was applied lives in the per-person ledger, not here.

use crate::config::KV_BINDING;
pub use cxone_scim_core::apply::LeaverRecord;
pub use cxone_scim_core::apply::{ConflictRecord, FailureRecord};
use cxone_scim_core::audit::{Outbound, ParkedAudit};
use cxone_scim_core::digest::key_of;
use cxone_scim_core::token::CachedToken;
use cxone_scim_core::UnixMillis;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{kv::KvStore, Env, Result};

const FAILURE_TTL_SECS: u64 = 30 * 24 * 3600;
/// KV refuses expirations under 60 s.
const MIN_TTL_SECS: u64 = 60;
/// Most entries one page of `/failures` or `/conflicts` lists (each is one KV read).
pub const MAX_PAGE: usize = 25;

const LEAVER_TTL_SECS: u64 = 400 * 24 * 3600;

/// A notice that could not be delivered, kept 30 days for replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedNotice {
    pub id: String,
    pub notice: Outbound,
    pub attempts: u32,
    pub error: String,
    pub parked_at: String,
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

    /// A JSON value kept without expiry (the Graph delta cursor).
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get(key).await
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.put(key, value, None).await
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

    /// One page of the records under `prefix`, oldest key order, and the cursor to the next.
    async fn page<T: DeserializeOwned>(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<T>, Option<String>)> {
        let mut list = self
            .kv
            .list()
            .prefix(prefix.to_string())
            .limit(limit.clamp(1, MAX_PAGE) as u64);
        if let Some(c) = cursor {
            list = list.cursor(c);
        }
        let page = list.execute().await.map_err(kv_error)?;
        let mut out = Vec::with_capacity(page.keys.len());
        for key in &page.keys {
            // Expired or deleted between the listing and the read: skipped.
            if let Some(rec) = self.get::<T>(&key.name).await? {
                out.push(rec);
            }
        }
        let next = page.cursor.filter(|c| !page.list_complete && !c.is_empty());
        Ok((out, next))
    }

    pub async fn failure(&self, id: &str) -> Result<Option<FailureRecord>> {
        self.get(&format!("failure:{id}")).await
    }

    pub async fn failure_of_event(&self, event_id: &str) -> Result<Option<FailureRecord>> {
        self.failure(&key_of(event_id)).await
    }

    pub async fn record_failure(&self, record: &FailureRecord) -> Result<()> {
        self.put(&format!("failure:{}", record.id), record, Some(FAILURE_TTL_SECS))
            .await
    }

    pub async fn clear_failure_of_event(&self, event_id: &str) -> Result<()> {
        self.kv
            .delete(&format!("failure:{}", key_of(event_id)))
            .await
            .map_err(kv_error)
    }

    pub async fn failures(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<FailureRecord>, Option<String>)> {
        self.page("failure:", cursor, limit).await
    }

    pub async fn record_conflict(&self, record: &ConflictRecord) -> Result<()> {
        self.put(&format!("conflict:{}", record.id), record, None).await
    }

    pub async fn conflict(&self, id: &str) -> Result<Option<ConflictRecord>> {
        self.get(&format!("conflict:{id}")).await
    }

    pub async fn dismiss_conflict(&self, id: &str) -> Result<()> {
        self.kv.delete(&format!("conflict:{id}")).await.map_err(kv_error)
    }

    pub async fn conflicts(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<ConflictRecord>, Option<String>)> {
        self.page("conflict:", cursor, limit).await
    }

    pub async fn put_leaver(&self, record: &LeaverRecord) -> Result<()> {
        self.put(&format!("leaver:{}", record.id), record, Some(LEAVER_TTL_SECS))
            .await
    }

    pub async fn leaver(&self, id: &str) -> Result<Option<LeaverRecord>> {
        self.get(&format!("leaver:{id}")).await
    }

    pub async fn leavers(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<LeaverRecord>, Option<String>)> {
        self.page("leaver:", cursor, limit).await
    }

    pub async fn park_notice(&self, parked: &ParkedNotice) -> Result<()> {
        self.put(&format!("notice:{}", parked.id), parked, Some(FAILURE_TTL_SECS))
            .await
    }

    pub async fn notice(&self, id: &str) -> Result<Option<ParkedNotice>> {
        self.get(&format!("notice:{id}")).await
    }

    pub async fn drop_notice(&self, id: &str) -> Result<()> {
        self.kv.delete(&format!("notice:{id}")).await.map_err(kv_error)
    }

    pub async fn notices(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<ParkedNotice>, Option<String>)> {
        self.page("notice:", cursor, limit).await
    }

    /// Kept until the trail has it: no TTL (an audit record outlives any failure record).
    pub async fn park_audit(&self, parked: &ParkedAudit) -> Result<()> {
        self.put(&format!("audit-parked:{}", parked.id), parked, None).await
    }

    pub async fn drop_parked_audit(&self, id: &str) -> Result<()> {
        self.kv.delete(&format!("audit-parked:{id}")).await.map_err(kv_error)
    }

    /// Oldest first (the ids sort by parking time).
    pub async fn parked_audits(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<ParkedAudit>, Option<String>)> {
        self.page("audit-parked:", cursor, limit).await
    }

    pub async fn token(&self, key: &str) -> Result<Option<CachedToken>> {
        self.get(&format!("token:{key}")).await
    }

    pub async fn store_token(&self, key: &str, token: &CachedToken, now: UnixMillis) -> Result<()> {
        let ttl = token.expires_at.saturating_sub(now) / 1000;
        self.put(&format!("token:{key}"), token, Some(ttl)).await
    }
}
