//! Admin bearer tokens: several may be configured (rotation); compared in constant time.

use crate::secret::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest admin token accepted, in characters.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// What is wrong with `ADMIN_TOKEN`; names the token by position, never shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    #[error("ADMIN_TOKEN holds no token")]
    None,
    #[error("ADMIN_TOKEN token #{0} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters")]
    TooShort(usize),
    #[error("ADMIN_TOKEN token #{0} holds whitespace (tokens are separated by commas)")]
    Whitespace(usize),
}

#[derive(Debug, Clone)]
pub struct AdminTokens(Vec<SecretString>);

impl AdminTokens {
    /// Parses a comma-separated list, each token trimmed, at least [`MIN_ADMIN_TOKEN_CHARS`]
    /// long and without whitespace inside.
    pub fn parse_list(raw: &str) -> Result<Self, AdminTokenError> {
        let mut tokens = Vec::new();
        for (i, token) in raw.split(',').map(str::trim).filter(|t| !t.is_empty()).enumerate() {
            if token.chars().any(char::is_whitespace) {
                return Err(AdminTokenError::Whitespace(i + 1));
            }
            if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(AdminTokenError::TooShort(i + 1));
            }
            tokens.push(SecretString::new(token));
        }
        if tokens.is_empty() {
            return Err(AdminTokenError::None);
        }
        Ok(Self(tokens))
    }

    /// Whether an `Authorization` header value carries one of the tokens. Every configured
    /// token is compared (digests, so lengths leak nothing), whatever matches first.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        let Some(presented) = authorization.and_then(bearer) else {
            return false;
        };
        let presented = Sha256::digest(presented.as_bytes());
        self.0.iter().fold(0u8, |hit, t| {
            hit | Sha256::digest(t.expose().as_bytes()).ct_eq(&presented).unwrap_u8()
        }) == 1
    }
}

/// The token in `Bearer <token>` (scheme case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const OLD: &str = "old-admin-token-0123456789abcdefgh";
    const NEW: &str = "new-admin-token-0123456789abcdefgh";

    #[wasm_bindgen_test(unsupported = test)]
    fn accepts_any_configured_token() {
        let t = AdminTokens::parse_list(&format!(" {OLD},{NEW} , ")).unwrap();
        assert!(t.authorizes(Some(&format!("Bearer {OLD}"))));
        assert!(t.authorizes(Some(&format!("bearer {NEW}"))));
        assert!(!t.authorizes(Some(&format!("Bearer {}", &NEW[..NEW.len() - 1]))));
        assert!(!t.authorizes(Some("Bearer ")));
        assert!(!t.authorizes(Some(&format!("Basic {NEW}"))));
        assert!(!t.authorizes(Some(NEW)));
        assert!(!t.authorizes(None));
        assert_eq!(AdminTokens::parse_list(" ,").unwrap_err(), AdminTokenError::None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn tokens_split_on_commas_only() {
        let alpha = "alpha-0123456789abcdefghijklmnopq";
        let beta = "beta-0123456789abcdefghijklmnopqr";
        for spaced in [
            format!("{alpha} {beta}"),
            format!("{alpha}\t{beta}"),
            format!("{OLD}, {alpha} {beta}"),
        ] {
            let parsed = AdminTokens::parse_list(&spaced);
            assert!(matches!(parsed, Err(AdminTokenError::Whitespace(_))), "{spaced:?}");
            assert!(!parsed.is_ok_and(|t| t.authorizes(Some(&format!("Bearer {alpha}")))));
        }
        assert_eq!(
            AdminTokens::parse_list(&format!("{OLD}, {alpha} {beta}")).unwrap_err(),
            AdminTokenError::Whitespace(2)
        );
        let t = AdminTokens::parse_list(&format!("{alpha},{beta}")).unwrap();
        assert!(t.authorizes(Some(&format!("Bearer {alpha}"))));
        assert!(t.authorizes(Some(&format!("Bearer {beta}"))));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn short_tokens_are_refused_without_showing_them() {
        let short = "local-admin-token";
        let err = AdminTokens::parse_list(&format!("{OLD},{short}")).unwrap_err();
        assert_eq!(err, AdminTokenError::TooShort(2));
        assert_eq!(err.to_string(), "ADMIN_TOKEN token #2 is shorter than 32 characters");
        assert!(!err.to_string().contains(short));
        let exactly = "x".repeat(MIN_ADMIN_TOKEN_CHARS);
        assert!(AdminTokens::parse_list(&exactly).is_ok());
        assert_eq!(
            AdminTokens::parse_list(&exactly[1..]).unwrap_err(),
            AdminTokenError::TooShort(1)
        );
    }
}
