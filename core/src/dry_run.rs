//! `dryRun` on every admin POST, read strictly: `true` or `false` (any case), in the query or the
//! body. Anything else is refused before the request does anything, so a request that cannot be
//! read never becomes a real run: a misspelt name, a value like `"yes"` or `1`, a body that is not
//! JSON, or a query and a body that disagree.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Largest body of an admin POST whose only field is `dryRun` (larger: 413).
pub const MAX_FLAG_BODY: usize = 4096;

/// The parameter's name, exactly as the API spells it.
pub const NAME: &str = "dryRun";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DryRunError {
    #[error("dryRun must be true or false, not {0}")]
    Value(String),
    #[error("dryRun is given more than once with different values")]
    Conflicting,
    #[error("unknown parameter {0:?}: did you mean dryRun?")]
    Misspelt(String),
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON object")]
    NotObject,
    #[error("unknown field {0:?}: this endpoint reads only dryRun")]
    UnknownField(String),
    #[error("dryRun is given more than once in the body")]
    Repeated,
}

impl DryRunError {
    /// The SCIM `scimType` of the 400 it becomes.
    pub fn scim_type(&self) -> &'static str {
        match self {
            Self::NotJson(_) | Self::NotObject => "invalidSyntax",
            _ => "invalidValue",
        }
    }
}

/// `true` or `false`, in any case; nothing else.
pub fn parse_flag(text: &str) -> Result<bool, DryRunError> {
    if text.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(DryRunError::Value(shown(text)))
    }
}

/// A value as it may be echoed in an error: quoted, and cut short.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// A name someone meant as `dryRun` but spelt otherwise (`dryrun`, `dry_run`, `Dry-Run`).
fn looks_like_dry_run(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    folded == "dryrun" && name != NAME
}

/// What the query says: `None` when it does not name `dryRun`.
pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Option<bool>, DryRunError> {
    let mut said = None;
    for (name, value) in pairs {
        if looks_like_dry_run(name) {
            return Err(DryRunError::Misspelt(name.chars().take(40).collect()));
        }
        if name == NAME {
            said = agree(said, Some(parse_flag(value)?))?;
        }
    }
    Ok(said)
}

/// A `dryRun` value in a JSON body: a boolean, or the strings `true`/`false` in any case.
pub fn from_json(value: &Value) -> Result<bool, DryRunError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => parse_flag(s),
        other => Err(DryRunError::Value(shown(&other.to_string()))),
    }
}

/// The query's and the body's answers, which must not disagree. Neither: a real run.
pub fn agree(query: Option<bool>, body: Option<bool>) -> Result<Option<bool>, DryRunError> {
    match (query, body) {
        (Some(a), Some(b)) if a != b => Err(DryRunError::Conflicting),
        (a, b) => Ok(a.or(b)),
    }
}

/// The flag of an admin POST whose body, if any, holds `dryRun` alone (an empty body, or only
/// whitespace, says nothing).
pub fn read<'a>(query: impl IntoIterator<Item = (&'a str, &'a str)>, body: &[u8]) -> Result<bool, DryRunError> {
    let query = from_query(query)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(body).map_err(|e| DryRunError::NotJson(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(DryRunError::NotObject);
        };
        let mut said = None;
        for (name, value) in &fields {
            if name != NAME {
                if looks_like_dry_run(name) {
                    return Err(DryRunError::Misspelt(name.chars().take(40).collect()));
                }
                return Err(DryRunError::UnknownField(name.chars().take(40).collect()));
            }
            said = Some(from_json(value)?);
        }
        // A map keeps the last of repeated keys: `{"dryRun":true,"dryRun":false}` must not pass.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Once {
            #[serde(rename = "dryRun", default)]
            _dry_run: Option<Value>,
        }
        serde_json::from_slice::<Once>(body).map_err(|_| DryRunError::Repeated)?;
        said
    };
    Ok(agree(query, body)?.unwrap_or(false))
}

/// `dryRun` as a field of a larger typed body (bulk runs, role sync): the same values accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRunField(pub bool);

impl<'de> Deserialize<'de> for DryRunField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        from_json(&value).map(Self).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn q(pairs: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        pairs.to_vec()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn true_and_false_in_any_case_and_nothing_else() {
        for yes in ["true", "TRUE", "True"] {
            assert_eq!(parse_flag(yes), Ok(true));
        }
        for no in ["false", "FALSE", "False"] {
            assert_eq!(parse_flag(no), Ok(false));
        }
        for bad in ["", "1", "0", "yes", " true", "true ", "tru", "truee", "null"] {
            assert!(matches!(parse_flag(bad), Err(DryRunError::Value(_))), "{bad:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_query_is_read_strictly() {
        assert_eq!(from_query(q(&[])), Ok(None));
        assert_eq!(from_query(q(&[("dryRun", "TRUE")])), Ok(Some(true)));
        assert_eq!(from_query(q(&[("cursor", "x"), ("dryRun", "false")])), Ok(Some(false)));
        assert_eq!(from_query(q(&[("dryRun", "true"), ("dryRun", "True")])), Ok(Some(true)));
        assert_eq!(
            from_query(q(&[("dryRun", "true"), ("dryRun", "false")])),
            Err(DryRunError::Conflicting)
        );
        assert!(matches!(from_query(q(&[("dryRun", "1")])), Err(DryRunError::Value(_))));
        assert!(matches!(from_query(q(&[("dryRun", "")])), Err(DryRunError::Value(_))));
        for misspelt in ["dryrun", "dry_run", "DRYRUN", "dry-run", "DryRun"] {
            assert_eq!(
                from_query(vec![(misspelt, "true")]),
                Err(DryRunError::Misspelt(misspelt.into())),
                "{misspelt}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_body_that_holds_only_dry_run() {
        let none = q(&[]);
        assert_eq!(read(none.clone(), b""), Ok(false));
        assert_eq!(read(none.clone(), b" \n"), Ok(false));
        assert_eq!(read(none.clone(), b"{}"), Ok(false));
        assert_eq!(read(none.clone(), br#"{"dryRun":true}"#), Ok(true));
        assert_eq!(read(none.clone(), br#"{"dryRun":"true"}"#), Ok(true));
        assert_eq!(read(none.clone(), br#"{"dryRun":"FALSE"}"#), Ok(false));
        assert!(matches!(
            read(none.clone(), b"{dryRun: true"),
            Err(DryRunError::NotJson(_))
        ));
        assert!(matches!(
            read(none.clone(), br#"{"dryRun":true"#),
            Err(DryRunError::NotJson(_))
        ));
        assert_eq!(read(none.clone(), b"[true]"), Err(DryRunError::NotObject));
        assert_eq!(read(none.clone(), b"true"), Err(DryRunError::NotObject));
        for bad in [
            r#"{"dryRun":1}"#,
            r#"{"dryRun":null}"#,
            r#"{"dryRun":"yes"}"#,
            r#"{"dryRun":[true]}"#,
        ] {
            assert!(
                matches!(read(none.clone(), bad.as_bytes()), Err(DryRunError::Value(_))),
                "{bad}"
            );
        }
        assert_eq!(
            read(none.clone(), br#"{"dryrun":true}"#),
            Err(DryRunError::Misspelt("dryrun".into()))
        );
        assert_eq!(
            read(none.clone(), br#"{"dryRun":true,"force":true}"#),
            Err(DryRunError::UnknownField("force".into()))
        );
        assert_eq!(
            read(none.clone(), br#"{"dryRun":true,"dryRun":false}"#),
            Err(DryRunError::Repeated)
        );
        assert_eq!(
            read(none.clone(), br#"{"dryRun":false,"dryRun":false}"#),
            Err(DryRunError::Repeated)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn query_and_body_must_agree() {
        assert_eq!(read(q(&[("dryRun", "true")]), b""), Ok(true));
        assert_eq!(read(q(&[("dryRun", "TRUE")]), br#"{"dryRun":true}"#), Ok(true));
        assert_eq!(
            read(q(&[("dryRun", "true")]), br#"{"dryRun":false}"#),
            Err(DryRunError::Conflicting)
        );
        // A bad query is refused even when the body is fine, and the other way round.
        assert!(read(q(&[("dryRun", "TRUEE")]), br#"{"dryRun":true}"#).is_err());
        assert!(read(q(&[("dryRun", "true")]), b"{").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_field_of_a_typed_body() {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            #[serde(default)]
            dry_run: Option<DryRunField>,
        }
        let read = |s: &str| serde_json::from_str::<Body>(s).map(|b| b.dry_run.map(|f| f.0));
        assert_eq!(read("{}").ok(), Some(None));
        assert_eq!(read(r#"{"dryRun":"True"}"#).ok(), Some(Some(true)));
        assert_eq!(read(r#"{"dryRun":false}"#).ok(), Some(Some(false)));
        let err = read(r#"{"dryRun":"on"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("dryRun must be true or false"), "{err}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn errors_echo_little() {
        let long = "x".repeat(5_000);
        let err = parse_flag(&long).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.len() < 100, "{err}");
        assert_eq!(DryRunError::NotObject.scim_type(), "invalidSyntax");
        assert_eq!(DryRunError::Conflicting.scim_type(), "invalidValue");
    }
}
