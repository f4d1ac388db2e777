//! The per-person ledger: one SQLite-backed Durable Object per person, named by a hash of the
//! person's stable key. It stores and serialises; `cxone_scim_core::ledger` decides.
//!
//! Tables:
//! - `person`: one row, the [`PersonState`] (last applied event, CXone id, lease) as JSON;
//! - `deliveries`: one row per webhook-id seen: first sight, body digest, the answer once
//!   final, and the event time of a failure record kept for it and whether it was a leaver (to
//!   clear when superseded).
//!
//! Every handler reads, decides and writes with no `await` in between, so each runs as one
//! transaction and requests for one person never interleave inside the object. The lease is
//! what keeps a second delivery out while the Worker talks to CXone (input gates do not hold
//! across the Worker's fetches).

use crate::apply::ApplyRequest;
use crate::config::LEDGER_BINDING;
use crate::objects::{migrate, read_call, Schema};
use cxone_scim_core::apply::ApplyAnswer;
use cxone_scim_core::audit::iso8601;
use cxone_scim_core::digest::key_of;
use cxone_scim_core::ledger::{
    absorb, commit, decide, link, link_of, person_key, reset_marks, Commit, Decision, EventFacts, Link, PersonState,
    SeenDelivery, StoredAnswer,
};
use cxone_scim_core::UnixMillis;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State, Stub};

/// Deliveries older than this are forgotten (senders stop redelivering long before).
const KEEP_DELIVERIES_MS: u64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginRequest {
    pub facts: EventFacts,
    pub lease_ms: u64,
    pub lease_token: String,
    /// What the person's userName ledger had ordered before it was linked here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<PersonState>,
}

/// What the Worker (or another ledger) asks of a person's ledger.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LedgerCall {
    /// Apply one change to the person ([`crate::apply::run`]).
    Apply(ApplyRequest),
    /// Hold the person for a bulk row (`begin` … `commit`).
    Begin(BeginRequest),
    Commit(CommitRequest),
    /// This userName's ledger forwards to the person's from now on.
    Link(LinkRequest),
    Inspect,
    ResetMarks(ResetRequest),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkRequest {
    /// The ledger key of the person's externalId.
    pub target: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetRequest {
    pub dry_run: bool,
}

/// One person's ledger as an admin sees it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub person: PersonState,
    /// The newest deliveries first.
    pub deliveries: Vec<DeliverySeen>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySeen {
    pub event_id: String,
    pub first_seen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
    /// The event time of a failure record kept for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetAnswer {
    pub before: PersonState,
    pub after: PersonState,
}

/// Deliveries an inspection lists.
const INSPECT_DELIVERIES: i64 = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitRequest {
    pub commit: Commit,
    /// A failure record is kept for this delivery (cleared when a newer event is applied).
    pub failure_recorded: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitAnswer {
    /// Webhook-ids whose failure records the commit superseded.
    pub superseded_failures: Vec<String>,
}

const SCHEMA: &[Schema] = &[
    Schema::Create("CREATE TABLE IF NOT EXISTS person (k INTEGER PRIMARY KEY, state TEXT NOT NULL)"),
    Schema::Create(
        "CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, \
         digest TEXT NOT NULL, answer TEXT, failed_at INTEGER)",
    ),
    Schema::AddColumn {
        table: "deliveries",
        column: "failed_leaver",
        definition: "INTEGER NOT NULL DEFAULT 0",
    },
];

#[durable_object]
pub struct PersonLedger {
    state: State,
    env: Env,
}

impl DurableObject for PersonLedger {
    fn new(state: State, env: Env) -> Self {
        migrate(&state.storage().sql(), SCHEMA);
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let now = worker::Date::now().as_millis();
        let sql = self.state.storage().sql();
        let call = match read_call::<LedgerCall>(&mut req).await? {
            Ok(call) => call,
            Err(refused) => return Ok(refused),
        };
        match call {
            LedgerCall::Apply(apply) => Response::from_json(&crate::apply::run(&self.env, &sql, apply).await?),
            LedgerCall::Begin(begin) => Response::from_json(&on_begin(&sql, &begin, now)?),
            LedgerCall::Commit(c) => Response::from_json(&on_commit(&sql, &c, now)?),
            LedgerCall::Link(l) => {
                let (person, answer) = link(&load_person(&sql)?, &l.target, now);
                save_person(&sql, &person)?;
                Response::from_json(&answer)
            }
            LedgerCall::Inspect => Response::from_json(&inspect(&sql)?),
            LedgerCall::ResetMarks(r) => {
                let before = load_person(&sql)?;
                let after = reset_marks(&before);
                if !r.dry_run {
                    save_person(&sql, &after)?;
                }
                Response::from_json(&ResetAnswer { before, after })
            }
        }
    }
}

#[derive(Deserialize)]
struct PersonRow {
    state: String,
}

#[derive(Deserialize)]
struct DeliveryRow {
    first_seen: f64,
    digest: String,
    answer: Option<String>,
}

#[derive(Deserialize)]
struct FailedRow {
    event_id: String,
}

fn load_person(sql: &SqlStorage) -> Result<PersonState> {
    let rows: Vec<PersonRow> = sql.exec("SELECT state FROM person WHERE k = 0", None)?.to_array()?;
    match rows.first() {
        Some(row) => Ok(serde_json::from_str(&row.state)?),
        None => Ok(PersonState::default()),
    }
}

fn save_person(sql: &SqlStorage, person: &PersonState) -> Result<()> {
    sql.exec(
        "INSERT INTO person (k, state) VALUES (0, ?) ON CONFLICT(k) DO UPDATE SET state = excluded.state",
        vec![serde_json::to_string(person)?.into()],
    )?;
    Ok(())
}

fn load_delivery(sql: &SqlStorage, event_id: &str) -> Result<Option<SeenDelivery>> {
    let rows: Vec<DeliveryRow> = sql
        .exec(
            "SELECT first_seen, digest, answer FROM deliveries WHERE event_id = ?",
            vec![event_id.into()],
        )?
        .to_array()?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let answer: Option<StoredAnswer> = match row.answer {
        Some(text) => Some(serde_json::from_str(&text)?),
        None => None,
    };
    Ok(Some(SeenDelivery {
        first_seen: row.first_seen as UnixMillis,
        body_digest: row.digest,
        answer,
    }))
}

fn keep_answer(sql: &SqlStorage, event_id: &str, answer: &StoredAnswer) -> Result<()> {
    sql.exec(
        "UPDATE deliveries SET answer = ? WHERE event_id = ?",
        vec![serde_json::to_string(answer)?.into(), event_id.into()],
    )?;
    Ok(())
}

fn millis(ms: UnixMillis) -> SqlStorageValue {
    SqlStorageValue::from(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn inspect(sql: &SqlStorage) -> Result<Inspection> {
    #[derive(Deserialize)]
    struct Row {
        event_id: String,
        first_seen: f64,
        answer: Option<String>,
        failed_at: Option<f64>,
    }
    let rows: Vec<Row> = sql
        .exec(
            "SELECT event_id, first_seen, answer, failed_at FROM deliveries ORDER BY first_seen DESC LIMIT ?",
            vec![INSPECT_DELIVERIES.into()],
        )?
        .to_array()?;
    let deliveries = rows
        .into_iter()
        .map(|r| {
            Ok(DeliverySeen {
                event_id: r.event_id,
                first_seen: iso8601(r.first_seen as UnixMillis),
                answer: r.answer.as_deref().map(serde_json::from_str).transpose()?,
                failed_at: r.failed_at.map(|t| iso8601(t as UnixMillis)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Inspection {
        person: load_person(sql)?,
        deliveries,
    })
}

pub(crate) fn on_begin(sql: &SqlStorage, begin: &BeginRequest, now: UnixMillis) -> Result<Decision> {
    let facts = &begin.facts;
    let mut person = load_person(sql)?;
    if let Some(carried) = &begin.carried {
        person = absorb(&person, carried);
        save_person(sql, &person)?;
    }
    let delivery = load_delivery(sql, &facts.event_id)?;
    let decision = decide(
        &person,
        delivery.as_ref(),
        facts,
        now,
        begin.lease_ms,
        &begin.lease_token,
    );
    if delivery.is_none() {
        sql.exec(
            "INSERT INTO deliveries (event_id, first_seen, digest) VALUES (?, ?, ?)",
            vec![
                facts.event_id.as_str().into(),
                millis(now),
                facts.body_digest.as_str().into(),
            ],
        )?;
    }
    if let Decision::Go { lease, .. } = &decision {
        person.lease = Some(lease.clone());
        save_person(sql, &person)?;
    }
    if let Some(answer) = decision.answer_to_keep() {
        keep_answer(sql, &facts.event_id, answer)?;
    }
    Ok(decision)
}

pub(crate) fn on_commit(sql: &SqlStorage, req: &CommitRequest, now: UnixMillis) -> Result<CommitAnswer> {
    let c = &req.commit;
    let committed = commit(&load_person(sql)?, c);
    save_person(sql, &committed.person)?;
    if let Some(answer) = &c.answer {
        keep_answer(sql, &c.event_id, answer)?;
    }
    let mut answer = CommitAnswer::default();
    for (up_to, leaver) in [
        (committed.supersedes_up_to, 0i64),
        (committed.supersedes_leavers_up_to, 1),
    ] {
        let Some(up_to) = up_to else { continue };
        let bounds = || vec![millis(up_to), leaver.into()];
        let rows: Vec<FailedRow> = sql
            .exec(
                "SELECT event_id FROM deliveries WHERE failed_at IS NOT NULL AND failed_at <= ? AND failed_leaver = ?",
                bounds(),
            )?
            .to_array()?;
        sql.exec(
            "UPDATE deliveries SET failed_at = NULL WHERE failed_at IS NOT NULL AND failed_at <= ? AND failed_leaver = ?",
            bounds(),
        )?;
        answer.superseded_failures.extend(rows.into_iter().map(|r| r.event_id));
    }
    if req.failure_recorded {
        sql.exec(
            "UPDATE deliveries SET failed_at = ?, failed_leaver = ? WHERE event_id = ?",
            vec![
                millis(c.event_time),
                i64::from(c.operation.is_leaver()).into(),
                c.event_id.as_str().into(),
            ],
        )?;
    }
    sql.exec(
        "DELETE FROM deliveries WHERE first_seen < ? AND failed_at IS NULL",
        vec![millis(now.saturating_sub(KEEP_DELIVERIES_MS))],
    )?;
    Ok(answer)
}

/// Asks the person's ledger about a delivery, the one ledger whatever the event names: when it
/// names an externalId and a userName, the userName's ledger is linked to the externalId's first
/// (what it ordered is carried over); when it names only a userName whose ledger was linked,
/// the delivery follows the forward. Returns the ledger that answered, its decision and the
/// calls it took.
pub async fn begin_for(
    env: &Env,
    external_id: Option<&str>,
    user_name: &str,
    begin: &mut BeginRequest,
) -> Result<(Ledger, Decision, u32)> {
    let key = person_key(external_id, user_name);
    let mut calls = 0;
    if let Some((user, target)) = link_of(external_id, user_name) {
        calls += 1;
        match Ledger::of(env, &user)?.link(&target).await? {
            Link::Busy { retry_after_ms } => {
                return Ok((Ledger::of(env, &key)?, Decision::Busy { retry_after_ms }, calls));
            }
            Link::Linked { carried } => begin.carried = carried,
        }
    }
    let ledger = Ledger::of(env, &key)?;
    let decision = ledger.begin(begin).await?;
    calls += 1;
    let Decision::Forward {
        to,
        carried,
        first_seen,
    } = decision
    else {
        return Ok((ledger, decision, calls));
    };
    begin.carried = carried;
    // Ordered where the userName's ledger first saw it, whenever it is redelivered.
    begin.facts.occurred_at = begin.facts.occurred_at.or(first_seen);
    let ledger = Ledger::of(env, &to)?;
    let decision = ledger.begin(begin).await?;
    calls += 1;
    if let Decision::Forward { to, .. } = decision {
        return Err(worker::Error::RustError(format!(
            "the ledger {key} forwards to a ledger that forwards again ({to})"
        )));
    }
    Ok((ledger, decision, calls))
}

/// The Worker's side: the ledger of one person.
pub struct Ledger {
    key: String,
    stub: Stub,
}

impl Ledger {
    /// The ledger of the person with this stable key (externalId, else userName). The object
    /// is named by a fixed-length hash, so no key is too long.
    pub fn of(env: &Env, subject_key: &str) -> Result<Self> {
        let namespace = env.durable_object(LEDGER_BINDING)?;
        let stub = namespace.id_from_name(&key_of(subject_key))?.get_stub()?;
        Ok(Self {
            key: subject_key.to_string(),
            stub,
        })
    }

    /// The person key the ledger is named by.
    pub fn key(&self) -> &str {
        &self.key
    }

    async fn call<O: DeserializeOwned>(&self, call: &LedgerCall) -> Result<O> {
        crate::objects::call(&self.stub, "ledger", call).await
    }

    /// Applies one change to the person, inside their ledger object ([`crate::apply::run`]).
    pub async fn apply(&self, req: ApplyRequest) -> Result<ApplyAnswer> {
        self.call(&LedgerCall::Apply(req)).await
    }

    pub async fn begin(&self, req: &BeginRequest) -> Result<Decision> {
        self.call(&LedgerCall::Begin(req.clone())).await
    }

    pub async fn commit(&self, req: &CommitRequest) -> Result<CommitAnswer> {
        self.call(&LedgerCall::Commit(req.clone())).await
    }

    pub async fn link(&self, target: &str) -> Result<Link> {
        self.call(&LedgerCall::Link(LinkRequest {
            target: target.to_string(),
        }))
        .await
    }

    pub async fn inspect(&self) -> Result<Inspection> {
        self.call(&LedgerCall::Inspect).await
    }

    pub async fn reset_marks(&self, dry_run: bool) -> Result<ResetAnswer> {
        self.call(&LedgerCall::ResetMarks(ResetRequest { dry_run })).await
    }
}
