//! What the Worker's Durable Objects share: a `meta` table of small JSON documents by key, the
//! guard that keeps one slice running at a time, and the Worker-side JSON call to an object.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use worker::{Method, Request, RequestInit, Result, SqlStorage, Stub};

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

/// POSTs `body` as JSON to `path` of the object behind `stub` (named `name` in errors) and
/// reads its JSON answer; anything but 200 is an error carrying the answer.
pub async fn call<I: Serialize, O: DeserializeOwned>(stub: &Stub, name: &str, path: &str, body: &I) -> Result<O> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(body)?.into()));
    let req = Request::new_with_init(&format!("https://{name}{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let text = resp.text().await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "{name} {path} answered {}: {text}",
            resp.status_code()
        )));
    }
    Ok(serde_json::from_str(&text)?)
}
