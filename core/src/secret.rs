//! Secret newtypes: their `Debug` never shows the value, and they are not `Serialize`.

use std::fmt;

/// A secret string (client secret, admin token, access token). `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Splits a configured list (`"a,b"`, `"a b"`, `"a, b"`) into its non-empty items.
pub fn split_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn debug_is_redacted() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lists_split_on_commas_and_spaces() {
        let items: Vec<_> = split_list(" a,b  c,\n,d ").collect();
        assert_eq!(items, ["a", "b", "c", "d"]);
    }
}
