//! What the Worker's Durable Objects share: a `meta` table of small JSON documents by key, the
//! guard that keeps one slice running at a time, and the Worker-side JSON call to an object.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use worker::{Method, Request, RequestInit, Response, Result, SqlStorage, Stub};

/// One step of an object's schema, run every time the object starts (all are idempotent).
pub enum Schema {
    /// `CREATE TABLE IF NOT EXISTS …`, `CREATE INDEX IF NOT EXISTS …`.
    Create(&'static str),
    /// A column added after the table first shipped: added where it is missing.
    AddColumn {
        table: &'static str,
        column: &'static str,
        definition: &'static str,
    },
}

/// Brings an object's tables to `schema`: the one way every object creates and migrates them.
pub fn migrate(sql: &SqlStorage, schema: &[Schema]) {
    #[derive(Deserialize)]
    struct Column {
        #[allow(dead_code)]
        name: String,
    }
    for step in schema {
        // A step that fails leaves the object as it was; the next start tries again.
        let _ = match step {
            Schema::Create(ddl) => sql.exec(ddl, None).map(|_| ()),
            Schema::AddColumn {
                table,
                column,
                definition,
            } => {
                let present: Vec<Column> = sql
                    .exec(
                        "SELECT name FROM pragma_table_info(?) WHERE name = ?",
                        vec![(*table).into(), (*column).into()],
                    )
                    .and_then(|c| c.to_array())
                    .unwrap_or_default();
                if present.is_empty() {
                    sql.exec(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"), None)
                        .map(|_| ())
                } else {
                    Ok(())
                }
            }
        };
    }
}

/// The `meta` table's DDL: `k` → one JSON document.
pub const META_TABLE: &str = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, doc TEXT NOT NULL)";

#[derive(Deserialize)]
struct DocRow {
    doc: String,
}

pub fn meta_get<T: DeserializeOwned>(sql: &SqlStorage, key: &str) -> Result<Option<T>> {
    let rows: Vec<DocRow> = sql
        .exec("SELECT doc FROM meta WHERE k = ?", vec![key.into()])?
        .to_array()?;
    match rows.first() {
        Some(r) => Ok(Some(serde_json::from_str(&r.doc)?)),
        None => Ok(None),
    }
}

pub fn meta_put<T: Serialize>(sql: &SqlStorage, key: &str, value: &T) -> Result<()> {
    sql.exec(
        "INSERT INTO meta (k, doc) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET doc = excluded.doc",
        vec![key.into(), serde_json::to_string(value)?.into()],
    )?;
    Ok(())
}

pub fn meta_remove(sql: &SqlStorage, key: &str) -> Result<()> {
    sql.exec("DELETE FROM meta WHERE k = ?", vec![key.into()])?;
    Ok(())
}

/// What an object that works in slices holds: its state, the Worker's environment, and the
/// flag that keeps one slice running at a time. Its tables are brought to `schema` when it
/// starts.
pub struct Slices {
    pub state: worker::State,
    pub env: worker::Env,
    pub running: Cell<bool>,
}

impl Slices {
    pub fn start(state: worker::State, env: worker::Env, schema: &[Schema]) -> Self {
        migrate(&state.storage().sql(), schema);
        Self {
            state,
            env,
            running: Cell::new(false),
        }
    }
}

/// Held while a slice runs; the flag is cleared however the slice ends.
pub struct Running<'a>(&'a Cell<bool>);

impl<'a> Running<'a> {
    /// The guard, or `None` when a slice is already running.
    pub fn claim(flag: &'a Cell<bool>) -> Option<Self> {
        (!flag.replace(true)).then_some(Self(flag))
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Sends `request` (the object's request enum, its variant naming the operation) to the object
/// behind `stub` (named `name` in errors) and reads its JSON answer; anything but 200 is an
/// error carrying the answer.
pub async fn call<I: Serialize, O: DeserializeOwned>(stub: &Stub, name: &str, request: &I) -> Result<O> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(request)?.into()));
    let req = Request::new_with_init(&format!("https://{name}/"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let text = resp.text().await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "{name} answered {}: {text}",
            resp.status_code()
        )));
    }
    Ok(serde_json::from_str(&text)?)
}

/// The request a Worker sent an object, as the object's request enum; one it cannot read is
/// answered 400 (never run as a guess).
pub async fn read_call<I: DeserializeOwned>(req: &mut Request) -> Result<std::result::Result<I, Response>> {
    let text = req.text().await?;
    match serde_json::from_str(&text) {
        Ok(call) => Ok(Ok(call)),
        Err(e) => Ok(Err(crate::reply::api_error(
            &cxone_scim_core::api_error::ApiError::bad_request("invalidSyntax", format!("unreadable object call: {e}")),
        )?)),
    }
}
