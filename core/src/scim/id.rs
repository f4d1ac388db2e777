//! Resource ids a server hands out, checked before they become a URL path segment: an id is
//! percent-encoded there, but `""`, `.` and `..` are not changed by encoding and would address
//! the collection or its parent, and an id holding URL syntax was not made to be one.

/// The longest id accepted, in characters.
pub const MAX_ID_CHARS: usize = 256;

/// Whether `id` may stand for one resource in a path: not empty, not `.` or `..`, at most
/// [`MAX_ID_CHARS`] long, without `/`, `\`, `?`, `#`, `%` or control characters.
pub fn is_usable_id(id: &str) -> bool {
    !matches!(id, "" | "." | "..")
        && id.chars().count() <= MAX_ID_CHARS
        && !id
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn ids_that_are_path_syntax_are_refused() {
        for ok in [
            "2c9f1b5e-6a0d-4a5e-9a43-1d2f3e4a5b6c",
            "u1",
            "a.b",
            "...",
            "jdoe@example.com",
            "ünal",
            "a b",
        ] {
            assert!(is_usable_id(ok), "{ok:?}");
        }
        assert!(is_usable_id(&"x".repeat(MAX_ID_CHARS)));
        for bad in [
            "", ".", "..", "a/b", "../admin", "a\\b", "a?b", "a#b", "%2e%2e", "a\nb", "a\u{0}", "a\u{7f}", "a\u{85}",
        ] {
            assert!(!is_usable_id(bad), "{bad:?}");
        }
        assert!(!is_usable_id(&"x".repeat(MAX_ID_CHARS + 1)));
    }
}
