//! Batches of leavers (`POST /deprovision` with `{"requests":[…]}`): one SQLite-backed object
//! per batch (`DEPROVISION_BATCHES`, class `LeaverBatchRunner`). It keeps a row per leaver and
//! runs them slice by slice from its alarm, each leaver through its person's ledger exactly as a
//! single request (`crate::apply::apply`), as many at once as the slice's subrequests pay for. A
//! batch the deletion guard holds waits for `approve` (or `reject`). Every decision is core's
//! (`cxone_scim_core::deprovision`: the guard, a row's result, the progress).

use crate::apply::apply;
use crate::config::{Config, LEAVER_BATCH_BINDING};
use crate::driver::{now_ms, Budget};
use crate::objects::{meta_get, meta_put, read_call, Running, Schema, Slices, META_TABLE};
use cxone_scim_core::audit::{iso8601, AuditRecord, Trigger};
use cxone_scim_core::budget::PER_LEAVER;
use cxone_scim_core::deprovision::{row_event_id, BatchProgress, BatchRow, BatchState, RowResult};
use cxone_scim_core::UnixMillis;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{console_log, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State, Stub};

/// Leavers one slice runs at once, at most.
const LANES: usize = 8;
/// A slice that dies is taken up again after this long.
const WATCHDOG_MS: i64 = 60_000;

const SCHEMA: &[Schema] = &[
    Schema::Create(META_TABLE),
    Schema::Create("CREATE TABLE IF NOT EXISTS rows (idx INTEGER PRIMARY KEY, row TEXT NOT NULL, result TEXT)"),
];

/// What the batch is, kept under `meta` `batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Batch {
    id: String,
    state: BatchState,
    total: usize,
    /// When it was asked for: every leaver of it is ordered at this time.
    at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at: Option<UnixMillis>,
}

/// What the Worker asks of a batch object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BatchCall {
    Start {
        id: String,
        rows: Vec<BatchRow>,
        state: BatchState,
        at: UnixMillis,
    },
    Status {
        after: Option<usize>,
        limit: usize,
    },
    Approve,
    Reject,
}

#[durable_object]
pub struct LeaverBatchRunner(Slices);

impl std::ops::Deref for LeaverBatchRunner {
    type Target = Slices;

    fn deref(&self) -> &Slices {
        &self.0
    }
}

#[derive(Deserialize)]
struct RowDoc {
    idx: f64,
    row: String,
    result: Option<String>,
}

impl DurableObject for LeaverBatchRunner {
    fn new(state: State, env: Env) -> Self {
        Self(Slices::start(state, env, SCHEMA))
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call = match read_call::<BatchCall>(&mut req).await? {
            Ok(call) => call,
            Err(refused) => return Ok(refused),
        };
        match call {
            BatchCall::Start { id, rows, state, at } => Response::from_json(&self.start(id, rows, state, at).await?),
            BatchCall::Status { after, limit } => Response::from_json(&self.status(after, limit)?),
            BatchCall::Approve => Response::from_json(&self.decide(true).await?),
            BatchCall::Reject => Response::from_json(&self.decide(false).await?),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Some(next) = self.slice().await? {
            self.state.storage().set_alarm(next).await?;
        }
        Response::ok("")
    }
}

impl LeaverBatchRunner {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn batch(&self) -> Result<Option<Batch>> {
        meta_get(&self.sql(), "batch")
    }

    async fn start(
        &self,
        id: String,
        rows: Vec<BatchRow>,
        state: BatchState,
        at: UnixMillis,
    ) -> Result<serde_json::Value> {
        if let Some(batch) = self.batch()? {
            // The same batch asked for twice (a retried call): its progress, nothing added.
            return Ok(json!(self.progress(&batch)?));
        }
        let sql = self.sql();
        for (idx, row) in rows.iter().enumerate() {
            sql.exec(
                "INSERT INTO rows (idx, row) VALUES (?, ?)",
                vec![(idx as f64).into(), serde_json::to_string(row)?.into()],
            )?;
        }
        let batch = Batch {
            id,
            state,
            total: rows.len(),
            at,
            finished_at: None,
        };
        meta_put(&sql, "batch", &batch)?;
        if state == BatchState::Running {
            self.state.storage().set_alarm(0i64).await?;
        }
        Ok(json!(self.progress(&batch)?))
    }

    fn results(&self) -> Result<Vec<RowResult>> {
        #[derive(Deserialize)]
        struct Done {
            result: String,
        }
        let done: Vec<Done> = self
            .sql()
            .exec("SELECT result FROM rows WHERE result IS NOT NULL", None)?
            .to_array()?;
        Ok(done
            .iter()
            .filter_map(|d| serde_json::from_str(&d.result).ok())
            .collect())
    }

    fn progress(&self, batch: &Batch) -> Result<BatchProgress> {
        let results = self.results()?;
        Ok(BatchProgress::of(
            &batch.id,
            batch.state,
            batch.total,
            results.iter(),
            iso8601(batch.at),
            batch.finished_at.map(iso8601),
        ))
    }

    /// The progress, and one page of rows (after row `after`, `limit` of them).
    fn status(&self, after: Option<usize>, limit: usize) -> Result<serde_json::Value> {
        let Some(batch) = self.batch()? else {
            return Ok(json!({"found": false}));
        };
        let from = after.map_or(0, |a| a + 1);
        let rows: Vec<RowDoc> = self
            .sql()
            .exec(
                "SELECT idx, row, result FROM rows WHERE idx >= ? ORDER BY idx LIMIT ?",
                vec![(from as f64).into(), ((limit + 1) as f64).into()],
            )?
            .to_array()?;
        let more = rows.len() > limit;
        let page: Vec<serde_json::Value> = rows
            .iter()
            .take(limit)
            .map(|r| {
                let row: Option<BatchRow> = serde_json::from_str(&r.row).ok();
                let result: Option<RowResult> = r.result.as_deref().and_then(|t| serde_json::from_str(t).ok());
                json!({"index": r.idx as usize, "externalId": row.as_ref().and_then(|x| x.external_id.clone()),
                       "userName": row.as_ref().and_then(|x| x.user_name.clone()), "result": result})
            })
            .collect();
        let next = more.then(|| page.last().and_then(|p| p["index"].as_u64())).flatten();
        Ok(json!({"found": true, "progress": self.progress(&batch)?, "rows": page, "nextAfter": next}))
    }

    async fn decide(&self, approve: bool) -> Result<serde_json::Value> {
        let Some(mut batch) = self.batch()? else {
            return Ok(json!({"found": false}));
        };
        if batch.state != BatchState::Held {
            return Ok(json!({"found": true, "changed": false, "progress": self.progress(&batch)?}));
        }
        batch.state = if approve {
            BatchState::Running
        } else {
            BatchState::Rejected
        };
        meta_put(&self.sql(), "batch", &batch)?;
        if approve {
            self.state.storage().set_alarm(0i64).await?;
        }
        Ok(json!({"found": true, "changed": true, "progress": self.progress(&batch)?}))
    }

    /// Runs the next leavers; `Some(ms)`: come again after that long.
    async fn slice(&self) -> Result<Option<i64>> {
        let Some(_running) = Running::claim(&self.running) else {
            return Ok(Some(WATCHDOG_MS));
        };
        let Some(mut batch) = self.batch()? else {
            return Ok(None);
        };
        if batch.state != BatchState::Running {
            return Ok(None);
        }
        let config = Config::shared(&self.env)
            .map_err(|p| worker::Error::RustError(format!("misconfigured: {}", p.join("; "))))?;
        self.state.storage().set_alarm(WATCHDOG_MS).await?;
        let budget = Budget::for_request(config.subrequest_budget);
        let lanes = budget.fits(std::iter::repeat_n(PER_LEAVER, LANES)).max(1);
        let pending: Vec<RowDoc> = self
            .sql()
            .exec(
                "SELECT idx, row, result FROM rows WHERE result IS NULL ORDER BY idx LIMIT ?",
                vec![(lanes as f64).into()],
            )?
            .to_array()?;
        if pending.is_empty() {
            batch.finished_at = Some(now_ms());
            meta_put(&self.sql(), "batch", &batch)?;
            self.state.storage().delete_alarm().await?;
            return Ok(None);
        }
        let total = PER_LEAVER.saturating_mul(pending.len() as u32);
        let runs = pending.iter().map(|doc| {
            let batch = &batch;
            let shared = budget;
            async move {
                let row: BatchRow = serde_json::from_str(&doc.row)?;
                let idx = doc.idx as usize;
                let (event, delivery) = row
                    .request()
                    .delivery(row_event_id(&batch.id, idx), batch.at, Trigger::Admin);
                let started = now_ms();
                let mut audit = AuditRecord::new(started, "BATCH", "/deprovision");
                audit.operation = Some("deprovision".into());
                let answer = apply(&self.env, &event, delivery, &mut audit, shared.share(PER_LEAVER, total)).await?;
                audit.status = answer.status;
                audit.latency_ms = now_ms().saturating_sub(started);
                console_log!("{}", audit.to_json_line());
                Ok::<_, worker::Error>((idx, RowResult::of(&answer)))
            }
        });
        let mut busy = false;
        for ran in join_all(runs).await {
            match ran {
                Ok((idx, Some(result))) => {
                    self.sql().exec(
                        "UPDATE rows SET result = ? WHERE idx = ?",
                        vec![serde_json::to_string(&result)?.into(), (idx as f64).into()],
                    )?;
                }
                // The person is busy, or the change could not be asked: the row waits.
                Ok((_, None)) | Err(_) => busy = true,
            }
        }
        Ok(Some(if busy { 1_000 } else { 0 }))
    }
}

/// The Worker's side: the object of batch `id`.
pub struct LeaverBatches {
    stub: Stub,
}

impl LeaverBatches {
    pub fn of(env: &Env, id: &str) -> Result<Self> {
        let namespace = env.durable_object(LEAVER_BATCH_BINDING)?;
        Ok(Self {
            stub: namespace.id_from_name(id)?.get_stub()?,
        })
    }

    pub async fn call(&self, call: &BatchCall) -> Result<serde_json::Value> {
        crate::objects::call(&self.stub, "leaver-batch", call).await
    }

    /// [`LeaverBatches::call`] on a batch that must exist: `None` when it was never started.
    pub async fn call_existing(&self, call: &BatchCall) -> Result<Option<serde_json::Value>> {
        let answer = self.call(call).await?;
        Ok((answer["found"] != json!(false)).then_some(answer))
    }
}
