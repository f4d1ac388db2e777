//! Building SCIM filter expressions and listing URLs safely.

use crate::http::encode_component;

/// `attr eq "value"` with the value escaped as a JSON string (RFC 7644 §3.4.2.2).
pub fn eq(attribute: &str, value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    format!("{attribute} eq {quoted}")
}

/// `{base}/Users?filter=...` with the filter percent-encoded.
pub fn users_filter_url(base_url: &str, filter: &str) -> String {
    format!(
        "{}/Users?filter={}",
        base_url.trim_end_matches('/'),
        encode_component(filter)
    )
}

/// `{base}/Users?startIndex=..&count=..` (1-based index, RFC 7644 §3.4.2.4).
pub fn users_page_url(base_url: &str, start_index: u64, count: u64) -> String {
    format!(
        "{}/Users?startIndex={start_index}&count={count}",
        base_url.trim_end_matches('/')
    )
}

/// `{base}/Users/{id}` with the id percent-encoded.
pub fn user_url(base_url: &str, id: &str) -> String {
    format!("{}/Users/{}", base_url.trim_end_matches('/'), encode_component(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn escapes_quotes_and_backslashes() {
        assert_eq!(eq("userName", r#"a"b\c"#), r#"userName eq "a\"b\\c""#);
        assert_eq!(
            users_filter_url("http://h/scim/v2/", &eq("externalId", "x 1")),
            "http://h/scim/v2/Users?filter=externalId%20eq%20%22x%201%22"
        );
        assert_eq!(user_url("http://h/scim/v2", "a/b"), "http://h/scim/v2/Users/a%2Fb");
    }
}
