//! Keeping the change-notification subscriptions for users and groups alive.
//!
//! Graph allows these two resources at most 41,760 minutes (29 days) per subscription. A
//! subscription is created for 29 days less an hour (room for clock skew), renewed with
//! `PATCH /subscriptions/{id}` once fewer than 3 days are left, and created again when Graph no
//! longer knows it (404 to the renewal) or it has already lapsed. The flow makes only the
//! requests needed (none while both are fresh) and ends with the set for the host to store.
//!
//! Graph checks the notificationUrl (the validation handshake, answered within 10 s) while the
//! create request waits, so that request takes longer than most: the host should give it a
//! timeout of more than 10 s ([`HttpRequest`] carries no timeout of its own).

use super::wire::{graph_error, rejected};
use crate::flows::exchange::Exchange;
use crate::flows::{Flow, FlowError, Step};
use crate::http::{encode_component, HttpRequest, HttpResponse, Method, TransportError};
use crate::retry::RetryPolicy;
use crate::secret::SecretString;
use crate::time::{iso8601, parse_rfc3339};
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Graph's longest subscription to users or groups, in minutes.
pub const MAX_LIFETIME_MINUTES: u64 = 41_760;
/// How long a subscription is asked for: 29 days less an hour.
pub const LIFETIME_MS: u64 = 29 * DAY_MS - HOUR_MS;
// Graph refuses an expiry past its maximum.
const _: () = assert!(LIFETIME_MS < MAX_LIFETIME_MINUTES * 60_000);
/// Renewed once fewer than this is left.
pub const RENEW_WITHIN_MS: u64 = 3 * DAY_MS;
/// The change types subscribed to.
pub const CHANGE_TYPE: &str = "updated,deleted";

/// The directory resources watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Watched {
    Users,
    Groups,
}

impl Watched {
    pub const BOTH: [Watched; 2] = [Watched::Users, Watched::Groups];

    /// The subscription's `resource`.
    pub fn as_str(self) -> &'static str {
        match self {
            Watched::Users => "users",
            Watched::Groups => "groups",
        }
    }
}

/// A subscription as the host stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub resource: Watched,
    pub expires_at: UnixMillis,
}

/// What one subscription needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    Create(Watched),
    Renew { id: String, resource: Watched },
}

impl Task {
    fn resource(&self) -> Watched {
        match self {
            Task::Create(r) | Task::Renew { resource: r, .. } => *r,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Task::Create(_) => "creating",
            Task::Renew { .. } => "renewing",
        }
    }
}

/// The task whose request is in flight, and the expiry it asked for.
#[derive(Debug, Clone)]
struct InFlight {
    task: Task,
    expires_at: UnixMillis,
}

/// The part of Graph's subscription answer read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    expiration_date_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody<'a> {
    change_type: &'a str,
    notification_url: &'a str,
    lifecycle_notification_url: &'a str,
    resource: &'a str,
    expiration_date_time: String,
    client_state: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenewBody {
    expiration_date_time: String,
}

/// Creates and renews the users and groups subscriptions.
#[derive(Clone)]
pub struct SubscriptionFlow {
    base_url: String,
    notification_url: String,
    client_state: SecretString,
    tasks: VecDeque<Task>,
    in_flight: Option<InFlight>,
    /// The subscriptions as they stand: fresh ones, and those created or renewed so far.
    current: Vec<Subscription>,
    exchange: Exchange,
    outcome: Option<Result<Vec<Subscription>, FlowError>>,
}

impl fmt::Debug for SubscriptionFlow {
    /// The request in flight is left out: a create carries the clientState.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionFlow")
            .field("base_url", &self.base_url)
            .field("notification_url", &self.notification_url)
            .field("client_state", &self.client_state)
            .field("tasks", &self.tasks)
            .field("in_flight", &self.in_flight.as_ref().map(|i| &i.task))
            .field("current", &self.current)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl SubscriptionFlow {
    /// `known`: the subscriptions stored after the last run (any number, any resource); `now`
    /// decides which are fresh. The notificationUrl also receives lifecycle notifications.
    pub fn new(
        base_url: &str,
        notification_url: &str,
        client_state: SecretString,
        known: Vec<Subscription>,
        now: UnixMillis,
        retry: RetryPolicy,
        seed: u64,
    ) -> Self {
        let mut tasks = VecDeque::new();
        let mut current = Vec::new();
        for resource in Watched::BOTH {
            // The latest-lasting one of a resource is kept; others lapse on their own.
            let latest = known
                .iter()
                .filter(|s| s.resource == resource)
                .max_by_key(|s| s.expires_at);
            match latest {
                None => tasks.push_back(Task::Create(resource)),
                Some(s) if s.expires_at <= now => tasks.push_back(Task::Create(resource)),
                Some(s) if s.expires_at - now < RENEW_WITHIN_MS => tasks.push_back(Task::Renew {
                    id: s.id.clone(),
                    resource,
                }),
                Some(s) => current.push(s.clone()),
            }
        }
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            notification_url: notification_url.to_string(),
            client_state,
            tasks,
            in_flight: None,
            current,
            exchange: Exchange::new(retry, seed),
            outcome: None,
        }
    }

    /// The subscriptions as they stand, also after a failure: what was created or renewed
    /// before it is worth storing.
    pub fn current(&self) -> Vec<Subscription> {
        let mut out = self.current.clone();
        out.sort_by_key(|s| s.resource);
        out
    }

    fn request(&self, task: &Task, expires_at: UnixMillis) -> HttpRequest {
        let (method, url, body) = match task {
            Task::Create(resource) => (
                Method::Post,
                format!("{}/subscriptions", self.base_url),
                serde_json::to_string(&CreateBody {
                    change_type: CHANGE_TYPE,
                    notification_url: &self.notification_url,
                    lifecycle_notification_url: &self.notification_url,
                    resource: resource.as_str(),
                    expiration_date_time: iso8601(expires_at),
                    client_state: self.client_state.expose(),
                }),
            ),
            Task::Renew { id, .. } => (
                Method::Patch,
                format!("{}/subscriptions/{}", self.base_url, encode_component(id)),
                serde_json::to_string(&RenewBody {
                    expiration_date_time: iso8601(expires_at),
                }),
            ),
        };
        let mut req = HttpRequest::new(method, url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        // Serialising these bodies cannot fail (string fields only).
        req.body = body.ok();
        req
    }

    /// Takes the answer to the request in flight.
    fn settle(&mut self, flight: InFlight, resp: &HttpResponse) -> Result<(), FlowError> {
        let resource = flight.task.resource();
        let what = flight.task.verb();
        let named = |err: FlowError| name_resource(err, what, resource);
        match (&flight.task, resp.status) {
            (_, 200 | 201) => {
                let answer: Answer = serde_json::from_str(&resp.body).map_err(|e| {
                    named(FlowError::unreadable(
                        self.exchange.describe(),
                        resp.status,
                        e,
                        &resp.body,
                    ))
                })?;
                let id = match (&flight.task, answer.id) {
                    (_, Some(id)) if !id.is_empty() => id,
                    (Task::Renew { id, .. }, _) => id.clone(),
                    (Task::Create(_), _) => {
                        return Err(named(FlowError::unreadable(
                            self.exchange.describe(),
                            resp.status,
                            "a subscription without an id",
                            &resp.body,
                        )))
                    }
                };
                // Graph's expiry when it gives a readable one, else the one asked for.
                let expires_at = answer
                    .expiration_date_time
                    .as_deref()
                    .and_then(|t| parse_rfc3339(t).ok())
                    .unwrap_or(flight.expires_at);
                self.current.push(Subscription {
                    id,
                    resource,
                    expires_at,
                });
                Ok(())
            }
            // Graph no longer knows it (deleted, or lapsed early): create it again.
            (Task::Renew { .. }, 404) if graph_error(resp).is_some() => {
                self.tasks.push_front(Task::Create(resource));
                Ok(())
            }
            _ => Err(named(rejected(&self.exchange, resp))),
        }
    }

    /// `err` naming the subscription whose request is in flight.
    fn about_in_flight(&self, err: FlowError) -> FlowError {
        match &self.in_flight {
            Some(i) => name_resource(err, i.task.verb(), i.task.resource()),
            None => err,
        }
    }

    fn fail(&mut self, err: FlowError) {
        self.exchange.finish();
        self.in_flight = None;
        self.outcome = Some(Err(err));
    }
}

/// Says which subscription an error is about, in its detail (or its reason).
fn name_resource(err: FlowError, what: &str, resource: Watched) -> FlowError {
    let about = format!("{what} the {} subscription", resource.as_str());
    match err {
        FlowError::Rejected {
            request,
            status,
            scim_type,
            detail,
        } => FlowError::Rejected {
            request,
            status,
            scim_type,
            detail: Some(match detail {
                Some(d) => format!("{about}: {d}"),
                None => about,
            }),
        },
        FlowError::Unreadable {
            request,
            status,
            reason,
            body,
        } => FlowError::Unreadable {
            request,
            status,
            reason: format!("{about}: {reason}"),
            body,
        },
        FlowError::RetriesExhausted {
            request,
            attempts,
            last,
            last_status,
        } => FlowError::RetriesExhausted {
            request,
            attempts,
            last: format!("{last} ({about})"),
            last_status,
        },
        other => other,
    }
}

impl Flow for SubscriptionFlow {
    type Output = Result<Vec<Subscription>, FlowError>;

    fn next_step(&mut self, now: UnixMillis) -> Step<Self::Output> {
        if let Some(out) = &self.outcome {
            return Step::Done(out.clone());
        }
        if self.in_flight.is_none() {
            let Some(task) = self.tasks.pop_front() else {
                let out = Ok(self.current());
                self.outcome = Some(out.clone());
                return Step::Done(out);
            };
            let expires_at = now.saturating_add(LIFETIME_MS);
            let req = self.request(&task, expires_at);
            self.exchange.start(req);
            self.in_flight = Some(InFlight { task, expires_at });
        }
        self.exchange.step(now).unwrap_or(Step::Wait { until: now + 1 })
    }

    fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
        if self.outcome.is_some() || self.in_flight.is_none() {
            return;
        }
        let resp = match self.exchange.filter(resp, now) {
            Ok(Some(resp)) => resp,
            Ok(None) => return,
            Err(e) => {
                let err = self.about_in_flight(e);
                return self.fail(err);
            }
        };
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        match self.settle(flight, &resp) {
            Ok(()) => self.exchange.finish(),
            Err(e) => self.fail(e),
        }
    }

    fn on_transport_error(&mut self, err: TransportError, now: UnixMillis) {
        if self.outcome.is_some() {
            return;
        }
        if let Err(e) = self.exchange.on_transport(err, now) {
            let err = self.about_in_flight(e);
            self.fail(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use wasm_bindgen_test::wasm_bindgen_test;

    const BASE: &str = "https://graph.microsoft.com/v1.0";
    const HOOK: &str = "https://scim.example.com/graph/notify";
    const CREATED: &str = include_str!("../../tests/fixtures/graph_subscription_created.json");
    /// 2026-05-01T00:00:00Z.
    const NOW: UnixMillis = 1_777_593_600_000;
    const NOT_FOUND: &str =
        r#"{"error":{"code":"ResourceNotFound","message":"The object was not found: subscription 'sub-users'."}}"#;

    fn flow(known: Vec<Subscription>) -> SubscriptionFlow {
        SubscriptionFlow::new(
            &format!("{BASE}/"),
            HOOK,
            SecretString::new("secretClientValue"),
            known,
            NOW,
            RetryPolicy::default(),
            3,
        )
    }

    fn sub(id: &str, resource: Watched, left_ms: u64) -> Subscription {
        Subscription {
            id: id.into(),
            resource,
            expires_at: NOW + left_ms,
        }
    }

    /// The documented create answer, for this id, resource and expiry.
    fn created(id: &str, resource: &str, expires: &str) -> HttpResponse {
        let mut doc: Value = serde_json::from_str(CREATED).unwrap();
        doc["id"] = json!(id);
        doc["resource"] = json!(resource);
        doc["changeType"] = json!(CHANGE_TYPE);
        doc["expirationDateTime"] = json!(expires);
        HttpResponse::new(201, doc.to_string())
    }

    /// Runs the flow against canned answers, returning the output and the requests sent.
    fn run(
        f: &mut SubscriptionFlow,
        answers: Vec<HttpResponse>,
    ) -> (Result<Vec<Subscription>, FlowError>, Vec<HttpRequest>) {
        let mut answers = answers.into_iter();
        let mut sent = Vec::new();
        let mut now = NOW;
        for _ in 0..50 {
            match f.next_step(now) {
                Step::Send(req) => {
                    sent.push(req.clone());
                    f.on_response(answers.next().expect("an answer for every request"), now);
                }
                Step::SendAll(_) => panic!("this flow sends one request at a time"),
                Step::Wait { until } => now = until,
                Step::Done(out) => {
                    assert_eq!(f.next_step(now), Step::Done(out.clone()), "the outcome stays");
                    return (out, sent);
                }
            }
            now += 10;
        }
        panic!("the flow did not finish");
    }

    fn body(req: &HttpRequest) -> Value {
        serde_json::from_str(req.body.as_deref().unwrap()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn fresh_subscriptions_need_no_request() {
        let known = vec![
            sub("sub-groups", Watched::Groups, 10 * DAY_MS),
            sub("sub-users", Watched::Users, RENEW_WITHIN_MS),
        ];
        let (out, sent) = run(&mut flow(known.clone()), vec![]);
        assert!(sent.is_empty());
        assert_eq!(out.unwrap(), [known[1].clone(), known[0].clone()], "users first");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn both_are_created_when_none_is_known() {
        let (out, sent) = run(
            &mut flow(vec![]),
            vec![
                created("sub-users", "users", "2026-05-29T23:00:00.0000000Z"),
                created("sub-groups", "groups", "2026-05-29T23:00:00Z"),
            ],
        );
        assert_eq!(sent.len(), 2);
        assert!(sent
            .iter()
            .all(|r| r.method == Method::Post && r.url == format!("{BASE}/subscriptions")));
        assert_eq!(sent[0].header_value("content-type"), Some("application/json"));
        assert_eq!(
            body(&sent[0]),
            json!({
                "changeType": "updated,deleted",
                "notificationUrl": HOOK,
                "lifecycleNotificationUrl": HOOK,
                "resource": "users",
                "expirationDateTime": "2026-05-29T23:00:00.000Z",
                "clientState": "secretClientValue",
            })
        );
        assert_eq!(body(&sent[1])["resource"], "groups");
        let expires = parse_rfc3339("2026-05-29T23:00:00Z").unwrap();
        assert_eq!(expires - NOW, LIFETIME_MS);
        assert_eq!(
            out.unwrap(),
            [
                Subscription {
                    id: "sub-users".into(),
                    resource: Watched::Users,
                    expires_at: expires
                },
                Subscription {
                    id: "sub-groups".into(),
                    resource: Watched::Groups,
                    expires_at: expires
                },
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_one_near_expiry_is_renewed() {
        let groups = sub("sub-groups", Watched::Groups, 20 * DAY_MS);
        let mut f = flow(vec![
            sub("sub-users", Watched::Users, RENEW_WITHIN_MS - 1),
            groups.clone(),
        ]);
        let renewed = created("sub-users", "users", "2026-05-29T23:00:00Z");
        let renewed = HttpResponse::new(200, renewed.body);
        let (out, sent) = run(&mut f, vec![renewed]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Patch);
        assert_eq!(sent[0].url, format!("{BASE}/subscriptions/sub-users"));
        assert_eq!(
            body(&sent[0]),
            json!({"expirationDateTime": "2026-05-29T23:00:00.000Z"})
        );
        let out = out.unwrap();
        assert_eq!(out[0].id, "sub-users");
        assert_eq!(out[0].expires_at, NOW + LIFETIME_MS);
        assert_eq!(out[1], groups);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_renewal_graph_no_longer_knows_is_created_again() {
        let mut f = flow(vec![
            sub("sub-users", Watched::Users, HOUR_MS),
            sub("sub-groups", Watched::Groups, 20 * DAY_MS),
        ]);
        let (out, sent) = run(
            &mut f,
            vec![
                HttpResponse::new(404, NOT_FOUND),
                created("sub-users-2", "users", "2026-05-29T23:00:00Z"),
            ],
        );
        let calls: Vec<_> = sent.iter().map(|r| (r.method, r.describe())).collect();
        assert_eq!(
            calls,
            [
                (Method::Patch, "PATCH /v1.0/subscriptions/sub-users".to_string()),
                (Method::Post, "POST /v1.0/subscriptions".to_string()),
            ]
        );
        assert_eq!(body(&sent[1])["resource"], "users");
        let out = out.unwrap();
        assert_eq!(out[0].id, "sub-users-2");
        assert_eq!(out[1].id, "sub-groups");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_lapsed_subscription_is_created_without_a_renewal() {
        let (out, sent) = run(
            &mut flow(vec![
                sub("old", Watched::Users, 0),
                sub("sub-groups", Watched::Groups, 20 * DAY_MS),
            ]),
            vec![created("sub-users", "users", "2026-05-29T23:00:00Z")],
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Post);
        assert_eq!(out.unwrap()[0].id, "sub-users");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_failed_create_names_the_resource_and_keeps_what_was_done() {
        let refused = HttpResponse::new(
            400,
            r#"{"error":{"code":"ValidationError","message":"Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."}}"#,
        );
        let mut f = flow(vec![]);
        let (out, sent) = run(
            &mut f,
            vec![created("sub-users", "users", "2026-05-29T23:00:00Z"), refused],
        );
        assert_eq!(sent.len(), 2);
        let err = out.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("creating the groups subscription: ValidationError"),
            "{text}"
        );
        assert_eq!(err.upstream_status(), Some(400));
        let kept = f.current();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "sub-users");
        // A renewal refused otherwise than by 404 is an error too.
        let mut f = flow(vec![
            sub("sub-users", Watched::Users, HOUR_MS),
            sub("sub-groups", Watched::Groups, 20 * DAY_MS),
        ]);
        let denied =
            r#"{"error":{"code":"ExtensionError","message":"Operation: Update; Exception: [Status Code: Forbidden]"}}"#;
        let (out, _) = run(&mut f, vec![HttpResponse::new(403, denied)]);
        assert!(out
            .unwrap_err()
            .to_string()
            .contains("renewing the users subscription: ExtensionError"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn throttled_creates_are_retried_and_the_client_state_stays_out_of_debug() {
        let mut f = flow(vec![sub("sub-users", Watched::Users, 20 * DAY_MS)]);
        let Step::Send(req) = f.next_step(NOW) else {
            panic!("a create expected")
        };
        assert!(req.body.as_deref().unwrap().contains("secretClientValue"));
        let debug = format!("{f:?}");
        assert!(!debug.contains("secretClientValue"), "{debug}");
        assert!(debug.contains("Create(Groups)"), "{debug}");
        f.on_response(
            HttpResponse::new(
                429,
                r#"{"error":{"code":"TooManyRequests","message":"Please retry again later."}}"#,
            )
            .with_header("Retry-After", "1"),
            NOW,
        );
        let Step::Wait { until } = f.next_step(NOW) else {
            panic!("a wait expected")
        };
        assert!(until >= NOW + 1_000, "Retry-After kept");
        let Step::Send(again) = f.next_step(until) else {
            panic!("the create again")
        };
        assert_eq!(again, req);
        f.on_response(created("sub-groups", "groups", "2026-05-29T23:00:00Z"), until);
        let Step::Done(Ok(out)) = f.next_step(until) else {
            panic!("done")
        };
        assert_eq!(out.len(), 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_subscription_survives_the_store() {
        let s = sub("sub-users", Watched::Users, DAY_MS);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"id":"sub-users","resource":"users","expiresAt":{}}}"#,
                NOW + DAY_MS
            )
        );
        assert_eq!(serde_json::from_str::<Subscription>(&json).unwrap(), s);
    }
}
