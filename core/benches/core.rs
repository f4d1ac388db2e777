//! Core micro-benchmarks. Inputs are the fixture files bench/python_baseline.py reads too, so
//! both sides do the same work on the same bytes (`make bench` runs both and writes the ratios).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use cxone_scim_core::bulk::{correlate, BulkConfig, BulkUser, InMemoryRun, SentOp};
use cxone_scim_core::event::{Command, LifecycleEvent};
use cxone_scim_core::flows::{Flow, LifecycleFlow};
use cxone_scim_core::graph::DeltaPage;
use cxone_scim_core::http::HttpResponse;
use cxone_scim_core::policy::RolePolicy;
use cxone_scim_core::retry::RetryPolicy;
use cxone_scim_core::scim::build::{patch_to, DesiredUser};
use cxone_scim_core::scim::bulk::BulkResponse;
use cxone_scim_core::scim::User;
use cxone_scim_core::webhook::{sign, verify, SignatureHeaders, WebhookSecret, WebhookSecrets};
use serde_json::Value;

const USERS_50: &[u8] = include_bytes!("../tests/fixtures/bench_users_50.json");
const BULK_RESPONSE_50: &[u8] = include_bytes!("../tests/fixtures/bench_bulk_response_50.json");
const USER: &[u8] = include_bytes!("../tests/fixtures/rfc7643_enterprise_user.json");
const DELTA_PAGE: &[u8] = include_bytes!("../tests/fixtures/graph_users_delta_page.json");
const POLICY: &str = include_str!("../tests/fixtures/role_policy.json");
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn policy() -> RolePolicy {
    RolePolicy::from_json(POLICY).unwrap()
}

/// What the PATCH benchmarks take the RFC user to.
fn mover() -> DesiredUser {
    DesiredUser {
        user_name: "bjensen@example.com".into(),
        external_id: Some("701984".into()),
        given_name: Some("Barbara".into()),
        family_name: Some("Jensen-Smith".into()),
        email: Some("barbara.jensen@example.com".into()),
        active: Some(false),
        roles: Some(vec![cxone_scim_core::scim::Role {
            value: "Supervisor".into(),
            display: Some("Supervisor".into()),
            ..Default::default()
        }]),
        ..DesiredUser::default()
    }
}

fn versus_python(c: &mut Criterion) {
    let policy = policy();
    let mut g = c.benchmark_group("vs_python");
    g.bench_function("bulk_request_build_50", |b| {
        b.iter(|| {
            let users: Vec<BulkUser> = serde_json::from_slice(black_box(USERS_50)).unwrap();
            let run = InMemoryRun::new(&users, &policy, BulkConfig::new("https://cxone.example/scim/v2"), 0);
            let requests = run.planned_requests();
            assert_eq!(requests.len(), 1);
            black_box(requests)
        })
    });
    let response = HttpResponse::new(207, String::from_utf8(BULK_RESPONSE_50.to_vec()).unwrap());
    let ids: Vec<SentOp> = (0..50)
        .map(|i| SentOp {
            bulk_id: format!("u-{i}"),
            method: cxone_scim_core::http::Method::Post,
            path: "/Users".into(),
        })
        .collect();
    g.bench_function("bulk_response_parse_classify_50", |b| {
        b.iter(|| black_box(correlate(black_box(&response), &ids).unwrap()))
    });
    g.bench_function("user_validate_serialize", |b| {
        b.iter(|| {
            let user: User = serde_json::from_slice(black_box(USER)).unwrap();
            black_box(serde_json::to_vec(&user).unwrap())
        })
    });
    let current: User = serde_json::from_slice(USER).unwrap();
    let target = mover();
    g.bench_function("patch_diff", |b| {
        b.iter(|| {
            let patch = patch_to(black_box(&current), black_box(&target)).unwrap();
            black_box(serde_json::to_vec(&patch).unwrap())
        })
    });
    g.finish();
}

fn parse_efficiency(c: &mut Criterion) {
    for (name, bytes) in [("bulk_response", BULK_RESPONSE_50), ("graph_delta_page", DELTA_PAGE)] {
        let mut g = c.benchmark_group(format!("parse_{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("typed", |b| {
            b.iter(|| {
                if name == "bulk_response" {
                    black_box(
                        serde_json::from_slice::<BulkResponse>(black_box(bytes))
                            .unwrap()
                            .operations
                            .len(),
                    )
                } else {
                    black_box(DeltaPage::from_slice(black_box(bytes)).unwrap().value.len())
                }
            })
        });
        g.bench_function("untyped_value", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(bytes)).unwrap()))
        });
        g.finish();
    }
}

/// A 2 KiB lifecycle event, signed.
pub fn signed_event() -> (WebhookSecrets, Vec<u8>, String) {
    let mut event = serde_json::json!({"operation":"update","userName":"jdoe@example.com","externalId":"e-1",
        "firstName":"Jane","lastName":"Doe","groups":[{"displayName":"cxone-agent"}],"accountEnabled":true});
    let pad = 2048 - serde_json::to_vec(&event).unwrap().len() - 10;
    event["note"] = Value::String("x".repeat(pad));
    let body = serde_json::to_vec(&event).unwrap();
    assert_eq!(body.len(), 2048);
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let sig = sign(&secret, "msg_bench", 1_700_000_000, &body);
    (WebhookSecrets::parse_list(SECRET).unwrap(), body, sig)
}

fn webhook(c: &mut Criterion) {
    let (secrets, body, sig) = signed_event();
    let headers = SignatureHeaders {
        id: Some("msg_bench"),
        timestamp: Some("1700000000"),
        signature: Some(&sig),
    };
    let policy = policy();
    let mut g = c.benchmark_group("webhook");
    g.bench_function("verify_2KiB", |b| {
        b.iter(|| black_box(verify(&secrets, headers, black_box(&body), 1_700_000_000).unwrap()))
    });
    // Everything the Worker computes for one event, I/O aside: verify, parse, policy, plan.
    g.bench_function("handle_core_2KiB", |b| {
        b.iter(|| {
            verify(&secrets, headers, &body, 1_700_000_000).unwrap();
            let event = LifecycleEvent::from_json(&body).unwrap();
            let (command, _) = event.command(&policy, &Default::default()).unwrap();
            assert!(matches!(command, Command::Upsert { .. }));
            let mut flow = LifecycleFlow::new(
                "https://cxone.example/scim/v2",
                Default::default(),
                command,
                RetryPolicy::default(),
                1,
            );
            black_box(flow.next_step(0))
        })
    });
    g.finish();
}

/// A dry run of ~60,000 minimal users (about 10 MiB of input): one pass, linear in the input.
fn bulk_at_scale(c: &mut Criterion) {
    let policy = policy();
    let users: Vec<BulkUser> = (0..60_000)
        .map(|i| BulkUser {
            user_name: format!("user{i}@example.com"),
            external_id: Some(format!("ext-{i}")),
            first_name: Some("First".into()),
            last_name: Some(format!("Last{i}")),
            email: None,
            groups: None,
            active: true,
        })
        .collect();
    let mut g = c.benchmark_group("bulk_scale");
    g.sample_size(10);
    g.throughput(Throughput::Elements(users.len() as u64));
    g.bench_function("dry_run_60k", |b| {
        b.iter(|| {
            let run = InMemoryRun::new(
                black_box(&users),
                &policy,
                BulkConfig::new("https://cxone.example/scim/v2"),
                0,
            );
            let requests = run.planned_requests();
            assert_eq!(requests.len(), 1200);
            black_box(requests.len())
        })
    });
    g.finish();
}

criterion_group!(benches, versus_python, parse_efficiency, webhook, bulk_at_scale);
criterion_main!(benches);
