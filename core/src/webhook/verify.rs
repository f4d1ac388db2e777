use super::secret::{WebhookSecret, WebhookSecrets};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far `webhook-timestamp` may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;
const MAX_ID_LEN: usize = 256;

/// The three headers, as received (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A delivery whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    pub id: String,
    /// Seconds since the Unix epoch, as signed by the sender.
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("webhook-id must be 1 to 256 printable ASCII characters")]
    InvalidId,
    #[error("webhook-timestamp is not an integer number of seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is {0} s in the past (tolerance {TOLERANCE_SECS} s)")]
    TooOld(i64),
    #[error("webhook-timestamp is {0} s in the future (tolerance {TOLERANCE_SECS} s)")]
    TooNew(i64),
    #[error("no valid v1 signature")]
    NoMatchingSignature,
}

fn mac(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps core panic-free.
    let mut m = HmacSha256::new_from_slice(secret.key()).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` value for a delivery: `v1,<base64>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(secret, id, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a delivery against every accepted secret. `now_secs` is the host's clock.
///
/// Signatures of other versions are ignored; an empty, undecodable or wrong-length `v1`
/// signature never matches, and the comparison runs in constant time.
pub fn verify(
    secrets: &WebhookSecrets,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    now_secs: i64,
) -> Result<VerifiedWebhook, WebhookError> {
    let id = headers.id.ok_or(WebhookError::MissingHeader("webhook-id"))?;
    let ts = headers
        .timestamp
        .ok_or(WebhookError::MissingHeader("webhook-timestamp"))?;
    let sigs = headers
        .signature
        .ok_or(WebhookError::MissingHeader("webhook-signature"))?;
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookError::InvalidId);
    }
    let timestamp: i64 = ts.trim().parse().map_err(|_| WebhookError::InvalidTimestamp)?;
    let skew = now_secs.saturating_sub(timestamp);
    if skew > TOLERANCE_SECS {
        return Err(WebhookError::TooOld(skew));
    }
    if skew < -TOLERANCE_SECS {
        return Err(WebhookError::TooNew(-skew));
    }
    let candidates: Vec<Vec<u8>> = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .filter(|raw| !raw.is_empty())
        .collect();
    for secret in secrets.iter() {
        let expected = mac(secret, id, timestamp, body);
        for candidate in &candidates {
            // `verify_slice` is constant-time and refuses a wrong length.
            if expected.clone().verify_slice(candidate).is_ok() {
                return Ok(VerifiedWebhook {
                    id: id.to_string(),
                    timestamp,
                });
            }
        }
    }
    Err(WebhookError::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// The Standard Webhooks specification's published test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secrets() -> WebhookSecrets {
        WebhookSecrets::parse_list(SPEC_SECRET).unwrap()
    }

    fn headers(sig: &str) -> SignatureHeaders<'_> {
        SignatureHeaders {
            id: Some(SPEC_ID),
            timestamp: Some("1614265330"),
            signature: Some(sig),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn signs_the_spec_vector() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(sign(&secret, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        assert_eq!(secret.encode(), SPEC_SECRET);
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn verifies_the_spec_vector_within_tolerance() {
        let ok = verify(&secrets(), headers(SPEC_SIG), SPEC_BODY, SPEC_TS + 299).unwrap();
        assert_eq!(
            ok,
            VerifiedWebhook {
                id: SPEC_ID.into(),
                timestamp: SPEC_TS
            }
        );
        // Among several signatures, other versions ignored.
        let list = format!("v2,abc v1,bm90IGl0 {SPEC_SIG}");
        assert!(verify(&secrets(), headers(&list), SPEC_BODY, SPEC_TS).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_forged_empty_short_and_tampered() {
        let s = secrets();
        for bad in [
            "v1,",
            "v1",
            "",
            "v1,AAAA",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            assert_eq!(
                verify(&s, headers(bad), SPEC_BODY, SPEC_TS),
                Err(WebhookError::NoMatchingSignature),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(&s, headers(SPEC_SIG), br#"{"test": 2432232315}"#, SPEC_TS),
            Err(WebhookError::NoMatchingSignature)
        );
        let other = WebhookSecrets::parse_list("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(
            verify(&other, headers(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(WebhookError::NoMatchingSignature)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_stale_future_and_missing() {
        let s = secrets();
        assert_eq!(
            verify(&s, headers(SPEC_SIG), SPEC_BODY, SPEC_TS + 301),
            Err(WebhookError::TooOld(301))
        );
        assert_eq!(
            verify(&s, headers(SPEC_SIG), SPEC_BODY, SPEC_TS - 301),
            Err(WebhookError::TooNew(301))
        );
        let mut h = headers(SPEC_SIG);
        h.id = None;
        assert_eq!(
            verify(&s, h, SPEC_BODY, SPEC_TS),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        let mut h = headers(SPEC_SIG);
        h.timestamp = Some("soon");
        assert_eq!(verify(&s, h, SPEC_BODY, SPEC_TS), Err(WebhookError::InvalidTimestamp));
        let mut h = headers(SPEC_SIG);
        h.id = Some("has space");
        assert_eq!(verify(&s, h, SPEC_BODY, SPEC_TS), Err(WebhookError::InvalidId));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rotation_accepts_old_and_new() {
        let new = WebhookSecret::from_bytes(vec![7; 32]);
        let both = WebhookSecrets::parse_list(&format!("{}, {SPEC_SECRET}", new.encode())).unwrap();
        assert!(verify(&both, headers(SPEC_SIG), SPEC_BODY, SPEC_TS).is_ok());
        let sig = sign(&new, SPEC_ID, SPEC_TS, SPEC_BODY);
        assert!(verify(&both, headers(&sig), SPEC_BODY, SPEC_TS).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn secret_list_errors_say_which() {
        use super::super::SecretError;
        assert_eq!(WebhookSecrets::parse_list(" , "), Err(SecretError::None));
        assert_eq!(
            WebhookSecrets::parse_list(&format!("{SPEC_SECRET} abc")),
            Err(SecretError::MissingPrefix { index: 2 })
        );
        assert_eq!(
            WebhookSecrets::parse_list("whsec_!!"),
            Err(SecretError::NotBase64 { index: 1 })
        );
        assert_eq!(
            WebhookSecrets::parse_list("whsec_AAAA"),
            Err(SecretError::TooShort { index: 1 })
        );
    }
}
