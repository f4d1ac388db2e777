//! The audit trail: one SQLite-backed Durable Object (`AUDIT`, named `trail`) holding every write
//! to CXone, whatever triggered it, as a hash chain (`cxone_scim_core::audit::chain`).
//!
//! One object keeps one chain in one order: each entry's `prevHash` is the hash of the entry
//! before it, so an auditor can verify the whole trail from its first record. Entries past
//! `AUDIT_RETENTION_DAYS` are removed from the front; the object then keeps the last removed
//! entry's `seq` and hash as the anchor the remaining chain is verified from.
//!
//! Tables: `entries` (seq, at_ms, external_id, trigger, doc) indexed by time and person; `meta`
//! (`head`: the last entry's seq and hash; `anchor`: where the kept chain starts); `batches`
//! (the ids of parked batches appended, so a replay never adds one twice).
//!
//! A write whose records the trail cannot take (the object unreachable, say) does not lose them:
//! [`record`] parks them in KV ([`ParkedAudit`]), and the cron or `POST /audit/parked/replay`
//! appends them later, oldest first ([`replay_parked`]).

use crate::config::{Config, AUDIT_BINDING};
use crate::driver::now_ms;
use crate::kv::State as Kv;
use crate::objects::{meta_get, meta_put, migrate, read_call, Schema, META_TABLE};
use cxone_scim_core::audit::{
    chain_from, check_end, iso8601, verify_chain, AuditDraft, AuditEntry, Link, ParkedAudit, GENESIS_HASH,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State, Stub};

/// Entries one query page returns at most.
pub const MAX_PAGE: usize = 500;
/// Entries removed per retention alarm (it comes back until the front is young enough).
const PRUNE_BATCH: i64 = 5_000;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// What the Worker asks of the audit trail.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TrailCall {
    Append(AppendRequest),
    /// Entries by time and person, a page at a time.
    Query(Query),
    /// The chain checked over a range.
    Verify(Query),
}

/// What an append takes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendRequest {
    pub drafts: Vec<AuditDraft>,
    pub retention_days: u32,
    /// A parked batch's id: taken once, a second append of it adds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
}

/// A query over the trail: `from`/`to` in ms (inclusive, exclusive), a person, a trigger, and
/// the seq to continue after.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub to: Option<u64>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub after: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[durable_object]
pub struct AuditTrail {
    state: State,
}

const SCHEMA: &[Schema] = &[
    Schema::Create(
        "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, \
         external_id TEXT, trigger TEXT NOT NULL, doc TEXT NOT NULL)",
    ),
    Schema::Create("CREATE INDEX IF NOT EXISTS entries_at ON entries (at_ms)"),
    Schema::Create("CREATE INDEX IF NOT EXISTS entries_person ON entries (external_id, seq)"),
    Schema::Create("CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, appended_ms INTEGER NOT NULL)"),
    Schema::Create(META_TABLE),
];

fn tables(sql: &SqlStorage) {
    migrate(sql, SCHEMA);
}

#[derive(Deserialize)]
struct DocRow {
    doc: String,
}

impl DurableObject for AuditTrail {
    fn new(state: State, _env: Env) -> Self {
        tables(&state.storage().sql());
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call = match read_call::<TrailCall>(&mut req).await? {
            Ok(call) => call,
            Err(refused) => return Ok(refused),
        };
        match call {
            TrailCall::Append(append) => {
                if let Some(id) = &append.batch_id {
                    if self.has_batch(id)? {
                        return Response::from_json(&json!({ "entries": [], "duplicate": true }));
                    }
                }
                let entries = self.append(append.drafts, append.batch_id.as_deref())?;
                let storage = self.state.storage();
                if storage.get_alarm().await?.is_none() {
                    storage.set_alarm(DAY_MS as i64).await?;
                }
                self.put("retentionDays", &append.retention_days)?;
                Response::from_json(&json!({ "entries": entries }))
            }
            TrailCall::Query(q) => Response::from_json(&self.query(&q)?),
            TrailCall::Verify(q) => Response::from_json(&self.verify(&q)?),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let days: u32 = self.get("retentionDays")?.unwrap_or(400);
        let cutoff = (worker::Date::now().as_millis()).saturating_sub(u64::from(days) * DAY_MS);
        let more = self.prune(cutoff)?;
        self.state
            .storage()
            .set_alarm(if more { 0 } else { DAY_MS as i64 })
            .await?;
        Response::ok("")
    }
}

impl AuditTrail {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        meta_get(&self.sql(), key)
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        meta_put(&self.sql(), key, value)
    }

    fn has_batch(&self, id: &str) -> Result<bool> {
        let rows: Vec<Value> = self
            .sql()
            .exec("SELECT id FROM batches WHERE id = ?", vec![id.into()])?
            .to_array()?;
        Ok(!rows.is_empty())
    }

    /// Chains and stores the drafts in order, all in one go (no await: one transaction), with
    /// the id of the parked batch they come from.
    fn append(&self, drafts: Vec<AuditDraft>, batch_id: Option<&str>) -> Result<Vec<AuditEntry>> {
        let mut head: Link = self.get("head")?.unwrap_or(Link {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        });
        let sql = self.sql();
        let mut out = Vec::with_capacity(drafts.len());
        // Indexed by when it was recorded, the order of the chain: a time range is then a run of
        // consecutive records (a write that started earlier but was recorded later is inside).
        let at = worker::Date::now().as_millis();
        for draft in drafts {
            let entry = chain_from(&head.hash, head.seq + 1, draft);
            let trigger = serde_json::to_value(entry.trigger)?;
            sql.exec(
                "INSERT INTO entries (seq, at_ms, external_id, trigger, doc) VALUES (?, ?, ?, ?, ?)",
                vec![
                    (entry.seq as i64).into(),
                    (at as i64).into(),
                    entry
                        .who
                        .external_id
                        .clone()
                        .map_or(worker::SqlStorageValue::Null, Into::into),
                    trigger.as_str().unwrap_or_default().into(),
                    entry.to_json_line().into(),
                ],
            )?;
            head = Link {
                seq: entry.seq,
                hash: entry.hash.clone(),
            };
            out.push(entry);
        }
        self.put("head", &head)?;
        if let Some(id) = batch_id {
            sql.exec(
                "INSERT INTO batches (id, appended_ms) VALUES (?, ?)",
                vec![id.into(), (at as i64).into()],
            )?;
        }
        Ok(out)
    }

    fn entries(&self, q: &Query, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut clauses = vec!["seq > ?".to_string()];
        let mut values: Vec<worker::SqlStorageValue> = vec![(q.after.unwrap_or(0) as i64).into()];
        if let Some(from) = q.from {
            clauses.push("at_ms >= ?".into());
            values.push((from as i64).into());
        }
        if let Some(to) = q.to {
            clauses.push("at_ms < ?".into());
            values.push((to as i64).into());
        }
        if let Some(ext) = &q.external_id {
            clauses.push("external_id = ?".into());
            values.push(ext.clone().into());
        }
        if let Some(trigger) = &q.trigger {
            clauses.push("trigger = ?".into());
            values.push(trigger.clone().into());
        }
        values.push((limit as i64).into());
        let query = format!(
            "SELECT doc FROM entries WHERE {} ORDER BY seq LIMIT ?",
            clauses.join(" AND ")
        );
        let rows: Vec<DocRow> = self.sql().exec(&query, values)?.to_array()?;
        rows.iter().map(|r| Ok(serde_json::from_str(&r.doc)?)).collect()
    }

    fn query(&self, q: &Query) -> Result<Value> {
        let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let mut entries = self.entries(q, limit + 1)?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let mut answer = json!({ "count": entries.len(), "entries": entries });
        if more {
            if let Some(last) = entries.last() {
                answer["cursor"] = json!(last.seq.to_string());
            }
        }
        Ok(answer)
    }

    /// The last entry kept, whatever its time.
    fn last_entry(&self) -> Result<Option<AuditEntry>> {
        let rows: Vec<DocRow> = self
            .sql()
            .exec("SELECT doc FROM entries ORDER BY seq DESC LIMIT 1", None)?
            .to_array()?;
        rows.first().map(|r| Ok(serde_json::from_str(&r.doc)?)).transpose()
    }

    /// Verifies the chain over a time range (the whole kept trail without one): every entry's
    /// hash, its seq and its link to the one before. From the start of the kept trail the
    /// first link is checked against the anchor; in every case the last entry kept is checked
    /// against the head, so entries cut from either end show too.
    fn verify(&self, q: &Query) -> Result<Value> {
        let whole = q.from.is_none() && q.to.is_none();
        let anchor: Option<Link> = self.get("anchor")?;
        let head: Option<Link> = self.get("head")?;
        let mut checked = 0usize;
        let mut prev: Option<String> = if whole {
            Some(anchor.as_ref().map_or(GENESIS_HASH.to_string(), |a| a.hash.clone()))
        } else {
            None
        };
        let mut last: Option<AuditEntry> = None;
        let mut page = Query {
            from: q.from,
            to: q.to,
            ..Query::default()
        };
        loop {
            let entries = self.entries(&page, MAX_PAGE)?;
            let Some(first) = entries.first() else { break };
            // A range starts wherever it starts: its first entry's link is taken as given.
            let start = prev.clone().unwrap_or_else(|| first.prev_hash.clone());
            let from_genesis = start == GENESIS_HASH && first.seq == 1 && anchor.is_none();
            let expected = (!from_genesis).then_some(start.as_str());
            match verify_chain(entries.iter().cloned(), expected) {
                Ok(n) => checked += n,
                Err(b) => {
                    return Ok(json!({
                        "ok": false, "checked": checked + b.index, "break": b, "detail": b.to_string(),
                    }))
                }
            }
            last = entries.last().cloned();
            prev = last.as_ref().map(|e| e.hash.clone());
            page.after = last.as_ref().map(|e| e.seq);
        }
        if let Err(end) = check_end(head.as_ref(), anchor.as_ref(), self.last_entry()?.as_ref()) {
            return Ok(json!({ "ok": false, "checked": checked, "end": end, "detail": end.to_string() }));
        }
        Ok(json!({
            "ok": true, "checked": checked,
            "firstSeq": anchor.as_ref().map_or(1, |a| a.seq + 1),
            "lastSeq": last.as_ref().map(|e| e.seq),
            "headHash": last.as_ref().map(|e| e.hash.clone()),
        }))
    }

    /// Removes entries older than `cutoff` from the front; `true` when more remain to remove.
    fn prune(&self, cutoff: u64) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            seq: f64,
            doc: String,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT seq, doc FROM entries WHERE at_ms < ? ORDER BY seq LIMIT ?",
                vec![(cutoff as i64).into(), PRUNE_BATCH.into()],
            )?
            .to_array()?;
        let Some(last) = rows.last() else {
            return Ok(false);
        };
        let entry: AuditEntry = serde_json::from_str(&last.doc)?;
        self.sql()
            .exec("DELETE FROM entries WHERE seq <= ?", vec![(last.seq as i64).into()])?;
        // A batch is replayed within days of its parking, never after its records are pruned.
        self.sql().exec(
            "DELETE FROM batches WHERE appended_ms < ?",
            vec![(cutoff as i64).into()],
        )?;
        self.put(
            "anchor",
            &Link {
                seq: entry.seq,
                hash: entry.hash,
            },
        )?;
        Ok(rows.len() as i64 == PRUNE_BATCH)
    }
}

/// The Worker's side of the trail.
pub struct Trail {
    stub: Stub,
}

impl Trail {
    pub fn open(env: &Env) -> Result<Self> {
        let namespace = env.durable_object(AUDIT_BINDING)?;
        Ok(Self {
            stub: namespace.id_from_name("trail")?.get_stub()?,
        })
    }

    async fn call(&self, call: &TrailCall) -> Result<Value> {
        crate::objects::call(&self.stub, "audit", call).await
    }

    /// Appends drafts, under a batch id when they may come again (a parked batch, a bulk run's
    /// kept drafts); `[]` when the trail had taken that batch already.
    async fn append_batch(
        &self,
        drafts: Vec<AuditDraft>,
        retention_days: u32,
        batch_id: Option<String>,
    ) -> Result<Vec<AuditEntry>> {
        let request = AppendRequest {
            drafts,
            retention_days,
            batch_id,
        };
        let answer = self.call(&TrailCall::Append(request)).await?;
        Ok(serde_json::from_value(answer["entries"].clone())?)
    }

    pub async fn query(&self, q: &Query) -> Result<Value> {
        self.call(&TrailCall::Query(q.clone())).await
    }

    pub async fn verify(&self, q: &Query) -> Result<Value> {
        self.call(&TrailCall::Verify(q.clone())).await
    }
}

/// Records the drafts of writes that have happened: appended to the trail, or, when the trail
/// cannot take them, parked in KV for replay. Never fails the write: `None` when the entries
/// are not in the trail (yet), with a log line saying what became of them.
pub async fn record(env: &Env, config: &Config, drafts: Vec<AuditDraft>) -> Option<Vec<AuditEntry>> {
    record_batch(env, config, drafts, None).await
}

/// [`record`] under a batch id the trail takes once (a caller that may hand the same drafts
/// over again after a lost answer names them).
pub async fn record_batch(
    env: &Env,
    config: &Config,
    drafts: Vec<AuditDraft>,
    batch_id: Option<String>,
) -> Option<Vec<AuditEntry>> {
    if drafts.is_empty() {
        return Some(Vec::new());
    }
    let appended = match Trail::open(env) {
        Ok(trail) => {
            trail
                .append_batch(drafts.clone(), config.audit_retention_days, batch_id)
                .await
        }
        Err(e) => Err(e),
    };
    let error = match appended {
        Ok(entries) => return Some(entries),
        Err(e) => e.to_string(),
    };
    let records = drafts.len();
    let parked = ParkedAudit::new(drafts, error.clone(), now_ms());
    let kept = match Kv::open(env) {
        Ok(kv) => kv.park_audit(&parked).await,
        Err(e) => Err(e),
    };
    let line = match kept {
        Ok(()) => json!({"at": iso8601(now_ms()), "event": "audit_append_failed", "detail": error,
                         "parked": parked.id, "records": records}),
        // Both stores out of reach: the log line is all that is left of these records.
        Err(e) => json!({"at": iso8601(now_ms()), "event": "audit_records_lost", "detail": error,
                         "parkError": e.to_string(), "records": records,
                         "who": parked.drafts.iter().map(|d| &d.who).collect::<Vec<_>>()}),
    };
    worker::console_error!("{line}");
    None
}

/// What a replay of parked batches did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub dry_run: bool,
    /// Batches appended (or that would be), oldest first.
    pub batches: Vec<String>,
    /// Records they held.
    pub records: usize,
    /// More batches wait than this replay took.
    pub more: bool,
    /// Why the replay stopped early: the trail still cannot be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends up to `limit` parked batches, oldest first, and drops each once the trail has it.
/// Stops at the first that fails (the later ones wait, so the order holds).
pub async fn replay_parked(env: &Env, config: &Config, limit: usize, dry_run: bool) -> Result<Replayed> {
    let kv = Kv::open(env)?;
    let (parked, next) = kv.parked_audits(None, limit).await?;
    let mut out = Replayed {
        dry_run,
        more: next.is_some(),
        ..Replayed::default()
    };
    if dry_run {
        out.records = parked.iter().map(|p| p.drafts.len()).sum();
        out.batches = parked.into_iter().map(|p| p.id).collect();
        return Ok(out);
    }
    let trail = Trail::open(env)?;
    for batch in parked {
        let appended = trail
            .append_batch(
                batch.drafts.clone(),
                config.audit_retention_days,
                Some(batch.id.clone()),
            )
            .await;
        match appended {
            Ok(_) => {
                // Dropped after the trail has it; a drop that fails is replayed into a no-op.
                let _ = kv.drop_parked_audit(&batch.id).await;
                out.records += batch.drafts.len();
                out.batches.push(batch.id);
            }
            Err(e) => {
                let error = e.to_string();
                let _ = kv.park_audit(&batch.failed_again(error.clone())).await;
                out.error = Some(error);
                out.more = true;
                break;
            }
        }
    }
    Ok(out)
}
