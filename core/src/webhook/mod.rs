//! Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (space-separated
//! list), with `whsec_<base64>` secrets, several at once during rotation.

mod secret;
mod verify;

pub use secret::{SecretError, WebhookSecret, WebhookSecrets};
pub use verify::{sign, verify, SignatureHeaders, VerifiedWebhook, WebhookError, TOLERANCE_SECS};
