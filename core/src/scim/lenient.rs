//! Lenient input adapters for identity-provider quirks (Entra ID sends `"True"`/`"False"`
//! strings for booleans and PascalCase patch `op` values).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean or the string \"true\"/\"false\" in any case")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if v.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if v.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
}

/// A boolean given as `true`, `"True"`, `"false"`...
pub fn bool_<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolVisitor)
}

/// An optional lenient boolean (`null` or absent → `None`).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "bool_")] bool);
    Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(b)| b))
}

/// One of a closed set of names, matched in any case (`"Replace"`, `"REPLACE"` → `replace`).
pub fn one_of<'de, D: Deserializer<'de>, T: Copy>(d: D, choices: &[(&'static str, T)]) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&s))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            // serde wants the expected names as a 'static slice; list them in the message instead.
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            de::Error::custom(format!("unknown variant `{s}`, expected one of {}", names.join(", ")))
        })
}

/// An unsigned integer given as a number or a string (`400` or `"400"`).
fn integer<'de, D, T>(d: D, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        Num(T),
        Str(String),
    }
    match Raw::<T>::deserialize(d)? {
        Raw::Num(n) => Ok(n),
        Raw::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("invalid {what} {s:?}"))),
    }
}

/// An HTTP status given as a number or a string (`400` or `"400"`).
pub fn status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    integer(d, "status")
}

/// A count or size given as a number or a string (`1000` or `"1000"`).
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    integer(d, "count")
}

/// A value of another shape than `T` read as `T::default()`, so that one odd attribute does not
/// make a whole advisory document (such as `/ServiceProviderConfig`) unreadable.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Value(T),
        Other(de::IgnoredAny),
    }
    Ok(match Either::<T>::deserialize(d)? {
        Either::Value(v) => v,
        Either::Other(_) => T::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "bool_")]
        b: bool,
        #[serde(default, deserialize_with = "opt_bool")]
        o: Option<bool>,
        #[serde(deserialize_with = "status")]
        s: u16,
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn accepts_idp_spellings() {
        let t: T = serde_json::from_str(r#"{"b":"True","o":"FALSE","s":"409"}"#).unwrap();
        assert!(t.b);
        assert_eq!(t.o, Some(false));
        assert_eq!(t.s, 409);
        let t: T = serde_json::from_str(r#"{"b":false,"s":201}"#).unwrap();
        assert!(!t.b);
        assert_eq!(t.o, None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn counts_and_odd_shapes() {
        #[derive(Deserialize)]
        struct C {
            #[serde(deserialize_with = "count")]
            n: u64,
            #[serde(default, deserialize_with = "or_default")]
            v: Vec<u32>,
        }
        let c: C = serde_json::from_str(r#"{"n":" 1048576 ","v":{"not":"a list"}}"#).unwrap();
        assert_eq!((c.n, c.v), (1_048_576, vec![]));
        let c: C = serde_json::from_str(r#"{"n":5000000000,"v":[1,2]}"#).unwrap();
        assert_eq!((c.n, c.v), (5_000_000_000, vec![1, 2]));
        assert!(serde_json::from_str::<C>(r#"{"n":-1}"#).is_err());
        assert!(serde_json::from_str::<C>(r#"{"n":"many"}"#).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_other_strings() {
        assert!(serde_json::from_str::<T>(r#"{"b":"yes","s":1}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"b":true,"s":"abc"}"#).is_err());
    }
}
