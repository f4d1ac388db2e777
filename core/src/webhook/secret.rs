use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

const PREFIX: &str = "whsec_";

/// A signing key, decoded from `whsec_<base64>`. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret #{index} does not start with \"whsec_\"")]
    MissingPrefix { index: usize },
    #[error("webhook secret #{index} is not valid base64 after \"whsec_\"")]
    NotBase64 { index: usize },
    #[error("webhook secret #{index} is shorter than 16 bytes")]
    TooShort { index: usize },
    #[error("no webhook secret is configured")]
    None,
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        Self::parse_at(text, 1)
    }

    fn parse_at(text: &str, index: usize) -> Result<Self, SecretError> {
        let b64 = text.strip_prefix(PREFIX).ok_or(SecretError::MissingPrefix { index })?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64 { index })?;
        if key.len() < 16 {
            return Err(SecretError::TooShort { index });
        }
        Ok(Self(key))
    }

    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// The `whsec_...` form, for handing a generated secret to a sender.
    pub fn encode(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every secret currently accepted (old and new during a rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

impl WebhookSecrets {
    /// Parses a comma- or space-separated list; at least one secret is required.
    pub fn parse_list(raw: &str) -> Result<Self, SecretError> {
        let secrets = crate::secret::split_list(raw)
            .enumerate()
            .map(|(i, s)| WebhookSecret::parse_at(s, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(SecretError::None);
        }
        Ok(Self(secrets))
    }

    pub fn iter(&self) -> impl Iterator<Item = &WebhookSecret> {
        self.0.iter()
    }
}

impl From<WebhookSecret> for WebhookSecrets {
    fn from(s: WebhookSecret) -> Self {
        Self(vec![s])
    }
}
