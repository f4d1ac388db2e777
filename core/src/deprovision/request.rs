//! `POST /deprovision`: one leaver, or `{"requests":[…]}` of up to [`MAX_BATCH`], read strictly.
//! Every field is checked before anything runs; an error names the field (`requests[3].mode`).

use super::{Mode, Options};
use crate::api_error::ApiError;
use crate::dry_run::DryRunField;
use crate::event::Lookup;
use serde::Deserialize;
use serde_json::Value;

/// Leavers one batch may hold.
pub const MAX_BATCH: usize = 1_000;

/// One leaver, as asked.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    end_sessions: Option<bool>,
    #[serde(default)]
    block_on_dependencies: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
    /// Read for one leaver; in a batch it belongs to the whole call.
    #[serde(default)]
    dry_run: Option<DryRunField>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BatchWire {
    requests: Vec<Wire>,
    #[serde(default)]
    dry_run: Option<DryRunField>,
}

/// Longest `reason` kept, in characters.
const MAX_REASON: usize = 500;

/// One leaver to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeprovisionRequest {
    pub lookup: Lookup,
    pub options: Options,
}

/// What a `POST /deprovision` body asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeprovisionBatch {
    pub requests: Vec<DeprovisionRequest>,
    /// Sent as `{"requests":[…]}` (answered per request), not as one leaver.
    pub batch: bool,
    /// `dryRun` in the body, when it says.
    pub dry_run: Option<bool>,
}

fn bad(detail: String) -> ApiError {
    ApiError::bad_request("invalidValue", detail)
}

fn checked(wire: Wire, at: &str) -> Result<DeprovisionRequest, ApiError> {
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let lookup = Lookup {
        external_id: text(wire.external_id),
        user_name: text(wire.user_name),
        cxone_id: None,
    };
    if lookup.external_id.is_none() && lookup.user_name.is_none() {
        return Err(bad(format!("{at}externalId or {at}userName is required")));
    }
    if !at.is_empty() && wire.dry_run.is_some() {
        return Err(bad(format!(
            "{at}dryRun: dryRun applies to the whole call, outside requests"
        )));
    }
    if let Some(reason) = &wire.reason {
        if reason.chars().count() > MAX_REASON {
            return Err(bad(format!("{at}reason is longer than {MAX_REASON} characters")));
        }
    }
    let defaults = Options::default();
    Ok(DeprovisionRequest {
        lookup,
        options: Options {
            mode: wire.mode.unwrap_or(defaults.mode),
            end_sessions: wire.end_sessions.unwrap_or(defaults.end_sessions),
            block_on_dependencies: wire.block_on_dependencies.unwrap_or(defaults.block_on_dependencies),
            reason: text(wire.reason),
        },
    })
}

impl DeprovisionBatch {
    /// Reads a body: a JSON object that is one leaver, or holds `requests`.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("invalidSyntax", format!("the body is not JSON: {e}")))?;
        let Value::Object(map) = &value else {
            return Err(ApiError::bad_request("invalidSyntax", "the body must be a JSON object"));
        };
        let field_error = |e: serde_path_to_error::Error<serde_json::Error>| {
            bad(format!("invalid deprovision request at {}: {}", e.path(), e.inner()))
        };
        if map.contains_key("requests") {
            let wire: BatchWire = serde_path_to_error::deserialize(&value).map_err(field_error)?;
            if wire.requests.is_empty() {
                return Err(bad("requests holds no request".into()));
            }
            if wire.requests.len() > MAX_BATCH {
                return Err(bad(format!(
                    "requests holds {} requests; at most {MAX_BATCH} per call",
                    wire.requests.len()
                )));
            }
            let requests = wire
                .requests
                .into_iter()
                .enumerate()
                .map(|(i, w)| checked(w, &format!("requests[{i}].")))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self {
                requests,
                batch: true,
                dry_run: wire.dry_run.map(|f| f.0),
            });
        }
        let wire: Wire = serde_path_to_error::deserialize(&value).map_err(field_error)?;
        let dry_run = wire.dry_run.map(|f| f.0);
        Ok(Self {
            requests: vec![checked(wire, "")?],
            batch: false,
            dry_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn detail(body: &str) -> String {
        DeprovisionBatch::parse(body.as_bytes()).unwrap_err().detail
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn one_leaver_with_its_defaults() {
        let b = DeprovisionBatch::parse(br#"{"userName":" a@x.io ","reason":"left"}"#).unwrap();
        assert!(!b.batch);
        assert_eq!(b.dry_run, None);
        assert_eq!(b.requests[0].lookup.user_name.as_deref(), Some("a@x.io"));
        assert_eq!(
            b.requests[0].options,
            Options {
                reason: Some("left".into()),
                ..Options::default()
            }
        );
        assert!(b.requests[0].options.end_sessions);
        let b = DeprovisionBatch::parse(
            br#"{"externalId":"e-1","mode":"delete","endSessions":false,"blockOnDependencies":true,"dryRun":"true"}"#,
        )
        .unwrap();
        assert_eq!(b.dry_run, Some(true));
        let o = &b.requests[0].options;
        assert_eq!(
            (o.mode, o.end_sessions, o.block_on_dependencies),
            (Mode::Delete, false, true)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_batch_is_checked_whole_and_errors_name_the_field() {
        let b = DeprovisionBatch::parse(br#"{"requests":[{"userName":"a@x.io"},{"externalId":"e-2"}],"dryRun":false}"#)
            .unwrap();
        assert!(b.batch);
        assert_eq!(b.requests.len(), 2);
        assert_eq!(b.dry_run, Some(false));
        let d = detail(r#"{"requests":[{"userName":"a@x.io"},{"userName":"b@x.io","mode":"purge"}]}"#);
        assert!(d.contains("requests[1].mode"), "{d}");
        let d = detail(r#"{"requests":[{"userName":"a@x.io"},{"reason":"x"}]}"#);
        assert_eq!(d, "requests[1].externalId or requests[1].userName is required");
        let d = detail(r#"{"userName":"a@x.io","endSessions":"yes"}"#);
        assert!(d.contains("endSessions"), "{d}");
        let d = detail(r#"{"userName":"a@x.io","dryrun":true}"#);
        assert!(d.contains("dryrun"), "{d}");
        let d = detail(r#"{"userName":"a@x.io","dryRun":"maybe"}"#);
        assert!(d.contains("dryRun must be true or false"), "{d}");
        assert_eq!(detail(r#"{"requests":[]}"#), "requests holds no request");
        let many = format!(
            r#"{{"requests":[{}]}}"#,
            vec![r#"{"userName":"a@x.io"}"#; MAX_BATCH + 1].join(",")
        );
        assert!(detail(&many).contains("at most 1000"));
        assert_eq!(
            DeprovisionBatch::parse(b"[1]").unwrap_err().scim_type.as_deref(),
            Some("invalidSyntax")
        );
    }
}
