//! Tokens for CXone (and Graph): the request, the response, and when to refresh. Two grants:
//! OAuth 2.0 client credentials (a form, `client_secret_post`), and CXone's access key (a JSON
//! body `{"accessKeyId","accessKeySecret"}` to `/authentication/v1/token/access-key`, as NICE
//! documents for back-end integrations). Both answer `access_token`, `token_type`, `expires_in`.

use crate::http::{form_body, HttpRequest, HttpResponse, Method, FORM};
use crate::secret::SecretString;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// Refresh this long before the token expires (or at half its lifetime when it is shorter
/// than twice this: see [`CachedToken::issued`]).
pub const REFRESH_MARGIN_MS: u64 = 60_000;
const DEFAULT_EXPIRES_IN_SECS: u64 = 3600;

/// How a token is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grant {
    /// OAuth 2.0 client credentials, form-encoded.
    #[default]
    ClientCredentials,
    /// CXone's access key: the id and secret in a JSON body.
    AccessKey,
}

impl Grant {
    /// `client_credentials` or `access_key` (`CXONE_AUTH`, `--auth`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "client_credentials" => Some(Self::ClientCredentials),
            "access_key" => Some(Self::AccessKey),
            _ => None,
        }
    }
}

/// Token credentials: a client id and secret, or an access key id and secret (`grant`). `Debug`
/// redacts the secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    /// The client id, or the access key id.
    pub client_id: String,
    /// The client secret, or the access key secret.
    pub client_secret: SecretString,
    /// Client credentials only.
    pub scope: Option<String>,
    pub grant: Grant,
}

impl ClientCredentials {
    /// `POST token_url`: `grant_type=client_credentials` (client_secret_post), or CXone's access
    /// key as JSON.
    pub fn token_request(&self) -> HttpRequest {
        if self.grant == Grant::AccessKey {
            let mut req = HttpRequest::new(Method::Post, self.token_url.clone())
                .header("Content-Type", "application/json")
                .header("Accept", "application/json");
            let body = serde_json::json!({
                "accessKeyId": self.client_id,
                "accessKeySecret": self.client_secret.expose(),
            });
            req.body = Some(body.to_string());
            return req;
        }
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        if let Some(scope) = self.scope.as_deref().filter(|s| !s.is_empty()) {
            pairs.push(("scope", scope));
        }
        let mut req = HttpRequest::new(Method::Post, self.token_url.clone())
            .header("Content-Type", FORM)
            .header("Accept", "application/json");
        req.body = Some(form_body(&pairs));
        req
    }

    /// Reads the token endpoint's answer, given the time the request was answered.
    pub fn read_token_response(&self, resp: &HttpResponse, now: UnixMillis) -> Result<CachedToken, TokenError> {
        if !resp.is_success() {
            return Err(TokenError::Rejected {
                status: resp.status,
                error: resp.redirect_detail().or_else(|| oauth_error(&resp.body)),
            });
        }
        #[derive(Deserialize)]
        struct Body {
            access_token: String,
            #[serde(default)]
            token_type: Option<String>,
            #[serde(default)]
            expires_in: Option<serde_json::Value>,
        }
        let body: Body = serde_json::from_str(&resp.body).map_err(|e| TokenError::Malformed {
            reason: e.to_string(),
            body_len: resp.body.len(),
        })?;
        if let Some(kind) = body.token_type.as_deref() {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(TokenError::Malformed {
                    reason: format!("token_type {kind:?} is not Bearer"),
                    body_len: resp.body.len(),
                });
            }
        }
        // Some servers send expires_in as a string.
        let expires_in = match body.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .unwrap_or(DEFAULT_EXPIRES_IN_SECS);
        Ok(CachedToken::issued(
            SecretString::new(body.access_token),
            now,
            expires_in,
        ))
    }
}

/// The `error` member of an OAuth error body, when there is one (never the whole body: it may
/// echo credentials).
fn oauth_error(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
}

/// A token, the time it stops working, and the time to fetch the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedToken {
    #[serde(with = "exposed")]
    pub access_token: SecretString,
    pub expires_at: UnixMillis,
    /// When to fetch a new token. Tokens cached by earlier versions have none: they are
    /// refreshed [`REFRESH_MARGIN_MS`] before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_at: Option<UnixMillis>,
}

impl CachedToken {
    /// A token issued at `now` for `expires_in_secs`: refreshed [`REFRESH_MARGIN_MS`] before it
    /// expires, but never before half its lifetime, so a short-lived token (60 s or less) is
    /// still used rather than fetched again for every request.
    pub fn issued(access_token: SecretString, now: UnixMillis, expires_in_secs: u64) -> Self {
        let lifetime = expires_in_secs.saturating_mul(1000);
        let refresh_after = lifetime.saturating_sub(REFRESH_MARGIN_MS).max(lifetime / 2);
        Self {
            access_token,
            expires_at: now.saturating_add(lifetime),
            refresh_at: Some(now.saturating_add(refresh_after)),
        }
    }

    /// Usable without a refresh: before its refresh time (and its expiry).
    pub fn is_fresh(&self, now: UnixMillis) -> bool {
        let refresh_at = self
            .refresh_at
            .unwrap_or_else(|| self.expires_at.saturating_sub(REFRESH_MARGIN_MS));
        now < refresh_at.min(self.expires_at)
    }

    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.access_token.expose())
    }
}

/// Stored form of a cached token (KV only; never logged).
mod exposed {
    use crate::secret::SecretString;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::new)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint answered {status}{}", .error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Rejected { status: u16, error: Option<String> },
    #[error("token response unreadable: {reason} ({body_len} bytes)")]
    Malformed { reason: String, body_len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn creds() -> ClientCredentials {
        ClientCredentials {
            token_url: "http://idp/oauth/token".into(),
            client_id: "cid".into(),
            client_secret: SecretString::new("s3cr&t"),
            scope: Some("scim:read scim:write".into()),
            grant: Grant::ClientCredentials,
        }
    }

    fn access_key() -> ClientCredentials {
        ClientCredentials {
            token_url: "https://na1.nice-incontact.com/authentication/v1/token/access-key".into(),
            client_id: "AKID-1".into(),
            client_secret: SecretString::new("ak\"secret"),
            scope: Some("ignored".into()),
            grant: Grant::AccessKey,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_access_key_is_sent_as_json_and_its_answer_read_as_a_token() {
        let req = access_key().token_request();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.header_value("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"accessKeyId": "AKID-1", "accessKeySecret": "ak\"secret"})
        );
        assert!(!format!("{req:?}").contains("secret\""), "{req:?}");
        // The answer as NICE documents it (the refresh and id tokens are not kept).
        let answer = HttpResponse::new(
            200,
            r#"{"access_token":"eyJ.a.b","token_type":"bearer","expires_in":3600,"refresh_token":"r",
               "id_token":"i","resource_server_base_uri":"https://api-na1.niceincontact.com/"}"#,
        );
        let t = access_key().read_token_response(&answer, 1_000).unwrap();
        assert_eq!(
            (t.authorization().as_str(), t.expires_at),
            ("Bearer eyJ.a.b", 3_601_000)
        );
        let refused = HttpResponse::new(401, r#"{"error":"invalid_client"}"#);
        assert!(access_key().read_token_response(&refused, 0).is_err());
        assert_eq!(Grant::parse("access_key"), Some(Grant::AccessKey));
        assert_eq!(Grant::parse(" client_credentials "), Some(Grant::ClientCredentials));
        assert_eq!(Grant::parse("password"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn builds_a_form_request_and_hides_the_secret_in_debug() {
        let req = creds().token_request();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.header_value("content-type"), Some(FORM));
        assert_eq!(
            req.body.as_deref(),
            Some("grant_type=client_credentials&client_id=cid&client_secret=s3cr%26t&scope=scim%3Aread%20scim%3Awrite")
        );
        assert!(!format!("{:?}", creds()).contains("s3cr"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_pending_token_request_does_not_show_the_secret() {
        let req = creds().token_request();
        let text = format!("{req:?}");
        assert!(!text.contains("s3cr") && !text.contains("client_secret"), "{text}");
        assert!(
            text.contains("http://idp/oauth/token") && text.contains("bytes]"),
            "{text}"
        );
        let pending = crate::flows::Step::<()>::Send(req);
        assert!(!format!("{pending:?}").contains("s3cr"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refreshes_sixty_seconds_early() {
        let resp = HttpResponse::new(200, r#"{"access_token":"tok","token_type":"Bearer","expires_in":120}"#);
        let t = creds().read_token_response(&resp, 1_000_000).unwrap();
        assert_eq!(t.expires_at, 1_120_000);
        assert!(t.is_fresh(1_000_000));
        assert!(t.is_fresh(1_059_999));
        assert!(!t.is_fresh(1_060_000));
        assert_eq!(t.authorization(), "Bearer tok");
        let stored = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<CachedToken>(&stored).unwrap(), t);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn string_expiry_default_expiry_and_errors() {
        let c = creds();
        let t = c
            .read_token_response(&HttpResponse::new(200, r#"{"access_token":"a","expires_in":"30"}"#), 0)
            .unwrap();
        assert_eq!(t.expires_at, 30_000);
        let t = c
            .read_token_response(&HttpResponse::new(200, r#"{"access_token":"a"}"#), 0)
            .unwrap();
        assert_eq!(t.expires_at, 3_600_000);
        let e = c
            .read_token_response(&HttpResponse::new(401, r#"{"error":"invalid_client"}"#), 0)
            .unwrap_err();
        assert_eq!(
            e,
            TokenError::Rejected {
                status: 401,
                error: Some("invalid_client".into())
            }
        );
        let moved = HttpResponse::new(302, "").with_header("Location", "https://sso.example/login");
        assert_eq!(
            c.read_token_response(&moved, 0).unwrap_err().to_string(),
            "token endpoint answered 302 (redirected to https://sso.example/login; redirects are not followed)"
        );
        assert!(matches!(
            c.read_token_response(&HttpResponse::new(200, "<html>"), 0),
            Err(TokenError::Malformed { .. })
        ));
        assert!(matches!(
            c.read_token_response(&HttpResponse::new(200, r#"{"access_token":"a","token_type":"mac"}"#), 0),
            Err(TokenError::Malformed { .. })
        ));
    }

    fn issued_at(now: UnixMillis, expires_in: &str) -> CachedToken {
        let body = format!(r#"{{"access_token":"a","expires_in":{expires_in}}}"#);
        creds().read_token_response(&HttpResponse::new(200, body), now).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn short_lived_tokens_are_used_for_half_their_lifetime() {
        for (expires_in, fresh_for_ms) in [
            ("30", 15_000),
            ("\"30\"", 15_000),
            ("60", 30_000),
            ("61", 30_500),
            ("119", 59_500),
            ("120", 60_000),
            ("121", 61_000),
            ("3600", 3_540_000),
            ("1", 500),
        ] {
            let t = issued_at(1_000_000, expires_in);
            assert!(t.is_fresh(1_000_000), "expires_in {expires_in}");
            assert!(t.is_fresh(1_000_000 + fresh_for_ms - 1), "expires_in {expires_in}");
            assert!(!t.is_fresh(1_000_000 + fresh_for_ms), "expires_in {expires_in}");
        }
        // A token that expires as it is issued is never fresh (the flow still uses it once).
        assert!(!issued_at(1_000_000, "0").is_fresh(1_000_000));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn huge_lifetimes_saturate() {
        for expires_in in ["18446744073709551615", "\"18446744073709551615\"", "18446744073709551"] {
            let t = issued_at(u64::MAX - 5, expires_in);
            assert_eq!(t.expires_at, u64::MAX, "{expires_in}");
            assert!(t.is_fresh(u64::MAX - 5));
            assert!(!t.is_fresh(u64::MAX));
        }
        let t = issued_at(1_000, "18446744073709551615");
        assert_eq!(t.expires_at, u64::MAX);
        assert_eq!(t.refresh_at, Some(u64::MAX - 59_000));
        assert!(t.is_fresh(1_000_000_000_000_000));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn tokens_cached_by_earlier_versions_still_read() {
        let old: CachedToken = serde_json::from_str(r#"{"accessToken":"tok","expiresAt":120000}"#).unwrap();
        assert_eq!(old.refresh_at, None);
        assert!(old.is_fresh(59_999));
        assert!(!old.is_fresh(60_000), "refreshed the margin before expiry");
        let short: CachedToken = serde_json::from_str(r#"{"accessToken":"tok","expiresAt":30000}"#).unwrap();
        assert!(!short.is_fresh(0));
        // What is stored now round-trips, and an earlier version reading it ignores the new field.
        let t = issued_at(0, "30");
        let stored = serde_json::to_string(&t).unwrap();
        assert_eq!(stored, r#"{"accessToken":"a","expiresAt":30000,"refreshAt":15000}"#);
        assert_eq!(serde_json::from_str::<CachedToken>(&stored).unwrap(), t);
    }
}
