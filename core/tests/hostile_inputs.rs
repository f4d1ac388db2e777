//! Hostile inputs for what core reads from others: lifecycle events, Bulk answers, Graph delta
//! pages, and the values the SCIM filter builder quotes. Nothing may panic, and what is accepted
//! must hold up: an accepted event is valid and reads back the same when written, a filter
//! reads back exactly the value it was built from, a Bulk answer gives one result per operation
//! and no more results than it holds, a delta page keeps no annotation and follows no foreign
//! link.
//!
//! Inputs are random bytes and, mostly, the fixtures mutated with structure in mind (fields
//! removed, repeated, renamed to look-alikes, retyped, nested deep, given huge numbers, long or
//! broken texts). Cases per target: `PROPTEST_CASES`, else [`DEFAULT_CASES`]; `make fuzz` runs a
//! million per target in release.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should stop loudly

mod hostile;

use cxone_scim_core::bulk::{correlate, BulkResponseError, OpResult, SentOp};
use cxone_scim_core::event::{Command, EventError, LifecycleEvent, Operation, MAX_GROUPS};
use cxone_scim_core::flows::{Flow, FlowError, Step};
use cxone_scim_core::graph::{AttributeMap, DeltaPage, DeltaReader, DeltaUser, PageRead, Position};
use cxone_scim_core::http::{HttpResponse, Method};
use cxone_scim_core::policy::{RolePolicy, RoleTarget};
use cxone_scim_core::retry::{is_retryable_status, RetryPolicy};
use cxone_scim_core::scim::bulk::BulkResponse;
use cxone_scim_core::scim::filter;
use hostile::doc::Node;
use hostile::filter_syntax::{read_component, read_eq};
use hostile::values::{self, BULK_FIELDS, EVENT_FIELDS, GRAPH_FIELDS};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};
use std::sync::LazyLock;

const DEFAULT_CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

const FIXTURES: [(&str, &str); 25] = [
    (
        "bench_bulk_response_50",
        include_str!("fixtures/bench_bulk_response_50.json"),
    ),
    ("bench_users_50", include_str!("fixtures/bench_users_50.json")),
    (
        "bulk_207_out_of_order",
        include_str!("fixtures/bulk_207_out_of_order.json"),
    ),
    (
        "bulk_response_patch_without_bulkid",
        include_str!("fixtures/bulk_response_patch_without_bulkid.json"),
    ),
    (
        "entra_patch_pascalcase",
        include_str!("fixtures/entra_patch_pascalcase.json"),
    ),
    ("event_create", include_str!("fixtures/event_create.json")),
    (
        "graph_change_notification",
        include_str!("fixtures/graph_change_notification.json"),
    ),
    (
        "graph_error_response",
        include_str!("fixtures/graph_error_response.json"),
    ),
    (
        "graph_subscription_created",
        include_str!("fixtures/graph_subscription_created.json"),
    ),
    (
        "graph_transitive_member_of",
        include_str!("fixtures/graph_transitive_member_of.json"),
    ),
    (
        "graph_users_delta_changes",
        include_str!("fixtures/graph_users_delta_changes.json"),
    ),
    (
        "graph_users_delta_initial",
        include_str!("fixtures/graph_users_delta_initial.json"),
    ),
    (
        "graph_users_delta_page",
        include_str!("fixtures/graph_users_delta_page.json"),
    ),
    (
        "rfc7643_enterprise_user",
        include_str!("fixtures/rfc7643_enterprise_user.json"),
    ),
    ("rfc7643_group", include_str!("fixtures/rfc7643_group.json")),
    (
        "rfc7643_service_provider_config",
        include_str!("fixtures/rfc7643_service_provider_config.json"),
    ),
    ("role_policy", include_str!("fixtures/role_policy.json")),
    (
        "role_policy_inheritance",
        include_str!("fixtures/role_policy_inheritance.json"),
    ),
    (
        "standin_bulk_200_mixed",
        include_str!("fixtures/standin_bulk_200_mixed.json"),
    ),
    (
        "standin_bulk_200_stopped_early",
        include_str!("fixtures/standin_bulk_200_stopped_early.json"),
    ),
    ("standin_error_409", include_str!("fixtures/standin_error_409.json")),
    (
        "standin_error_invalid_path",
        include_str!("fixtures/standin_error_invalid_path.json"),
    ),
    ("standin_list_users", include_str!("fixtures/standin_list_users.json")),
    (
        "standin_service_provider_config",
        include_str!("fixtures/standin_service_provider_config.json"),
    ),
    (
        "standin_user_created",
        include_str!("fixtures/standin_user_created.json"),
    ),
];

fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap()
}

// ---------------------------------------------------------------- lifecycle events

/// The names an event error may start with: every field it reads, and `body`.
const EVENT_ERROR_FIELDS: &[&str] = &[
    "body",
    "operation",
    "userName",
    "externalId",
    "firstName",
    "lastName",
    "email",
    "groups",
    "accountEnabled",
    "title",
    "department",
    "employeeNumber",
    "displayName",
    "initial",
    "occurredAt",
    "type",
    "timestamp",
];

/// Strict with the core `roles`, inheriting with a single-valued target, lenient and expanding.
static POLICIES: LazyLock<Vec<(RolePolicy, RoleTarget)>> = LazyLock::new(|| {
    let inheriting = fixture("role_policy_inheritance");
    let lenient = inheriting
        .replace(r#""mode": "strict""#, r#""mode": "lenient""#)
        .replace(r#""expandInherited": false"#, r#""expandInherited": true"#);
    assert_ne!(lenient, inheriting);
    let primary = RoleTarget::parse("urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole").unwrap();
    vec![
        (
            RolePolicy::from_json(fixture("role_policy")).unwrap(),
            RoleTarget::Roles,
        ),
        (RolePolicy::from_json(inheriting).unwrap(), primary),
        (RolePolicy::from_json(&lenient).unwrap(), RoleTarget::Roles),
    ]
});

static EVENT_SEEDS: LazyLock<Vec<Node>> = LazyLock::new(|| {
    [
        fixture("event_create"),
        r#"{"operation":"create","userName":"jdoe@example.com","externalId":"e-1","firstName":"Jane",
            "lastName":"Doe","email":"jdoe@example.com","groups":[{"displayName":"cxone-agent","id":"g-1"},
            {"displayName":"cxone-supervisor"},{"id":"6f1c2d3e-0000-4000-8000-00000000a001"}],
            "accountEnabled":"True","title":"Agent","department":null,"employeeNumber":"","displayName":"Jane D.",
            "initial":{"firstName":"J","email":"j@example.com","department":"Support"},
            "occurredAt":"2026-11-22T10:49:17.250+01:00"}"#,
        r#"{"type":"user.updated","timestamp":"2026-11-22T09:49:17.250Z",
            "data":{"userName":"a@b.co","groups":[{"displayName":"cxone-agent"}],"accountEnabled":false}}"#,
        r#"{"type":"user.deleted","data":{"externalId":"e-1","groups":[{}]}}"#,
        r#"{"operation":"disable","userName":"a@b.co","externalId":"e-9"}"#,
        r#"{"operation":"update","userName":"a@b.co","title":"x","initial":{"employeeNumber":"1"}}"#,
    ]
    .into_iter()
    .map(Node::parse)
    .collect()
});

fn check_event(body: &[u8]) {
    match LifecycleEvent::from_json(body) {
        Ok(event) => accepted_event(&event),
        Err(EventError::Json { line, message, .. }) => assert!(line >= 1 && !message.is_empty()),
        Err(EventError::Invalid { field, message }) => {
            let head = field.split(['.', '[']).next().unwrap_or_default();
            assert!(
                EVENT_ERROR_FIELDS.contains(&head),
                "the error names no field: {field:?}: {message}"
            );
        }
    }
}

/// Valid, written and read back the same (a webhook's userName is read trimmed: so is every
/// accepted event's), and turned into a command by every policy.
fn accepted_event(event: &LifecycleEvent) {
    assert_eq!(event.validate(), Ok(()));
    let written = serde_json::to_vec(event).unwrap();
    assert_eq!(
        event.user_name,
        event.user_name.trim(),
        "an accepted userName is trimmed"
    );
    assert_eq!(
        LifecycleEvent::from_json(&written),
        Ok(event.clone()),
        "written as {}",
        String::from_utf8_lossy(&written)
    );
    assert!(!event.subject_key().is_empty());
    for (policy, target) in POLICIES.iter() {
        match event.command(policy, target) {
            Ok((command, resolution)) => {
                match &command {
                    Command::Upsert {
                        desired,
                        create_first,
                        known_id,
                    } => {
                        assert!(!event.operation.is_leaver());
                        assert_eq!(*create_first, event.operation == Operation::Create);
                        assert_eq!(*known_id, None, "only a ledger knows the CXone id");
                        assert_eq!(desired.user_name, event.user_name.trim());
                        assert_eq!(resolution.is_some(), event.groups.is_some());
                    }
                    Command::Disable { lookup } | Command::Delete { lookup } => {
                        assert!(event.operation.is_leaver() && resolution.is_none());
                        assert!(lookup.user_name.is_some() || lookup.external_id.is_some());
                    }
                }
                let _ = command.roles_after();
            }
            Err(violation) => {
                assert!(!event.operation.is_leaver());
                assert!(!violation.to_string().is_empty());
            }
        }
    }
}

fn plain_text(choices: &'static [&'static str]) -> impl Strategy<Value = Node> {
    prop_oneof![
        3 => select(choices).prop_map(|s| Node::Text(s.into())),
        2 => values::text().prop_map(Node::Text),
        1 => values::leaf(),
    ]
}

fn group() -> impl Strategy<Value = Node> {
    let member = (
        select(&["displayName", "id", "DisplayName", "value"][..]).prop_map(String::from),
        plain_text(&[
            "cxone-agent",
            "cxone-supervisor",
            "All Staff",
            "6f1c2d3e-0000-4000-8000-00000000a001",
            "",
        ]),
    );
    prop_oneof![
        5 => vec(member, 0..3).prop_map(Node::Object),
        1 => values::leaf(),
    ]
}

/// An event built field by field: usually an operation and a userName, then any fields with
/// values of the right shape or not; now and then in an envelope.
fn event_doc() -> impl Strategy<Value = Node> {
    let operation = plain_text(&["create", "update", "disable", "delete", "Create", "UPDATE"]);
    let user_name = plain_text(&["jdoe@example.com", "a", " b@c.d "]);
    let field = (
        values::key(EVENT_FIELDS),
        prop_oneof![
            3 => values::text().prop_map(Node::Text),
            1 => values::node(EVENT_FIELDS),
            2 => vec(group(), 0..6).prop_map(Node::Array),
            1 => vec((values::key(EVENT_FIELDS), plain_text(&["j@example.com", "J", ""])), 0..4).prop_map(Node::Object),
            1 => plain_text(&["True", "false", "2026-11-30T09:15:00Z", "9999-12-31T23:59:59-23:59"]),
        ],
    );
    let envelope = prop_oneof![
        3 => Just(None),
        1 => (
            plain_text(&["user.created", "user.updated", "user.disabled", "user.deleted"]),
            plain_text(&["2026-11-30T09:15:00Z", "1970-01-01T00:00:00Z"]),
        )
            .prop_map(Some),
    ];
    (
        proptest::option::weighted(0.9, operation),
        proptest::option::weighted(0.9, user_name),
        vec(field, 0..8),
        envelope,
    )
        .prop_map(|(operation, user_name, fields, envelope)| {
            let mut members: Vec<(String, Node)> = Vec::new();
            members.extend(operation.map(|o| ("operation".to_string(), o)));
            members.extend(user_name.map(|u| ("userName".to_string(), u)));
            members.extend(fields);
            let data = Node::Object(members);
            match envelope {
                None => data,
                Some((kind, time)) => Node::Object(vec![
                    ("type".into(), kind),
                    ("timestamp".into(), time),
                    ("data".into(), data),
                ]),
            }
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn event_from_random_bytes(body in vec(any::<u8>(), 0..512)) {
        check_event(&body);
    }

    #[test]
    fn event_from_mutated_events(h in values::hostile(EVENT_FIELDS)) {
        check_event(&h.render(&EVENT_SEEDS));
    }

    #[test]
    fn event_built_field_by_field(doc in event_doc()) {
        check_event(doc.write().as_bytes());
    }
}

// ---------------------------------------------------------------- SCIM filter builder

fn base_url() -> impl Strategy<Value = String> {
    "https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z0-9]{1,8}){0,3}/?"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filter_values_read_back_exactly(
        attribute in "[A-Za-z][A-Za-z0-9_-]{0,20}(\\.[A-Za-z][A-Za-z0-9_]{0,10})?",
        value in values::text(),
        base in base_url(),
        id in values::text(),
    ) {
        let built = filter::eq(&attribute, &value);
        let (read_attribute, read_value) = read_eq(&built).unwrap_or_else(|e| panic!("{built:?}: {e}"));
        prop_assert_eq!(read_attribute, attribute.as_str());
        prop_assert_eq!(&read_value, &value);

        let base = base.trim_end_matches('/');
        let url = filter::users_filter_url(base, &built);
        let query = url.strip_prefix(&format!("{base}/Users?filter=")).unwrap_or_else(|| panic!("{url}"));
        prop_assert_eq!(read_component(query), Ok(built));

        let url = filter::user_url(base, &id);
        let segment = url.strip_prefix(&format!("{base}/Users/")).unwrap_or_else(|| panic!("{url}"));
        prop_assert_eq!(read_component(segment), Ok(id));
    }
}

// ---------------------------------------------------------------- Bulk answers

const BULK_SEEDS: [&str; 5] = [
    "standin_bulk_200_mixed",
    "standin_bulk_200_stopped_early",
    "bulk_207_out_of_order",
    "bulk_response_patch_without_bulkid",
    "bench_bulk_response_50",
];

/// The operations a Bulk answer seems to answer: its bulkIds (else `u-{i}`), methods and the
/// resources its locations name.
fn sent_for(answer: &Value) -> Vec<SentOp> {
    let Some(ops) = answer.get("Operations").and_then(Value::as_array) else {
        return (0..3).map(|i| post(&format!("u-{i}"))).collect();
    };
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let text = |name: &str| op.get(name).and_then(Value::as_str);
            let method = match text("method").unwrap_or("POST").to_ascii_uppercase().as_str() {
                "PATCH" => Method::Patch,
                "PUT" => Method::Put,
                "DELETE" => Method::Delete,
                _ => Method::Post,
            };
            let resource = text("location").and_then(|l| l.rsplit('/').next()).unwrap_or("x");
            SentOp {
                bulk_id: text("bulkId").map_or_else(|| format!("u-{i}"), str::to_string),
                method,
                path: if method == Method::Post {
                    "/Users".into()
                } else {
                    format!("/Users/{resource}")
                },
            }
        })
        .collect()
}

fn post(bulk_id: &str) -> SentOp {
    SentOp {
        bulk_id: bulk_id.into(),
        method: Method::Post,
        path: "/Users".into(),
    }
}

static BULK_DOCS: LazyLock<Vec<Node>> =
    LazyLock::new(|| BULK_SEEDS.iter().map(|name| Node::parse(fixture(name))).collect());

/// What was sent, per seed in [`BULK_SEEDS`].
static BULK_SENT: LazyLock<Vec<Vec<SentOp>>> = LazyLock::new(|| {
    BULK_SEEDS
        .iter()
        .map(|name| sent_for(&serde_json::from_str(fixture(name)).unwrap()))
        .collect()
});

/// What differs between the operations sent and the ones the answer was made for.
#[derive(Debug, Clone)]
enum SentChange {
    Remove(usize),
    Repeat(usize),
    Push(SentOp),
    Path(usize, String),
    BulkId(usize, String),
}

fn sent_op() -> impl Strategy<Value = SentOp> {
    let method = select(&[Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete][..]);
    let bulk_id = prop_oneof![3 => "u-[0-9]", 1 => values::text()];
    let path = prop_oneof![
        2 => select(&["/Users", "/Users/abc", "/Users/a%2Fb%20c%40x", "/Users/%", "/"][..]).prop_map(String::from),
        1 => values::text(),
    ];
    (bulk_id, method, path).prop_map(|(bulk_id, method, path)| SentOp { bulk_id, method, path })
}

fn sent_change() -> impl Strategy<Value = SentChange> {
    prop_oneof![
        any::<usize>().prop_map(SentChange::Remove),
        any::<usize>().prop_map(SentChange::Repeat),
        sent_op().prop_map(SentChange::Push),
        (any::<usize>(), values::text()).prop_map(|(i, p)| SentChange::Path(i, p)),
        (any::<usize>(), prop_oneof!["u-[0-9]", values::text()]).prop_map(|(i, b)| SentChange::BulkId(i, b)),
    ]
}

fn changed(mut sent: Vec<SentOp>, changes: &[SentChange]) -> Vec<SentOp> {
    for change in changes {
        let len = sent.len().max(1);
        match change {
            SentChange::Remove(i) if !sent.is_empty() => drop(sent.remove(i % len)),
            SentChange::Repeat(i) if !sent.is_empty() => sent.insert(i % len, sent[i % len].clone()),
            SentChange::Push(op) => sent.push(op.clone()),
            SentChange::Path(i, p) if !sent.is_empty() => sent[i % len].path.clone_from(p),
            SentChange::BulkId(i, b) if !sent.is_empty() => sent[i % len].bulk_id.clone_from(b),
            _ => {}
        }
    }
    sent
}

fn bulk_status() -> impl Strategy<Value = u16> {
    prop_oneof![8 => Just(200u16), 3 => Just(207u16), 1 => any::<u16>()]
}

/// How many results an answer holds, whatever they hold (a number out of `f64`'s range included).
#[derive(serde::Deserialize)]
struct Answered {
    #[serde(rename = "Operations", default)]
    operations: Vec<serde::de::IgnoredAny>,
}

fn check_bulk(status: u16, body: &str, sent: &[SentOp]) {
    match correlate(&HttpResponse::new(status, body), sent) {
        Ok(results) => {
            assert!(status == 200 || status == 207, "{status} accepted");
            assert_eq!(results.len(), sent.len());
            let answered = serde_json::from_str::<Answered>(body)
                .unwrap_or_else(|e| panic!("correlated what is not a Bulk answer: {e}"))
                .operations
                .len();
            let attributed = results
                .iter()
                .filter(|r| !matches!(r, OpResult::Missing | OpResult::Unknown))
                .count();
            assert!(
                attributed <= answered,
                "{attributed} results attributed out of {answered}"
            );
            if results.contains(&OpResult::Missing) {
                assert!(
                    answered < sent.len(),
                    "missing with {answered} results for {}",
                    sent.len()
                );
            }
            for r in &results {
                match r {
                    OpResult::Applied { status, .. } => assert!((200..300).contains(status)),
                    OpResult::Retryable { status } => assert!(is_retryable_status(*status)),
                    OpResult::Permanent { status, .. } => {
                        assert!(!(200..300).contains(status) && *status != 409 && !is_retryable_status(*status))
                    }
                    OpResult::Conflict | OpResult::Missing | OpResult::Unknown => {}
                }
            }
        }
        Err(BulkResponseError::Status { status: s, body: kept }) => {
            assert!(s == status && s != 200 && s != 207);
            assert!(body.starts_with(&kept) && kept.len() <= 4096);
        }
        Err(BulkResponseError::Malformed { reason, body: kept }) => {
            assert!(!reason.is_empty());
            assert!(body.starts_with(&kept) && kept.len() <= 4096);
        }
    }
    check_bulk_response(body);
}

/// The typed `BulkResponse` reads the same text without panicking, and what it reads survives
/// being written and read again.
fn check_bulk_response(body: &str) {
    let Ok(read) = serde_json::from_str::<BulkResponse>(body) else {
        return;
    };
    let again: BulkResponse = serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
    assert_eq!(again.schemas, read.schemas);
    assert_eq!(again.operations.len(), read.operations.len());
    for (a, b) in again.operations.iter().zip(&read.operations) {
        assert_eq!(
            (&a.method, &a.bulk_id, &a.version, &a.location, a.status),
            (&b.method, &b.bulk_id, &b.version, &b.location, b.status)
        );
        assert_eq!(a.resource_id(), b.resource_id());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bulk_from_random_bytes(status in bulk_status(), body in vec(any::<u8>(), 0..512), seed in any::<usize>()) {
        let sent = &BULK_SENT[seed % BULK_SENT.len()];
        check_bulk(status, &String::from_utf8_lossy(&body), sent);
    }

    #[test]
    fn bulk_from_mutated_answers(
        status in bulk_status(),
        h in values::hostile(BULK_FIELDS),
        changes in prop_oneof![3 => Just(Vec::new()), 1 => vec(sent_change(), 1..4)],
    ) {
        let body = h.render(&BULK_DOCS);
        let sent = changed(BULK_SENT[h.seed % BULK_SENT.len()].clone(), &changes);
        check_bulk(status, &String::from_utf8_lossy(&body), &sent);
    }
}

// ---------------------------------------------------------------- Graph delta pages

const GRAPH: &str = "https://graph.microsoft.com/v1.0";

static MAP: LazyLock<AttributeMap> = LazyLock::new(AttributeMap::default);

static GRAPH_SEEDS: LazyLock<Vec<Node>> = LazyLock::new(|| {
    let mut page: Value = serde_json::from_str(fixture("graph_users_delta_page")).unwrap();
    let entries = page["value"].as_array_mut().unwrap();
    let removed = entries.iter().position(|u| u.get("@removed").is_some()).unwrap();
    let kept: Vec<Value> = entries.iter().take(4).chain(entries.get(removed)).cloned().collect();
    *entries = kept;
    [
        fixture("graph_users_delta_initial").to_string(),
        fixture("graph_users_delta_changes").to_string(),
        page.to_string(),
        format!(r#"{{"@odata.deltaLink":"{GRAPH}/users/delta?$deltatoken=abc","value":[]}}"#),
    ]
    .iter()
    .map(|s| Node::parse(s))
    .collect()
});

/// A page to answer with once the one under test has been answered (a resync reads again).
const LAST_PAGE: &str =
    r#"{"@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=z","value":[]}"#;

const RETRY: RetryPolicy = RetryPolicy {
    base_ms: 1,
    cap_ms: 10,
    max_attempts: 3,
    max_retry_after_ms: 1_000,
};

/// Reads one page through [`DeltaReader`], answering its first request with `first`.
fn read_page(first: HttpResponse) -> Result<PageRead, FlowError> {
    let mut reader = DeltaReader::new(
        GRAPH,
        &["userPrincipalName", "givenName"],
        Position::Page(format!("{GRAPH}/users/delta?$skiptoken=x")),
        RETRY,
        7,
    );
    let mut answers = std::iter::once(first);
    let mut now = 1_000;
    for _ in 0..100 {
        match reader.next_step(now) {
            Step::Send(_) => {
                let answer = answers.next().unwrap_or_else(|| HttpResponse::new(200, LAST_PAGE));
                reader.on_response(answer, now);
            }
            Step::SendAll(_) => panic!("the reader sends one request at a time"),
            Step::Wait { until } => now = until.max(now + 1),
            Step::Done(out) => return out,
        }
    }
    panic!("the reader did not finish");
}

/// `scheme://host[:port]` of `url` is Graph's, in any case.
fn on_graph(url: &str) -> bool {
    let origin = "https://graph.microsoft.com";
    url.get(..origin.len()).is_some_and(|o| o.eq_ignore_ascii_case(origin))
        && url
            .get(origin.len()..)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

/// Equal, numbers within a rounding of each other: without its `float_roundtrip` feature
/// serde_json may read a long decimal a few units in the last place off, and the shortest text
/// of that reads back a little differently.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn same_page(a: &DeltaPage, b: &DeltaPage) -> bool {
    (&a.next_link, &a.delta_link, a.value.len()) == (&b.next_link, &b.delta_link, b.value.len())
        && a.value.iter().zip(&b.value).all(|(x, y)| {
            (&x.id, &x.removed) == (&y.id, &y.removed)
                && same_json(
                    &Value::Object(x.properties.clone()),
                    &Value::Object(y.properties.clone()),
                )
        })
}

fn check_delta(status: u16, body: &[u8]) {
    if let Ok(page) = DeltaPage::from_slice(body) {
        accepted_page(&page);
    }
    let text = String::from_utf8_lossy(body);
    let read = read_page(HttpResponse::new(status, text.as_ref()));
    let Ok(read) = read else { return };
    if status != 200 {
        assert!(read.resynced || is_retryable_status(status), "{status} read as a page");
        return;
    }
    let page = DeltaPage::from_slice(text.as_bytes()).expect("the reader accepted what DeltaPage refuses");
    assert_eq!(read.changes.len(), page.value.len());
    match &read.next {
        Position::Page(link) => assert_eq!(Some(link), page.next_link.as_ref()),
        Position::Round(link) => assert!(page.next_link.is_none() && Some(link) == page.delta_link.as_ref()),
        Position::Start => panic!("a page read leads back to the start"),
    }
    let (Position::Page(link) | Position::Round(link)) = &read.next else {
        unreachable!()
    };
    assert!(on_graph(link), "followed {link:?}");
}

/// No annotation kept, written and read back the same, and every changed user's event, where
/// the default map makes one, is an event [`accepted_event`] accepts.
fn accepted_page(page: &DeltaPage) {
    for user in &page.value {
        assert!(
            !user
                .properties
                .keys()
                .any(|k| k.contains("@odata.") || k == "id" || k == "@removed"),
            "{:?}",
            user.properties.keys()
        );
    }
    let again = DeltaPage::from_slice(&serde_json::to_vec(page).unwrap()).unwrap();
    assert!(same_page(page, &again), "{page:?}\nread back as\n{again:?}");
    for user in page.value.iter().filter(|u| u.removed.is_none()) {
        if let Ok(event) = MAP.to_event(user, None, 1_795_340_957_250) {
            accepted_event(&event);
        }
    }
}

fn graph_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        12 => Just(200u16),
        1 => select(&[400u16, 404, 410, 429, 500, 503][..]),
        1 => any::<u16>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn delta_from_random_bytes(status in graph_status(), body in vec(any::<u8>(), 0..512)) {
        check_delta(status, &body);
    }

    #[test]
    fn delta_from_mutated_pages(status in graph_status(), h in values::hostile(GRAPH_FIELDS)) {
        check_delta(status, &h.render(&GRAPH_SEEDS));
    }
}

// ---------------------------------------------------------------- explicit cases

fn every_parser(body: &[u8]) {
    check_event(body);
    let text = String::from_utf8_lossy(body);
    for sent in BULK_SENT.iter() {
        check_bulk(200, &text, sent);
    }
    check_delta(200, body);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep = 100_000;
    let bodies = [
        "[".repeat(deep),
        format!("{}{}", "[".repeat(deep), "]".repeat(deep)),
        r#"{"a":"#.repeat(deep),
        format!(r#"{{"operation":"create","userName":"a","groups":{}"#, "[".repeat(deep)),
        format!(r#"{{"type":"user.created","data":{}"#, r#"{"data":"#.repeat(deep)),
        format!(
            r#"{{"Operations":[{{"status":201,"response":{}"#,
            r#"{"id":"#.repeat(deep)
        ),
        format!(
            r#"{{"@odata.deltaLink":"{GRAPH}/x","value":[{{"id":"u","p":{}"#,
            "[".repeat(deep)
        ),
    ];
    for body in &bodies {
        assert!(LifecycleEvent::from_json(body.as_bytes()).is_err());
        assert!(DeltaPage::from_slice(body.as_bytes()).is_err());
        every_parser(body.as_bytes());
    }
}

/// An offset that takes a time on 9999-12-31 past the year's end in UTC could not be written
/// back: refused, naming the field.
#[test]
fn an_event_time_past_year_9999_is_refused() {
    let body = br#"{"operation":"create","userName":"jdoe@example.com","occurredAt":"9999-12-31T23:59:59.999-23:59"}"#;
    let EventError::Invalid { field, .. } = LifecycleEvent::from_json(body).unwrap_err() else {
        panic!("not an invalid field")
    };
    assert_eq!(field, "occurredAt");
}

/// A webhook's userName is read trimmed, and so is one mapped from Graph (unicode line and
/// paragraph separators included).
#[test]
fn a_user_name_from_graph_is_trimmed_as_from_a_webhook() {
    let user: DeltaUser =
        serde_json::from_str(r#"{"id":"u-1","userPrincipalName":" a@b.co\u2028","accountEnabled":true}"#).unwrap();
    let event = MAP.to_event(&user, None, 0).unwrap();
    assert_eq!(event.user_name, "a@b.co");
}

#[test]
fn ten_thousand_groups_are_refused_by_name_and_as_many_as_allowed_resolve() {
    let event = |operation: &str, groups: &[Value]| {
        let body = json!({"operation": operation, "userName": "a@b.co", "groups": groups}).to_string();
        check_event(body.as_bytes());
        LifecycleEvent::from_json(body.as_bytes())
    };
    let mapped: Vec<Value> = (0..10_000)
        .map(|i| json!({"displayName": if i % 2 == 0 { "cxone-agent" } else { "All Staff" }}))
        .collect();
    let EventError::Invalid { field, .. } = event("update", &mapped).unwrap_err() else {
        panic!("not an invalid field")
    };
    assert_eq!(field, "groups");
    assert!(event("delete", &mapped).is_ok(), "a leaver's groups are not read");

    let allowed = &mapped[..MAX_GROUPS];
    let e = event("update", allowed).unwrap();
    let (policy, target) = &POLICIES[0];
    let Ok((Command::Upsert { desired, .. }, _)) = e.command(policy, target) else {
        panic!("refused")
    };
    let roles: Vec<String> = desired.roles.unwrap().into_iter().map(|r| r.value).collect();
    assert_eq!(roles, ["Agent"]);

    let unmapped: Vec<Value> = (0..MAX_GROUPS)
        .map(|i| json!({"displayName": format!("g-{i}")}))
        .collect();
    let e = event("update", &unmapped).unwrap();
    assert!(e.command(policy, target).is_err(), "strict refuses unmapped groups");
    let (lenient, target) = &POLICIES[2];
    assert!(e.command(lenient, target).is_ok(), "lenient skips them");

    let mut last_empty = allowed.to_vec();
    last_empty[MAX_GROUPS - 1] = json!({});
    let message = event("update", &last_empty).unwrap_err().to_string();
    assert!(
        message.contains(&format!("groups entry {}", MAX_GROUPS - 1)),
        "{message}"
    );
}

/// Every cut in release (`make fuzz`); in debug, of fixtures over 2 KiB only the first and last
/// 256 bytes and every 211th between.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    let every = !cfg!(debug_assertions) || len <= 2_048;
    (0..len).filter(move |&i| every || i < 256 || len - i <= 256 || i % 211 == 0)
}

#[test]
fn a_fixture_cut_short_is_never_accepted() {
    for (name, text) in FIXTURES {
        assert!(text.starts_with(['{', '[']), "{name}");
        let sent = sent_for(&serde_json::from_str(text).unwrap());
        // Cuts in the trailing whitespace would leave the whole document.
        for cut in cuts(text.trim_end().len()) {
            let prefix = &text.as_bytes()[..cut];
            let at = || format!("{name} cut at {cut}");
            assert!(LifecycleEvent::from_json(prefix).is_err(), "{}", at());
            assert!(DeltaPage::from_slice(prefix).is_err(), "{}", at());
            if let Ok(prefix) = std::str::from_utf8(prefix) {
                let resp = HttpResponse::new(200, prefix);
                assert!(correlate(&resp, &sent).is_err(), "{}", at());
                assert!(serde_json::from_str::<BulkResponse>(prefix).is_err(), "{}", at());
            }
        }
    }
}

#[test]
fn the_fixtures_themselves_pass_every_check() {
    for (_, text) in FIXTURES {
        every_parser(text.as_bytes());
    }
    for seed in EVENT_SEEDS.iter() {
        check_event(seed.write().as_bytes());
    }
}
