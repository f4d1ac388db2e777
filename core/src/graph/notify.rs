//! Change notifications Graph POSTs to the notificationUrl of a subscription:
//! `{"value":[{subscriptionId, clientState, changeType, resource, resourceData?,
//! subscriptionExpirationDateTime, tenantId, lifecycleEvent?}]}`.
//!
//! Graph signs nothing: the clientState given when the subscription was created is the only
//! proof that a notification comes from it. Every item's clientState is compared in constant
//! time, and a batch with one wrong or missing is refused whole. What is read back is only what
//! changed (users or groups, by id when Graph says) and lifecycle events, so the host can run a
//! pass or renew; the notification is a hint, never data to apply.
//!
//! Before a subscription exists Graph checks the notificationUrl by POSTing to it with a
//! `validationToken` query parameter, to be answered 200 `text/plain` with the decoded token
//! within 10 s ([`validation_token`]).

use super::subscribe::Watched;
use crate::api_error::ApiError;
use crate::secret::SecretString;
use crate::time::parse_rfc3339;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The longest validation token echoed back.
pub const MAX_VALIDATION_TOKEN: usize = 4096;

/// Body bytes kept in a [`NotifyError::Malformed`].
const BODY_PREFIX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// An item's clientState is missing or is not ours: the batch is not from our subscriptions.
    #[error("change notification refused: clientState missing or wrong")]
    ClientState,
    /// No clientState is configured, so nothing can be checked.
    #[error("change notification refused: no clientState is configured")]
    NotConfigured,
    /// Not a change notification collection. Only the position, the kind of fault and the
    /// first bytes of the body (up to any `clientState`) are kept: serde's own message can
    /// quote the body.
    #[error("change notification unreadable ({kind} error at line {line}, column {column}), body starts {prefix:?}")]
    Malformed {
        kind: &'static str,
        line: usize,
        column: usize,
        prefix: String,
    },
}

/// What Graph said changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceChange {
    pub subscription_id: String,
    /// `users` or `groups`; `None` for a resource this sync does not watch (kept in
    /// `resource`), such as a user's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched: Option<Watched>,
    /// The object that changed, when Graph said (`resourceData.id`, else from `resource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `created`, `updated` or `deleted`, as Graph sent it.
    pub change_type: String,
    pub resource: String,
}

/// A lifecycle event about a subscription rather than a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubscriptionEvent {
    /// Renew the subscription (its access is about to lapse).
    ReauthorizationRequired,
    /// The subscription is gone: create it again, and run a pass for what it missed.
    SubscriptionRemoved,
    /// Notifications were lost: run a pass.
    Missed,
    /// An event this version does not know, by name.
    Other(String),
}

impl SubscriptionEvent {
    fn from_name(name: &str) -> Self {
        match name {
            "reauthorizationRequired" => Self::ReauthorizationRequired,
            "subscriptionRemoved" => Self::SubscriptionRemoved,
            "missed" => Self::Missed,
            other => Self::Other(other.chars().take(64).collect()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub subscription_id: String,
    pub event: SubscriptionEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_expires_at: Option<UnixMillis>,
}

/// An accepted batch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    pub changes: Vec<ResourceChange>,
    pub lifecycle: Vec<Lifecycle>,
}

impl Notifications {
    /// Whether a watched user or group changed.
    pub fn touches(&self, watched: Watched) -> bool {
        self.changes.iter().any(|c| c.watched == Some(watched))
    }

    /// Whether any item asks for a pass (a watched change, notifications missed, or a removed
    /// subscription that missed what followed).
    pub fn wants_pass(&self) -> bool {
        self.changes.iter().any(|c| c.watched.is_some())
            || self.lifecycle.iter().any(|l| {
                matches!(
                    l.event,
                    SubscriptionEvent::Missed | SubscriptionEvent::SubscriptionRemoved
                )
            })
    }

    /// Whether any item asks for the subscriptions to be renewed or created again.
    pub fn wants_renewal(&self) -> bool {
        self.lifecycle.iter().any(|l| {
            matches!(
                l.event,
                SubscriptionEvent::ReauthorizationRequired | SubscriptionEvent::SubscriptionRemoved
            )
        })
    }
}

#[derive(Deserialize)]
struct Collection {
    value: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(default)]
    subscription_id: Option<String>,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    change_type: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_data: Option<ResourceData>,
    #[serde(default)]
    subscription_expiration_date_time: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<String>,
}

#[derive(Deserialize)]
struct ResourceData {
    #[serde(default)]
    id: Option<String>,
}

fn malformed(err: &serde_json::Error, body: &[u8]) -> NotifyError {
    use serde_json::error::Category;
    let kind = match err.classify() {
        Category::Io => "io",
        Category::Syntax => "syntax",
        Category::Data => "shape",
        Category::Eof => "end of input",
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_PREFIX)]);
    // Not even the start of a clientState.
    let text = match text.to_ascii_lowercase().find("clientstate") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    let prefix = text
        .chars()
        .filter(|c| *c != char::REPLACEMENT_CHARACTER)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    NotifyError::Malformed {
        kind,
        line: err.line(),
        column: err.column(),
        prefix,
    }
}

/// `users/{id}`, `Users/{id}`, `groups/{id}` (or the bare collection): which and the id.
/// Anything deeper (`users/{id}/messages/...`) is not a user or group change.
fn parse_resource(resource: &str) -> (Option<Watched>, Option<&str>) {
    let mut parts = resource.trim_matches('/').split('/');
    let head = parts.next().unwrap_or_default();
    let id = parts.next().filter(|s| !s.is_empty());
    if parts.next().is_some() {
        return (None, None);
    }
    let watched = if head.eq_ignore_ascii_case("users") {
        Some(Watched::Users)
    } else if head.eq_ignore_ascii_case("groups") {
        Some(Watched::Groups)
    } else {
        None
    };
    (watched, watched.and(id))
}

/// Reads a change notification collection, accepting it only when every item carries
/// `client_state`.
pub fn read_notifications(body: &[u8], client_state: &SecretString) -> Result<Notifications, NotifyError> {
    if client_state.is_empty() {
        return Err(NotifyError::NotConfigured);
    }
    let collection: Collection = serde_json::from_slice(body).map_err(|e| malformed(&e, body))?;
    // Digests, so the comparison takes as long whatever the lengths; every item is compared.
    let expected = Sha256::digest(client_state.expose().as_bytes());
    let wrong = collection.value.iter().fold(0u8, |wrong, item| {
        let ok = match &item.client_state {
            Some(given) => Sha256::digest(given.as_bytes()).ct_eq(&expected).unwrap_u8(),
            None => 0,
        };
        wrong | (1 ^ ok)
    });
    if wrong != 0 {
        return Err(NotifyError::ClientState);
    }
    let mut out = Notifications::default();
    for item in collection.value {
        let subscription_id = item.subscription_id.unwrap_or_default();
        if let Some(event) = item.lifecycle_event {
            out.lifecycle.push(Lifecycle {
                subscription_id,
                event: SubscriptionEvent::from_name(&event),
                subscription_expires_at: item
                    .subscription_expiration_date_time
                    .as_deref()
                    .and_then(|t| parse_rfc3339(t).ok()),
            });
            continue;
        }
        let resource = item.resource.unwrap_or_default();
        let (watched, path_id) = parse_resource(&resource);
        let id = match watched {
            Some(_) => item
                .resource_data
                .and_then(|d| d.id)
                .filter(|id| !id.is_empty())
                .or_else(|| path_id.map(str::to_string)),
            None => None,
        };
        out.changes.push(ResourceChange {
            subscription_id,
            watched,
            id,
            change_type: item.change_type.unwrap_or_default(),
            resource,
        });
    }
    Ok(out)
}

/// The token to answer Graph's validation request with (the host URL-decodes the query
/// value; the answer is 200 `text/plain` with exactly this). `None` for an empty, oversized or
/// control-character token, which Graph does not send.
pub fn validation_token(query_value: &str) -> Option<String> {
    let ok = !query_value.is_empty()
        && query_value.len() <= MAX_VALIDATION_TOKEN
        && !query_value.chars().any(char::is_control);
    ok.then(|| query_value.to_string())
}

/// The headers of the answer to Graph's validation request: the echoed token is plain text,
/// never sniffed into anything a browser would run, and never cached.
pub const VALIDATION_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
];

/// What a `POST` to the notification URL asks for, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationPost {
    /// Graph's validation handshake: answer 200 with this text and [`VALIDATION_HEADERS`].
    Validation(String),
    /// A batch of notifications, for [`read_notifications`].
    Batch,
}

/// The answer while Graph sync is not configured: the endpoint does not exist.
pub fn sync_off() -> ApiError {
    ApiError::not_found("Graph sync is not configured: no change notifications are taken")
}

/// Sorts a `POST` to the notification URL, given whether Graph sync is configured and the
/// decoded `validationToken` query parameter, if any. Without Graph sync nothing is answered,
/// not even the handshake (404); an unusable token is a 400.
pub fn notification_post(sync_configured: bool, validation: Option<&str>) -> Result<NotificationPost, ApiError> {
    if !sync_configured {
        return Err(sync_off());
    }
    match validation {
        None => Ok(NotificationPost::Batch),
        Some(raw) => validation_token(raw)
            .map(NotificationPost::Validation)
            .ok_or_else(|| ApiError::bad_request("invalidValue", "validationToken is not usable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Microsoft's documented change notification (a message resource, clientState
    /// `secretClientValue`).
    const SAMPLE: &str = include_str!("../../tests/fixtures/graph_change_notification.json");

    fn secret() -> SecretString {
        SecretString::new("secretClientValue")
    }

    fn sample() -> Value {
        serde_json::from_str(SAMPLE).unwrap()
    }

    /// The sample's item turned into a user (or group) change, as Graph's webhook page shows
    /// for other resources: `Users/{id}` with `resourceData.id`.
    fn directory_item(kind: &str, id: &str, change: &str) -> Value {
        let mut item = sample()["value"][0].clone();
        item["changeType"] = json!(change);
        item["resource"] = json!(format!("{kind}/{id}"));
        item["resourceData"] = json!({
            "@odata.type": format!("#Microsoft.Graph.{}", if kind == "Users" { "User" } else { "Group" }),
            "@odata.id": format!("{kind}/{id}"),
            "id": id,
        });
        item.as_object_mut().unwrap().remove("id");
        item
    }

    fn batch(items: Vec<Value>) -> Vec<u8> {
        json!({ "value": items }).to_string().into_bytes()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_documented_sample_is_accepted_as_a_change_not_watched() {
        let n = read_notifications(SAMPLE.as_bytes(), &secret()).unwrap();
        assert!(n.lifecycle.is_empty());
        assert_eq!(
            n.changes,
            [ResourceChange {
                subscription_id: "{subscription_guid}".into(),
                watched: None,
                id: None,
                change_type: "created".into(),
                resource: "users/{user_guid}@{tenant_guid}/messages/{long_id_string}".into(),
            }]
        );
        assert!(!n.wants_pass());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn user_and_group_changes_are_read_with_their_ids() {
        let body = batch(vec![
            directory_item("Users", "8ffff70c-1c63-4860-b963-e34ec660931d", "updated"),
            directory_item("Groups", "g-1", "deleted"),
        ]);
        let n = read_notifications(&body, &secret()).unwrap();
        assert_eq!(n.changes.len(), 2);
        assert_eq!(n.changes[0].watched, Some(Watched::Users));
        assert_eq!(n.changes[0].id.as_deref(), Some("8ffff70c-1c63-4860-b963-e34ec660931d"));
        assert_eq!(n.changes[1].watched, Some(Watched::Groups));
        assert_eq!(n.changes[1].change_type, "deleted");
        assert!(n.touches(Watched::Users) && n.touches(Watched::Groups));
        assert!(n.wants_pass() && !n.wants_renewal());
        // Without resourceData the id comes from the resource path.
        let mut item = directory_item("users", "u-2", "updated");
        item.as_object_mut().unwrap().remove("resourceData");
        let n = read_notifications(&batch(vec![item]), &secret()).unwrap();
        assert_eq!(n.changes[0].id.as_deref(), Some("u-2"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_wrong_or_missing_client_state_refuses_the_batch() {
        let mut wrong = sample();
        wrong["value"][0]["clientState"] = json!("secretClientValuf");
        let err = read_notifications(wrong.to_string().as_bytes(), &secret()).unwrap_err();
        assert_eq!(err, NotifyError::ClientState);
        assert!(!err.to_string().contains("secretClientValue"), "{err}");
        let mut missing = sample();
        missing["value"][0].as_object_mut().unwrap().remove("clientState");
        assert_eq!(
            read_notifications(missing.to_string().as_bytes(), &secret()),
            Err(NotifyError::ClientState)
        );
        assert_eq!(
            read_notifications(SAMPLE.as_bytes(), &SecretString::new("")),
            Err(NotifyError::NotConfigured)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn one_bad_item_refuses_a_mixed_batch() {
        let good = directory_item("Users", "u-1", "updated");
        let mut bad = directory_item("Users", "u-2", "updated");
        bad["clientState"] = json!("guessed");
        for items in [vec![good.clone(), bad.clone()], vec![bad, good]] {
            assert_eq!(
                read_notifications(&batch(items), &secret()),
                Err(NotifyError::ClientState)
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lifecycle_events_are_read() {
        let lifecycle = |event: &str| {
            let mut item = sample()["value"][0].clone();
            let obj = item.as_object_mut().unwrap();
            for key in ["id", "changeType", "resourceData"] {
                obj.remove(key);
            }
            obj.insert("lifecycleEvent".into(), json!(event));
            obj.insert("resource".into(), json!("users"));
            item
        };
        let body = batch(vec![
            lifecycle("reauthorizationRequired"),
            lifecycle("subscriptionRemoved"),
            lifecycle("missed"),
            lifecycle("somethingNew"),
        ]);
        let n = read_notifications(&body, &secret()).unwrap();
        assert!(n.changes.is_empty());
        let events: Vec<_> = n.lifecycle.iter().map(|l| l.event.clone()).collect();
        assert_eq!(
            events,
            [
                SubscriptionEvent::ReauthorizationRequired,
                SubscriptionEvent::SubscriptionRemoved,
                SubscriptionEvent::Missed,
                SubscriptionEvent::Other("somethingNew".into()),
            ]
        );
        assert_eq!(n.lifecycle[0].subscription_id, "{subscription_guid}");
        assert_eq!(n.lifecycle[0].subscription_expires_at, Some(1_458_425_469_952));
        assert!(n.wants_renewal() && n.wants_pass());
        let only_reauth = read_notifications(&batch(vec![lifecycle("reauthorizationRequired")]), &secret()).unwrap();
        assert!(only_reauth.wants_renewal() && !only_reauth.wants_pass());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_bodies_keep_only_a_short_prefix() {
        let body = br#"{"value":[{"clientState":"secretClientValue","subscriptionId":7}]}"#;
        let err = read_notifications(body, &secret()).unwrap_err();
        let NotifyError::Malformed { kind, prefix, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*kind, "shape");
        assert_eq!(prefix, r#"{"value":[{""#, "cut before the clientState");
        let text = err.to_string();
        assert!(!text.contains("secretClientValue"), "{text}");
        assert!(!text.contains("invalid type"), "{text}");
        let err = read_notifications(b"not json\n\x01\x02 at all", &secret()).unwrap_err();
        assert!(
            matches!(&err, NotifyError::Malformed { kind: "syntax", line: 1, prefix, .. } if prefix == "not json    at all"),
            "{err:?}"
        );
        assert!(matches!(
            read_notifications(br#"{"values":[]}"#, &secret()),
            Err(NotifyError::Malformed { kind: "shape", .. })
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn validation_tokens_are_echoed_within_limits() {
        let token = "Validation: Testing client application reachability for subscription Request-Id: 3b3f9821-ce3f-23d9-879b-00a23f3 ";
        assert_eq!(validation_token(token).as_deref(), Some(token));
        assert_eq!(validation_token(""), None);
        assert_eq!(validation_token("a\r\nSet-Cookie: x"), None);
        assert_eq!(
            validation_token(&"x".repeat(MAX_VALIDATION_TOKEN)).map(|t| t.len()),
            Some(4096)
        );
        assert_eq!(validation_token(&"x".repeat(MAX_VALIDATION_TOKEN + 1)), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn nothing_is_echoed_while_graph_sync_is_off() {
        for validation in [Some("<script>alert(1)</script>"), Some(""), None] {
            let e = notification_post(false, validation).unwrap_err();
            assert_eq!((e.status, e.scim_type.as_deref()), (404, None), "{validation:?}");
        }
        assert_eq!(
            notification_post(true, Some("token 1")),
            Ok(NotificationPost::Validation("token 1".into()))
        );
        assert_eq!(notification_post(true, None), Ok(NotificationPost::Batch));
        let e = notification_post(true, Some("a\r\nb")).unwrap_err();
        assert_eq!((e.status, e.scim_type.as_deref()), (400, Some("invalidValue")));
        assert!(VALIDATION_HEADERS.contains(&("X-Content-Type-Options", "nosniff")));
        assert!(VALIDATION_HEADERS
            .iter()
            .any(|(name, value)| *name == "Content-Type" && value.starts_with("text/plain")));
    }
}
