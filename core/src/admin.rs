//! Admin bearer tokens: several may be configured (rotation); compared in constant time.

use crate::secret::{split_list, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct AdminTokens(Vec<SecretString>);

impl AdminTokens {
    /// Parses a comma- or space-separated list; `None` when it holds no token.
    pub fn parse_list(raw: &str) -> Option<Self> {
        let tokens: Vec<_> = split_list(raw).map(SecretString::new).collect();
        (!tokens.is_empty()).then_some(Self(tokens))
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

    #[wasm_bindgen_test(unsupported = test)]
    fn accepts_any_configured_token() {
        let t = AdminTokens::parse_list("old-token, new-token").unwrap();
        assert!(t.authorizes(Some("Bearer old-token")));
        assert!(t.authorizes(Some("bearer new-token")));
        assert!(!t.authorizes(Some("Bearer new-toke")));
        assert!(!t.authorizes(Some("Bearer ")));
        assert!(!t.authorizes(Some("Basic new-token")));
        assert!(!t.authorizes(Some("new-token")));
        assert!(!t.authorizes(None));
        assert!(AdminTokens::parse_list(" ,").is_none());
    }
}
