//! Single-valued attribute paths (`[URN:]attr[.sub]`, RFC 7644 §3.10) read from and written to
//! a resource held as JSON, names compared in any case as SCIM does (RFC 7643 §2.1).

use super::USER_SCHEMA;
use serde_json::{Map, Value};

/// A single-valued attribute path as SCIM reads it, `[URN:]attr[.sub]`; the core User URN
/// is dropped (its attributes sit at the top of the resource). Names compare in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttrPath<'a> {
    /// An extension schema, whose attributes sit in an object under its URN.
    pub(crate) urn: Option<&'a str>,
    pub(crate) attr: &'a str,
    pub(crate) sub: Option<&'a str>,
}

impl<'a> AttrPath<'a> {
    pub(crate) fn split(path: &'a str) -> Self {
        let path = path.trim();
        let is_urn = path.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
        let (urn, rest) = match path.rfind(':') {
            Some(i) if is_urn => (Some(&path[..i]), &path[i + 1..]),
            _ => (None, path),
        };
        let urn = urn.filter(|u| !u.eq_ignore_ascii_case(USER_SCHEMA));
        let (attr, sub) = match rest.split_once('.') {
            Some((attr, sub)) => (attr, Some(sub)),
            None => (rest, None),
        };
        Self { urn, attr, sub }
    }
}

/// The key of `map` that is `name` in any case.
fn key_of(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn get_ci<'v>(node: &'v Value, name: &str) -> Option<&'v Value> {
    let map = node.as_object()?;
    map.get(&key_of(map, name)?)
}

pub(crate) fn get_path<'v>(resource: &'v Value, path: &AttrPath<'_>) -> Option<&'v Value> {
    let mut node = resource;
    if let Some(urn) = path.urn {
        node = get_ci(node, urn)?;
    }
    node = get_ci(node, path.attr)?;
    match path.sub {
        Some(sub) => get_ci(node, sub),
        None => Some(node),
    }
}

/// The text at `path` in `resource`, trimmed; blank or not text counts as none.
pub(crate) fn text_of(resource: &Value, path: &str) -> Option<String> {
    get_path(resource, &AttrPath::split(path))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The member `name` of `node` (in any case), made an object first when it is not one, and
/// added as `null` when missing.
fn child<'v>(node: &'v mut Value, name: &str) -> Option<&'v mut Value> {
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    let map = node.as_object_mut()?;
    let key = key_of(map, name).unwrap_or_else(|| name.to_string());
    Some(map.entry(key).or_insert(Value::Null))
}

/// Sets the attribute at `path` (adding an extension's URN to `schemas`), or removes it when
/// `value` is `None` (and an extension or complex attribute left empty with it).
pub(crate) fn set_path(resource: &mut Value, path: &AttrPath<'_>, value: Option<&str>) {
    match value {
        Some(value) => {
            let mut node = Some(&mut *resource);
            if let Some(urn) = path.urn {
                node = node.and_then(|n| child(n, urn));
            }
            node = node.and_then(|n| child(n, path.attr));
            if let Some(sub) = path.sub {
                node = node.and_then(|n| child(n, sub));
            }
            if let Some(slot) = node {
                *slot = Value::String(value.to_string());
            }
            if let Some(urn) = path.urn {
                edit_schemas(resource, urn, true);
            }
        }
        None => {
            let Some(map) = resource.as_object_mut() else {
                return;
            };
            match path.urn {
                None => remove_attr(map, path.attr, path.sub),
                Some(urn) => {
                    let Some(key) = key_of(map, urn) else {
                        return;
                    };
                    if let Some(ext) = map.get_mut(&key).and_then(Value::as_object_mut) {
                        remove_attr(ext, path.attr, path.sub);
                    }
                    if map.get(&key).and_then(Value::as_object).is_some_and(Map::is_empty) {
                        map.remove(&key);
                        edit_schemas(resource, urn, false);
                    }
                }
            }
        }
    }
}

fn remove_attr(map: &mut Map<String, Value>, attr: &str, sub: Option<&str>) {
    let Some(key) = key_of(map, attr) else {
        return;
    };
    let Some(sub) = sub else {
        map.remove(&key);
        return;
    };
    if let Some(inner) = map.get_mut(&key).and_then(Value::as_object_mut) {
        if let Some(sub_key) = key_of(inner, sub) {
            inner.remove(&sub_key);
        }
        if inner.is_empty() {
            map.remove(&key);
        }
    }
}

/// Adds `urn` to `schemas` (when missing) or takes it out.
fn edit_schemas(resource: &mut Value, urn: &str, present: bool) {
    let Some(map) = resource.as_object_mut() else {
        return;
    };
    let schemas = map.entry("schemas").or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = schemas.as_array_mut() else {
        return;
    };
    let listed = |s: &Value| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn));
    if present {
        if !list.iter().any(listed) {
            list.push(Value::String(urn.to_string()));
        }
    } else {
        list.retain(|s| !listed(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn attribute_paths_split_and_edit_in_any_case() {
        let p = AttrPath::split("URN:x:y:User:primaryRole");
        assert_eq!((p.urn, p.attr, p.sub), (Some("URN:x:y:User"), "primaryRole", None));
        let p = AttrPath::split("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName");
        assert_eq!((p.urn, p.attr, p.sub), (None, "name", Some("givenName")));
        let mut v = json!({"schemas": [USER_SCHEMA], "Name": {"givenName": "J"}});
        set_path(&mut v, &AttrPath::split("name.familyName"), Some("D"));
        assert_eq!(v["Name"], json!({"givenName": "J", "familyName": "D"}));
        set_path(&mut v, &AttrPath::split("name.GIVENNAME"), None);
        set_path(&mut v, &AttrPath::split("name.familyName"), None);
        assert_eq!(
            v,
            json!({"schemas": [USER_SCHEMA]}),
            "an emptied complex attribute goes"
        );
        set_path(&mut v, &AttrPath::split("urn:x:User:role"), Some("R"));
        assert_eq!(
            v,
            json!({"schemas": [USER_SCHEMA, "urn:x:User"], "urn:x:User": {"role": "R"}})
        );
        set_path(&mut v, &AttrPath::split("urn:X:user:ROLE"), None);
        assert_eq!(v, json!({"schemas": [USER_SCHEMA]}));
    }
}
