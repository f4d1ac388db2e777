use super::*;
use crate::flows::{Flow, Step};
use crate::http::{HttpRequest, HttpResponse};
use crate::policy::RolePolicy;
use crate::retry::RetryPolicy;
use crate::scim::build::{create_payload, DesiredUser};
use crate::testutil::{drive, Fault, SimServer};
use serde_json::Value;
use wasm_bindgen_test::wasm_bindgen_test;

const BASE: &str = "http://cxone.test/scim/v2";

fn policy() -> RolePolicy {
    RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap()
}

fn users(n: usize) -> Vec<BulkUser> {
    (0..n)
        .map(|i| BulkUser {
            user_name: format!("user{i}@example.com"),
            external_id: Some(format!("ext-{i}")),
            first_name: Some("First".into()),
            last_name: Some(format!("Last{i}")),
            email: None,
            groups: Some(vec![crate::policy::GroupInput {
                display_name: Some("cxone-agent".into()),
                id: None,
            }]),
            active: true,
        })
        .collect()
}

/// A run against a server with Bulk (RFC 7644).
fn config(batch: usize) -> BulkConfig {
    BulkConfig {
        batch_size: batch,
        caps: crate::profile::Profile::Rfc7644.capabilities(),
        ..BulkConfig::new(BASE)
    }
}

fn run(server: &mut SimServer, input: &[BulkUser], cfg: BulkConfig) -> BulkReport {
    let mut flow = InMemoryRun::new(input, &policy(), cfg, 11);
    drive(&mut flow, server).0.unwrap()
}

fn outcomes(r: &BulkReport) -> Vec<RowOutcome> {
    r.users.iter().map(|u| u.outcome).collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn creates_everyone_in_batches_and_counts_add_up() {
    let mut s = SimServer::default();
    let r = run(&mut s, &users(23), config(10));
    assert_eq!(s.count(), 23);
    assert_eq!(r.progress.counts.created, 23);
    assert_eq!(r.progress.counts.total(), 23);
    assert!(r.progress.finished);
    let sizes: Vec<usize> = s.bulk_batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 3]);
    // Every report entry carries the CXone id of its user.
    for u in &r.users {
        assert_eq!(s.user(u.id.as_deref().unwrap()).user_name, u.user_name);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn existing_users_are_skipped_or_patched_and_repeats_fold() {
    for precheck in [true, false] {
        let mut s = SimServer::default();
        let mut input = users(6);
        // user0 exists exactly as asked; user1 exists with an old surname.
        let same = serde_json::to_string(&create_payload(&desired_of(&input[0]))).unwrap();
        let kept_id = s.insert(&same);
        let mut stale = desired_of(&input[1]);
        stale.family_name = Some("Old".into());
        let moved_id = s.insert(&serde_json::to_string(&create_payload(&stale)).unwrap());
        input.push(BulkUser {
            user_name: "USER3@example.com".into(),
            ..input[3].clone()
        });
        let r = run(&mut s, &input, BulkConfig { precheck, ..config(50) });
        assert_eq!(
            outcomes(&r)[..3],
            [RowOutcome::Exists, RowOutcome::Updated, RowOutcome::Created],
            "precheck {precheck}"
        );
        assert_eq!(r.users[0].id.as_deref(), Some(kept_id.as_str()));
        assert_eq!(r.users[1].id.as_deref(), Some(moved_id.as_str()));
        assert_eq!(s.user(&moved_id).name.unwrap().family_name.as_deref(), Some("Last1"));
        let repeat = &r.users[6];
        assert_eq!((repeat.outcome, repeat.duplicate_of), (RowOutcome::Exists, Some(3)));
        assert_eq!(repeat.id, r.users[3].id);
        assert_eq!(s.count(), 6);
        let sent: Vec<String> = s.bulk_batches.concat();
        assert!(!sent.contains(&"u-6".to_string()), "a repeat is never sent");
        // With the pre-check an existing user is not even tried; without it, its create is
        // refused with 409 and the user is read.
        assert_eq!(sent.contains(&"u-0".to_string()), !precheck);
    }
}

fn desired_of(u: &BulkUser) -> DesiredUser {
    match u
        .as_event()
        .command(&policy(), &crate::policy::RoleTarget::Roles)
        .unwrap()
        .0
    {
        crate::event::Command::Upsert { desired, .. } => *desired,
        _ => unreachable!(),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn invalid_users_fail_alone_with_a_scim_type() {
    let mut s = SimServer::default();
    let mut input = users(4);
    input[1].email = Some("not-an-email".into());
    input[2].groups = Some(vec![crate::policy::GroupInput {
        display_name: Some("Finance".into()),
        id: None,
    }]);
    let r = run(&mut s, &input, config(50));
    assert_eq!(
        outcomes(&r),
        [
            RowOutcome::Created,
            RowOutcome::Failed,
            RowOutcome::Failed,
            RowOutcome::Created
        ]
    );
    assert_eq!(
        (r.users[1].status, r.users[1].scim_type.as_deref()),
        (Some(400), Some("invalidValue"))
    );
    assert!(r.users[2].detail.as_deref().unwrap().contains("RBAC violation"));
    // A server-side rejection of one operation is reported with the server's scimType.
    let mut s = SimServer::default();
    s.queue_bulk_statuses(&[Some(400)]);
    let r = run(
        &mut s,
        &users(3),
        BulkConfig {
            precheck: false,
            ..config(50)
        },
    );
    assert_eq!(
        outcomes(&r),
        [RowOutcome::Failed, RowOutcome::Created, RowOutcome::Created]
    );
    assert_eq!(r.users[0].status, Some(400));
}

#[wasm_bindgen_test(unsupported = test)]
fn only_retryable_operations_are_resent() {
    let mut s = SimServer::default();
    let input = users(4);
    let mut flow = InMemoryRun::new(
        &input,
        &policy(),
        BulkConfig {
            precheck: false,
            ..config(50)
        },
        3,
    );
    // First op passes, second gets 503, third passes, fourth gets 429.
    s.queue_bulk_statuses(&[None, Some(503), None, Some(429)]);
    let r = drive(&mut flow, &mut s).0.unwrap();
    assert_eq!(r.progress.counts.created, 4);
    assert_eq!(s.bulk_batches, [vec!["u-0", "u-1", "u-2", "u-3"], vec!["u-1", "u-3"]]);
    assert_eq!(s.count(), 4);
}

#[wasm_bindgen_test(unsupported = test)]
fn out_of_order_207_answers_are_correlated() {
    let mut s = SimServer::default();
    s.bulk_status = 207;
    s.bulk_reversed = true;
    s.queue_bulk_statuses(&[Some(503), None, None, None, None]);
    let r = run(
        &mut s,
        &users(5),
        BulkConfig {
            precheck: false,
            ..config(50)
        },
    );
    assert_eq!(r.progress.counts.created, 5);
    // Only u-0 was resent, although its result came back last.
    assert_eq!(s.bulk_batches[1], ["u-0"]);
    for u in &r.users {
        assert_eq!(
            s.user(u.id.as_deref().unwrap()).user_name,
            u.user_name,
            "ids belong to the right users"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn whole_request_429_pauses_then_resends() {
    let mut s = SimServer::default();
    s.fail_next(Fault::Status(429, Some("3")));
    let mut flow = InMemoryRun::new(
        &users(5),
        &policy(),
        BulkConfig {
            precheck: false,
            ..config(50)
        },
        5,
    );
    // The first request is the ServiceProviderConfig read; the 429 hits it and is retried.
    let (r, elapsed) = drive(&mut flow, &mut s);
    assert_eq!(r.unwrap().progress.counts.created, 5);
    assert!(elapsed >= 3000, "Retry-After honoured ({elapsed} ms)");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_unanswered_create_that_landed_is_reported_created_once() {
    let mut s = SimServer::default();
    s.queue_bulk_statuses(&[None, None]);
    // The server applies u-1 but leaves it out of the answer.
    s.drop_result_of_bulk_op(1);
    let r = run(&mut s, &users(3), config(50));
    assert_eq!(outcomes(&r), [RowOutcome::Created; 3]);
    assert_eq!(s.count(), 3);
    assert!(r.users[1].id.is_some());
}

/// Runs `flow` until its `nth` Bulk request has been written ahead and sent, lets the server
/// apply it, then "crashes": the answer is lost, and the flow comes back from the rows as stored
/// just before the send.
fn crash_at_bulk(flow: &mut InMemoryRun, s: &mut SimServer, nth: usize, mut now: u64) -> InMemoryRun {
    let mut sent_bulks = 0;
    loop {
        match flow.next_step(now) {
            Step::Send(req) => {
                let checkpoint = serde_json::to_string(&*flow).unwrap();
                let resp = s.handle(&req).unwrap();
                if req.url.ends_with("/Bulk") {
                    sent_bulks += 1;
                    if sent_bulks == nth {
                        return serde_json::from_str(&checkpoint).unwrap();
                    }
                }
                flow.on_response(resp, now);
            }
            Step::SendAll(_) => panic!("a server with Bulk gets Bulk requests"),
            Step::Wait { until } => now = until,
            Step::Done(_) => panic!("finished before the crash"),
        }
        now += 5;
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_restart_mid_batch_resumes_from_the_checkpoint_without_duplicates() {
    for precheck in [true, false] {
        let mut s = SimServer::default();
        let input = users(12);
        let mut flow = InMemoryRun::new(&input, &policy(), BulkConfig { precheck, ..config(5) }, 9);
        let mut resumed = crash_at_bulk(&mut flow, &mut s, 2, 1_000_000);
        assert_eq!(s.count(), 10, "two batches landed");
        let r = drive(&mut resumed, &mut s).0.unwrap();
        assert_eq!(
            r.progress.counts.created, 12,
            "precheck {precheck}: {:?}",
            r.progress.counts
        );
        assert_eq!(s.count(), 12);
        // The five of the lost answer were read, not sent again.
        let sent: Vec<String> = s.bulk_batches.concat();
        assert_eq!(sent.iter().filter(|id| *id == "u-5").count(), 1, "{:?}", s.bulk_batches);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_user_that_was_there_before_the_run_is_not_claimed_after_a_lost_answer() {
    let mut s = SimServer::default();
    let input = users(2);
    // user1 was created long before the run, with the externalId the input gives it.
    let mut before: Value = serde_json::to_value(create_payload(&desired_of(&input[1]))).unwrap();
    before["meta"] = serde_json::json!({"created": "2020-01-01T00:00:00Z"});
    s.insert(&before.to_string());
    let mut flow = InMemoryRun::new(&input, &policy(), config(50), 4);
    let mut resumed = crash_at_bulk(&mut flow, &mut s, 1, 1_700_000_000_000);
    let r = drive(&mut resumed, &mut s).0.unwrap();
    assert_eq!(outcomes(&r), [RowOutcome::Created, RowOutcome::Exists]);
}

#[wasm_bindgen_test(unsupported = test)]
fn server_limits_shape_the_batches() {
    let mut s = SimServer::default();
    s.max_operations = 4;
    run(&mut s, &users(9), config(50));
    assert_eq!(s.bulk_batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 1]);
    let mut s = SimServer::default();
    s.max_payload = 2500;
    let r = run(&mut s, &users(9), config(50));
    assert_eq!(r.progress.counts.created, 9);
    // The simulator answers 413 above the limit: none means every batch fitted.
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(s.bulk_batches.len() >= 2, "payload limit splits: {:?}", s.bulk_batches);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_413_halves_the_batch() {
    let mut s = SimServer::default();
    s.max_payload = 3000;
    // The server does not advertise the limit it enforces.
    s.hide_limits();
    let r = run(
        &mut s,
        &users(8),
        BulkConfig {
            precheck: false,
            ..config(8)
        },
    );
    assert_eq!(r.progress.counts.created, 8);
    assert!(r.errors.iter().any(|e| e.contains("413")), "{:?}", r.errors);
}

#[wasm_bindgen_test(unsupported = test)]
fn persistent_failures_end_with_the_last_status_after_the_budget() {
    let mut s = SimServer::default();
    s.queue_bulk_statuses(&[Some(503), None, Some(503), Some(503), Some(503)]);
    let cfg = BulkConfig {
        precheck: false,
        retry: RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        },
        ..config(50)
    };
    let r = run(&mut s, &users(2), cfg);
    assert_eq!(outcomes(&r), [RowOutcome::Failed, RowOutcome::Created]);
    assert_eq!(r.users[0].status, Some(503));
    assert!(r.users[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("gave up after 4 attempts"));
    assert_eq!(s.bulk_batches.len(), 4);
}

#[wasm_bindgen_test(unsupported = test)]
fn dry_run_plans_without_sending() {
    let flow = InMemoryRun::new(&users(120), &policy(), config(50), 1);
    let plan = flow.dry_run().requests;
    assert_eq!(plan.len(), 3);
    let body = &plan[2].body;
    assert_eq!(body["Operations"].as_array().unwrap().len(), 20);
    assert_eq!(body["Operations"][0]["bulkId"], "u-100");
    assert!(!flow.progress().finished);
    let mut input = users(3);
    input[1].email = Some("nope".into());
    let dry = InMemoryRun::new(&input, &policy(), config(50), 1).dry_run();
    assert_eq!(dry.requests.len(), 1);
    assert_eq!(dry.requests[0].body["Operations"].as_array().unwrap().len(), 2);
    assert_eq!(dry.rejected.iter().map(|u| u.index).collect::<Vec<_>>(), [1]);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_rate_limit_is_learned_instead_of_hammered() {
    let mut s = SimServer::default();
    s.limit_rate(2.0, 2.0);
    // A 50-user Bulk request takes scim2-server about this long: faster than the limit allows.
    s.service_ms = 280;
    let retry = RetryPolicy {
        max_attempts: 20,
        ..RetryPolicy::default()
    };
    let cfg = BulkConfig {
        precheck: false,
        retry,
        ..config(5)
    };
    let mut flow = InMemoryRun::new(&users(300), &policy(), cfg, 3);
    let (r, elapsed) = drive(&mut flow, &mut s);
    let r = r.unwrap();
    assert_eq!(r.progress.counts.created, 300);
    // 60 Bulk requests + 1 ServiceProviderConfig read at 2/s after a burst of 2.
    let ideal_ms = (61 - 2) * 500;
    let share = ideal_ms as f64 / elapsed as f64;
    assert!(
        share >= 0.8,
        "achieved {:.0} % of the rate limit ({elapsed} ms, {} throttled)",
        share * 100.0,
        s.throttled
    );
    assert!(s.throttled <= 8, "{} requests were throttled", s.throttled);
}

#[wasm_bindgen_test(unsupported = test)]
fn an_account_of_another_external_id_is_a_conflict_never_patched() {
    for precheck in [true, false] {
        let mut s = SimServer::default();
        let input = users(3);
        let theirs = s.insert(r#"{"userName":"user1@example.com","externalId":"someone-else","active":false}"#);
        let r = run(&mut s, &input, BulkConfig { precheck, ..config(50) });
        assert_eq!(
            outcomes(&r),
            [RowOutcome::Created, RowOutcome::Conflict, RowOutcome::Created],
            "precheck {precheck}"
        );
        assert_eq!(r.progress.counts.conflict, 1);
        assert_eq!(r.progress.counts.total(), 3);
        assert_eq!(r.users[1].id.as_deref(), Some(theirs.as_str()));
        let u = s.user(&theirs);
        assert_eq!(
            (u.external_id.as_deref(), u.active),
            (Some("someone-else"), Some(false))
        );
        assert!(!s.log().iter().any(|l| l.starts_with("PATCH")), "{:?}", s.log());
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn an_account_with_an_unusable_id_fails_its_row_and_is_never_patched() {
    for precheck in [true, false] {
        for id in ["", ".", "..", "a/b", "a?b", "%2e", "a\tb"] {
            let mut s = SimServer::default();
            let input = users(3);
            let mut stale = desired_of(&input[1]);
            stale.family_name = Some("Old".into());
            s.insert_as(id, &serde_json::to_string(&create_payload(&stale)).unwrap());
            let r = run(&mut s, &input, BulkConfig { precheck, ..config(50) });
            assert_eq!(
                outcomes(&r),
                [RowOutcome::Created, RowOutcome::Failed, RowOutcome::Created],
                "precheck {precheck} {id:?}"
            );
            let row = &r.users[1];
            assert_eq!(row.status, Some(502));
            assert!(
                row.detail
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("CXone answered an unusable id"),
                "{row:?}"
            );
            // Its create only (without the pre-check, answered 409), never a PATCH.
            let sent = s.bulk_batches.concat().iter().filter(|b| *b == "u-1").count();
            assert_eq!(sent, usize::from(!precheck), "precheck {precheck} {id:?}");
            let kept = s
                .users()
                .into_iter()
                .find(|u| u.user_name == "user1@example.com")
                .unwrap();
            assert_eq!(kept.name.unwrap().family_name.as_deref(), Some("Old"));
        }
    }
}

/// What RFC 7644 §3.7.3 allows: bulkId on POST results only. The PATCH results carry the
/// location of the user they updated, and the whole answer comes back in reverse order.
fn without_patch_bulk_ids(req: &HttpRequest, resp: HttpResponse) -> HttpResponse {
    let sent: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    let mut answer: Value = serde_json::from_str(&resp.body).unwrap();
    let results = answer["Operations"].as_array_mut().unwrap();
    for (op, result) in sent["Operations"].as_array().unwrap().iter().zip(results.iter_mut()) {
        if op["method"] == "PATCH" {
            let result = result.as_object_mut().unwrap();
            result.remove("bulkId");
            result.insert(
                "location".into(),
                Value::String(format!("{BASE}{}", op["path"].as_str().unwrap())),
            );
        }
    }
    results.reverse();
    HttpResponse::new(resp.status, answer.to_string())
}

#[wasm_bindgen_test(unsupported = test)]
fn patch_results_without_bulk_ids_are_not_sent_again() {
    let mut s = SimServer::default();
    let input = users(6);
    for u in &input[..3] {
        let mut stale = desired_of(u);
        stale.family_name = Some("Old".into());
        s.insert(&serde_json::to_string(&create_payload(&stale)).unwrap());
    }
    let mut flow = InMemoryRun::new(
        &input,
        &policy(),
        BulkConfig {
            precheck: true,
            ..config(50)
        },
        3,
    );
    let mut now = 1_000_000;
    let report = loop {
        match flow.next_step(now) {
            Step::Send(req) => {
                let resp = s.handle(&req).unwrap();
                let resp = if req.url.ends_with("/Bulk") {
                    without_patch_bulk_ids(&req, resp)
                } else {
                    resp
                };
                flow.on_response(resp, now);
            }
            Step::SendAll(_) => panic!("a server with Bulk gets Bulk requests"),
            Step::Wait { until } => now = until,
            Step::Done(r) => break r.unwrap(),
        }
        now += 5;
    };
    assert_eq!(
        outcomes(&report),
        [
            RowOutcome::Updated,
            RowOutcome::Updated,
            RowOutcome::Updated,
            RowOutcome::Created,
            RowOutcome::Created,
            RowOutcome::Created
        ]
    );
    assert_eq!(s.bulk_batches.len(), 1, "{:?}", s.bulk_batches);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

fn bare_run(batch: usize) -> BulkRun {
    let pending = Counts {
        pending: 3,
        ..Counts::default()
    };
    BulkRun::new(config(batch), 3, pending, 1)
}

#[wasm_bindgen_test(unsupported = test)]
fn service_provider_config_read_leniently() {
    let mut flow = bare_run(50);
    flow.on_discovered(&HttpResponse::new(
        200,
        r#"{"bulk":{"supported":"true","maxOperations":"7","maxPayloadSize":65536}}"#,
    ));
    assert_eq!((flow.config().batch_size, flow.config().max_payload_bytes), (7, 65_536));
    // Limits above ours, or not stated, leave ours alone.
    let mut flow = bare_run(5);
    flow.on_discovered(&HttpResponse::new(
        200,
        r#"{"bulk":{"maxOperations":1000,"maxPayloadSize":0}}"#,
    ));
    assert_eq!(
        (flow.config().batch_size, flow.config().max_payload_bytes),
        (5, BulkConfig::new(BASE).max_payload_bytes)
    );
    // An unreadable document or another status: defaults, and the run goes on.
    for resp in [
        HttpResponse::new(200, "<html>"),
        HttpResponse::new(404, r#"{"bulk":{"supported":false}}"#),
    ] {
        let mut flow = bare_run(5);
        flow.on_discovered(&resp);
        assert!(!flow.is_finished());
        assert_eq!(flow.config().batch_size, 5);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_server_whose_configuration_says_no_bulk_gets_one_request_per_user() {
    let mut input = users(3);
    input[2].user_name = String::new();
    let mut flow = InMemoryRun::new(&input, &policy(), config(50), 1);
    let Step::Send(req) = flow.next_step(1_000) else {
        panic!("expected the discovery request")
    };
    assert!(req.url.ends_with("/ServiceProviderConfig"));
    flow.on_response(HttpResponse::new(200, r#"{"bulk":{"supported":"False"}}"#), 1_010);
    let mut s = SimServer::default();
    let r = drive(&mut flow, &mut s).0.unwrap();
    // The invalid user keeps its own failure.
    assert_eq!(
        outcomes(&r),
        [RowOutcome::Created, RowOutcome::Created, RowOutcome::Failed]
    );
    assert_eq!(s.log(), ["POST /scim/v2/Users", "POST /scim/v2/Users"]);
    assert_eq!((r.progress.bulk_requests, r.progress.user_writes), (0, 2));
}

/// A run on a CXone as NICE publishes it.
fn cxone_config() -> BulkConfig {
    BulkConfig {
        batch_size: 50,
        ..BulkConfig::new(BASE)
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_every_user_is_one_request_and_nothing_asks_for_bulk() {
    for precheck in [true, false] {
        let mut s = SimServer::cxone();
        let mut input = users(5);
        // user0 is there as asked, user1 under another externalId (a recycled userName).
        let same = serde_json::to_string(&create_payload(&desired_of(&input[0]))).unwrap();
        let kept = s.insert(&same);
        s.insert(r#"{"userName":"user1@example.com","externalId":"someone-else","active":true}"#);
        input[4].last_name = None;
        let r = run(
            &mut s,
            &input,
            BulkConfig {
                precheck,
                ..cxone_config()
            },
        );
        assert_eq!(
            outcomes(&r),
            [
                RowOutcome::Exists,
                RowOutcome::Conflict,
                RowOutcome::Created,
                RowOutcome::Created,
                RowOutcome::Failed
            ],
            "precheck {precheck}"
        );
        assert_eq!(r.users[0].id.as_deref(), Some(kept.as_str()));
        // A joiner without a family name: refused before anything is sent.
        assert_eq!(
            (r.users[4].status, r.users[4].scim_type.as_deref()),
            (Some(422), Some("invalidValue"))
        );
        assert!(
            s.log()
                .iter()
                .all(|l| l == "POST /scim/v2/Users" || l == "GET /scim/v2/Users"),
            "{:?}",
            s.log()
        );
        assert!(
            s.filters
                .iter()
                .all(|f| f.starts_with("userName eq ") && !f.contains(" or ")),
            "{:?}",
            s.filters
        );
        assert_eq!(s.count(), 4, "two created, nobody twice");
        assert_eq!(r.progress.bulk_requests, 0);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_bulk_answered_404_is_asked_once_then_every_user_goes_alone() {
    let mut s = SimServer::cxone();
    let r = run(&mut s, &users(4), config(50));
    assert_eq!(outcomes(&r), [RowOutcome::Created; 4]);
    let bulk = s.log().iter().filter(|l| l.ends_with("/Bulk")).count();
    assert_eq!(bulk, 1, "{:?}", s.log());
    assert_eq!((r.progress.bulk_requests, r.progress.user_writes, s.count()), (1, 4, 4));
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_restart_after_a_create_landed_unanswered_reads_before_sending_again() {
    let mut s = SimServer::cxone();
    let input = users(4);
    let mut flow = InMemoryRun::new(
        &input,
        &policy(),
        BulkConfig {
            precheck: false,
            lanes: 2,
            ..cxone_config()
        },
        9,
    );
    let mut now = 1_000_000;
    let mut groups = 0;
    // The second pair of creates lands, its answers are lost with the invocation.
    let mut resumed = loop {
        match flow.next_step(now) {
            Step::SendAll(reqs) => {
                assert!(reqs.iter().all(|r| r.method == crate::http::Method::Post), "{reqs:?}");
                let checkpoint = serde_json::to_string(&flow).unwrap();
                let answers: Vec<_> = reqs.iter().map(|r| s.handle(r)).collect();
                groups += 1;
                if groups == 2 {
                    break serde_json::from_str::<InMemoryRun>(&checkpoint).unwrap();
                }
                flow.on_answers(answers, now);
            }
            Step::Send(req) => panic!("one request per user, sent together: {req:?}"),
            Step::Wait { until } => now = until,
            Step::Done(_) => panic!("finished before the crash"),
        }
        now += 5;
    };
    assert_eq!(s.count(), 4, "all four landed");
    let r = drive(&mut resumed, &mut s).0.unwrap();
    assert_eq!(outcomes(&r), [RowOutcome::Created; 4]);
    assert_eq!(s.count(), 4, "nobody created twice");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_request_the_host_could_not_send_is_sent_later_without_a_lookup() {
    let mut s = SimServer::default();
    let input = users(10);
    let mut flow = InMemoryRun::new(&input, &policy(), config(5), 2);
    let mut now = 1_000;
    // The host's budget runs out just as the first Bulk request is stepped.
    loop {
        match flow.next_step(now) {
            Step::Send(req) if req.url.ends_with("/Bulk") => break,
            Step::Send(req) => {
                let resp = s.handle(&req).unwrap();
                flow.on_response(resp, now);
            }
            Step::SendAll(_) => panic!("a server with Bulk gets Bulk requests"),
            Step::Wait { until } => now = until,
            Step::Done(_) => panic!("finished before anything was sent"),
        }
        now += 5;
    }
    flow.unsend();
    let stored = serde_json::to_string(&flow).unwrap();
    let mut resumed: InMemoryRun = serde_json::from_str(&stored).unwrap();
    let r = drive(&mut resumed, &mut s).0.unwrap();
    assert_eq!(r.progress.counts.created, 10);
    assert_eq!(r.progress.lookups, 0, "nothing to read: the rows were never sent");
    assert_eq!(s.bulk_batches.len(), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn one_external_id_under_two_user_names_is_refused_not_merged() {
    let mut s = SimServer::default();
    let mut input = users(3);
    input[2].external_id = input[0].external_id.clone();
    let r = run(&mut s, &input, config(50));
    assert_eq!(
        outcomes(&r),
        [RowOutcome::Created, RowOutcome::Created, RowOutcome::Failed]
    );
    assert_eq!(r.users[2].scim_type.as_deref(), Some("uniqueness"));
    assert_eq!(s.count(), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn one_user_name_under_two_external_ids_is_refused_not_merged() {
    let mut s = SimServer::default();
    let mut input = users(4);
    // Another person's row under user0's userName (in another case), and one with no externalId.
    input[2].user_name = "USER0@example.com".into();
    input[3].user_name = "user1@example.com".into();
    input[3].external_id = None;
    // A true repeat of user1 stays a repeat.
    input.push(input[1].clone());
    let r = run(&mut s, &input, config(50));
    assert_eq!(
        outcomes(&r),
        [
            RowOutcome::Created,
            RowOutcome::Created,
            RowOutcome::Failed,
            RowOutcome::Failed,
            RowOutcome::Exists
        ]
    );
    for refused in &r.users[2..4] {
        assert_eq!(refused.scim_type.as_deref(), Some("uniqueness"));
        assert!(
            refused
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("another externalId"),
            "{refused:?}"
        );
    }
    assert_eq!(r.users[4].duplicate_of, Some(1));
    assert_eq!(s.count(), 2);
    let ids: Vec<Option<String>> = s.users().into_iter().map(|u| u.external_id).collect();
    assert_eq!(ids, [Some("ext-0".to_string()), Some("ext-1".to_string())]);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_bulk_request_that_kept_timing_out_is_read_not_failed() {
    let mut s = SimServer::default();
    let input = users(3);
    let retry = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let mut flow = InMemoryRun::new(&input, &policy(), BulkConfig { retry, ..config(50) }, 6);
    let mut now = 1_000;
    let mut bulk_tries = 0;
    let r = loop {
        match flow.next_step(now) {
            Step::Send(req) if req.url.ends_with("/Bulk") && bulk_tries < 2 => {
                // The server applies the batch, but its answer never arrives.
                bulk_tries += 1;
                let _ = s.handle(&req).unwrap();
                flow.on_transport_error(crate::http::TransportError("no answer within 60 s".into()), now);
            }
            Step::Send(req) => {
                let resp = s.handle(&req).unwrap();
                flow.on_response(resp, now);
            }
            Step::SendAll(_) => panic!("a server with Bulk gets Bulk requests"),
            Step::Wait { until } => now = until,
            Step::Done(r) => break r.unwrap(),
        }
        now += 5;
    };
    assert_eq!(outcomes(&r), [RowOutcome::Created; 3], "{:?}", r.users);
    assert_eq!(s.count(), 3);
}

#[wasm_bindgen_test(unsupported = test)]
fn rows_that_wrote_or_failed_have_an_audit_record_and_the_others_none() {
    let policy = policy();
    let mut intake = Intake::new(&policy, &crate::policy::RoleTarget::Roles, false);
    let input = users(3);
    let mut created = intake.take(&input[0]);
    assert!(created.audit_draft(5, 9).is_none(), "pending: nothing written yet");
    created.finish(RowOutcome::Created, Some("cx-0".into()));
    let draft = created.audit_draft(5, 9).unwrap();
    assert_eq!(draft.action, Some(crate::flows::Action::Created));
    assert_eq!(draft.trigger, crate::audit::Trigger::Bulk);
    assert_eq!(draft.who.cxone_id.as_deref(), Some("cx-0"));
    assert_eq!(draft.who.external_id.as_deref(), Some("ext-0"));
    assert_eq!(draft.roles_after, ["Agent"]);
    assert_eq!((draft.at, draft.latency_ms), (5, 9));
    assert_eq!(draft.payload_sha256.len(), 64);
    let mut exists = intake.take(&input[1]);
    exists.finish(RowOutcome::Exists, Some("cx-1".into()));
    assert!(exists.audit_draft(5, 9).is_none(), "already as asked: no write");
    let mut failed = intake.take(&input[2]);
    failed.finish(RowOutcome::Failed, None);
    let draft = failed.audit_draft(5, 9).unwrap();
    assert_eq!((draft.action, draft.outcome), (None, crate::audit::Outcome::Failure));
    assert!(draft.roles_after.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn an_updated_row_records_the_roles_the_account_held_before() {
    let policy = policy();
    let primary = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole";
    let input = users(1);
    let account: crate::scim::User = serde_json::from_str(
        r#"{"id":"cx-0","userName":"user0@example.com","externalId":"ext-0","roles":[{"value":"Supervisor"}],
            "urn:ietf:params:scim:schemas:extension:cxone:2.0:User":{"primaryRole":"Admin"}}"#,
    )
    .unwrap();
    for (target, before) in [
        (crate::policy::RoleTarget::Roles, "Supervisor"),
        (crate::policy::RoleTarget::parse(primary).unwrap(), "Admin"),
    ] {
        let mut intake = Intake::new(&policy, &target, true);
        let mut row = intake.take(&input[0]);
        let judging = super::lookup::Judging {
            run_started: 0,
            max_attempts: 4,
            can_delete: true,
        };
        super::lookup::resolve(&mut row, std::slice::from_ref(&account), &judging);
        assert!(matches!(row.stage, super::entry::Stage::Patch { .. }), "{target}");
        row.finish(RowOutcome::Updated, None);
        let draft = row.audit_draft(5, 9).unwrap();
        assert_eq!(draft.roles_before, [before], "{target}");
        assert_eq!(draft.roles_after, ["Agent"], "{target}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn lookup_pages_that_end_before_the_count_write_nothing() {
    for precheck in [true, false] {
        // Ten users already there, more than one page (the simulator lists 7 at most), on a
        // server that answers every page from the first.
        let input = users(10);
        let mut s = SimServer::default();
        for u in &input {
            s.insert(&serde_json::to_string(&create_payload(&desired_of(u))).unwrap());
        }
        s.ignore_start_index = true;
        let r = run(&mut s, &input, BulkConfig { precheck, ..config(50) });
        assert!(
            outcomes(&r).iter().all(|o| *o == RowOutcome::Conflict),
            "precheck {precheck}: {:?}",
            outcomes(&r)
        );
        assert!(
            r.users[0].detail.as_deref().unwrap_or_default().contains("counted 10"),
            "{:?}",
            r.users[0]
        );
        assert!(!s.log().iter().any(|l| l.starts_with("PATCH")), "{:?}", s.log());
        assert_eq!(s.count(), 10);
        // The same server paging properly: every user is found as it is.
        let mut s = SimServer::default();
        for u in &input {
            s.insert(&serde_json::to_string(&create_payload(&desired_of(u))).unwrap());
        }
        let r = run(&mut s, &input, BulkConfig { precheck, ..config(50) });
        assert!(
            outcomes(&r).iter().all(|o| *o == RowOutcome::Exists),
            "precheck {precheck}: {:?}",
            outcomes(&r)
        );
    }
}

// ---- rows through their people's ledgers ------------------------------------------------

use crate::ledger::{self, Decision as LedgerDecision, PersonState, SeenDelivery as LedgerDelivery};
use std::collections::HashMap;

/// The people's ledgers, under the ledger's own rules (`ledger::decide`, `ledger::commit`).
#[derive(Default)]
struct Ledgers {
    people: HashMap<String, PersonState>,
    deliveries: HashMap<(String, String), LedgerDelivery>,
    asked: Vec<String>,
}

impl Ledgers {
    fn begin(&mut self, ask: &HoldAsk, now: u64) -> HoldAnswer {
        self.asked.push(ask.key.clone());
        let key = ask.key.clone();
        let person = self.people.entry(key.clone()).or_default();
        let seen_key = (key.clone(), ask.facts.event_id.clone());
        let delivery = self.deliveries.get(&seen_key).cloned();
        let decision = ledger::decide(
            person,
            delivery.as_ref(),
            &ask.facts,
            now,
            ask.lease_ms,
            &ask.lease_token,
        );
        if let LedgerDecision::Go { lease, .. } = &decision {
            person.lease = Some(lease.clone());
        }
        let kept = self.deliveries.entry(seen_key).or_insert(LedgerDelivery {
            first_seen: now,
            body_digest: ask.facts.body_digest.clone(),
            answer: None,
        });
        if let Some(answer) = decision.answer_to_keep() {
            kept.answer = Some(answer.clone());
        }
        HoldAnswer {
            index: ask.index,
            ledger: key,
            decision,
        }
    }

    fn commit(&mut self, r: &Release) {
        let person = self.people.entry(r.ledger.clone()).or_default();
        *person = ledger::commit(person, &r.commit).person;
        if let Some(answer) = &r.commit.answer {
            if let Some(d) = self.deliveries.get_mut(&(r.ledger.clone(), r.commit.event_id.clone())) {
                d.answer = Some(answer.clone());
            }
        }
    }

    fn person(&self, ext: &str) -> PersonState {
        self.people.get(&format!("ext:{ext}")).cloned().unwrap_or_default()
    }
}

/// Runs `input` as the Worker does: rows stored apart, holds asked before each step, released
/// after each answer. Returns the rows and the Bulk operations each step sent.
fn run_held(s: &mut SimServer, ledgers: &mut Ledgers, input: &[BulkUser], now: u64) -> Vec<Entry> {
    run_held_with(s, ledgers, input, now, config(10))
}

/// [`run_held`] on a run configured as `cfg` (every row held).
fn run_held_with(
    s: &mut SimServer,
    ledgers: &mut Ledgers,
    input: &[BulkUser],
    mut now: u64,
    cfg: BulkConfig,
) -> Vec<Entry> {
    let policy = policy();
    let mut intake = Intake::new(&policy, &crate::policy::RoleTarget::Roles, false);
    let mut rows: Vec<Entry> = input.iter().map(|u| intake.take(u)).collect();
    let cfg = BulkConfig { hold_rows: true, ..cfg };
    let mut run = BulkRun::new(cfg, rows.len(), intake.counts(), 7);
    for _ in 0..10_000 {
        if let Some(want) = run.rows_wanted() {
            let batch: Vec<(usize, Entry)> = rows
                .iter()
                .enumerate()
                .filter(|(i, e)| *i >= want.from && e.is_pending())
                .take(want.limit)
                .map(|(i, e)| (i, e.clone()))
                .collect();
            run.load(batch, want);
        }
        let asks = run.holds_wanted(now, "bulk:r1");
        if !asks.is_empty() {
            let answers = asks.iter().map(|a| ledgers.begin(a, now)).collect();
            run.on_holds(answers, &asks, now);
        }
        match run.next_step(now) {
            Step::Send(req) => {
                match s.handle(&req) {
                    Ok(resp) => run.on_response(resp, now + 5),
                    Err(e) => run.on_transport_error(e, now + 5),
                }
                for r in run.take_releases() {
                    ledgers.commit(&r);
                }
            }
            Step::SendAll(reqs) => {
                s.now_for_tests(now);
                let answers = reqs.iter().map(|r| s.handle(r)).collect();
                run.on_answers(answers, now + 5);
                for r in run.take_releases() {
                    ledgers.commit(&r);
                }
            }
            Step::Wait { until } => now = until.max(now),
            Step::Done(_) => {
                for (i, e) in run.take_writes() {
                    rows[i] = e;
                }
                return rows;
            }
        }
        for (i, e) in run.take_writes() {
            rows[i] = e;
        }
        now += 10;
    }
    panic!("the run never finished");
}

#[wasm_bindgen_test(unsupported = test)]
fn every_row_goes_through_its_persons_ledger_and_gives_it_back() {
    let mut s = SimServer::default();
    let mut ledgers = Ledgers::default();
    let rows = run_held(&mut s, &mut ledgers, &users(23), T0_BULK);
    assert!(
        rows.iter().all(|e| e.outcome() == Some(RowOutcome::Created)),
        "{rows:?}"
    );
    assert_eq!(s.count(), 23);
    for (i, e) in rows.iter().enumerate() {
        let person = ledgers.person(&format!("ext-{i}"));
        assert_eq!(person.lease, None, "row {i} still holds its person");
        assert_eq!(person.cxone_id.as_deref(), e.id(), "row {i}");
        let last = person.last.expect("the row's create is the person's mark");
        assert_eq!(
            (last.operation, last.event_id),
            (crate::event::Operation::Create, format!("bulk:r1:{i}"))
        );
        assert!(e.hold.is_none());
    }
    assert_eq!(ledgers.asked.len(), 23, "one hold per row: {:?}", ledgers.asked);
}

const T0_BULK: u64 = 1_800_000_000_000;

fn mark(at: u64, operation: crate::event::Operation, id: &str) -> PersonState {
    let last = ledger::LastApplied {
        at,
        operation,
        event_id: id.into(),
    };
    PersonState {
        last: Some(last.clone()),
        last_status: Some(last),
        cxone_id: None,
        lease: None,
        alias_of: None,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn an_event_applied_since_the_run_began_comes_first_and_a_deleted_person_can_be_disabled_again() {
    use crate::event::Operation;
    let mut s = SimServer::default();
    let mut ledgers = Ledgers::default();
    // ext-1 was disabled by a webhook after the run began; ext-2 was deleted before it.
    ledgers.people.insert(
        "ext:ext-1".into(),
        mark(T0_BULK + 60_000, Operation::Disable, "m-disable"),
    );
    ledgers.people.insert(
        "ext:ext-2".into(),
        mark(T0_BULK - 60_000, Operation::Delete, "m-delete"),
    );
    let rows = run_held(&mut s, &mut ledgers, &users(3), T0_BULK);
    assert_eq!(rows[0].outcome(), Some(RowOutcome::Created));
    assert_eq!(rows[1].outcome(), Some(RowOutcome::Stale));
    assert!(
        rows[1].detail.as_deref().unwrap_or_default().contains("m-disable"),
        "{:?}",
        rows[1]
    );
    assert!(
        s.users().iter().all(|u| u.user_name != "user1@example.com"),
        "a stale row is never sent"
    );
    // The deleted person is created again, and the run's create lifts the tombstone.
    assert_eq!(rows[2].outcome(), Some(RowOutcome::Created));
    let person = ledgers.person("ext-2");
    assert!(!person.is_tombstoned());
    assert_eq!(person.cxone_id.as_deref(), rows[2].id());
    let disable = ledger::EventFacts {
        event_id: "m-later-disable".into(),
        body_digest: "d".into(),
        operation: Operation::Disable,
        occurred_at: Some(T0_BULK + 120_000),
        replay: false,
        keeps_status: false,
    };
    let d = ledger::decide(&person, None, &disable, T0_BULK + 120_000, 30_000, "t");
    assert!(matches!(d, LedgerDecision::Go { known_id: Some(_), .. }), "{d:?}");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_row_waits_while_its_person_is_held_by_another_delivery() {
    let mut s = SimServer::default();
    let mut ledgers = Ledgers::default();
    let held_until = T0_BULK + 20_000;
    ledgers.people.insert(
        "ext:ext-0".into(),
        PersonState {
            lease: Some(ledger::Lease {
                holder: "m-webhook".into(),
                token: "other".into(),
                until: held_until,
            }),
            ..PersonState::default()
        },
    );
    let rows = run_held(&mut s, &mut ledgers, &users(2), T0_BULK);
    assert_eq!(
        rows.iter().filter(|e| e.outcome() == Some(RowOutcome::Created)).count(),
        2
    );
    let first = ledgers.asked.iter().filter(|k| *k == "ext:ext-0").count();
    assert!(first >= 2, "asked again after the busy answer: {:?}", ledgers.asked);
    // Sent in a later request than the free row, after the other delivery's lease ran out.
    assert_eq!(s.bulk_batches.len(), 2, "{:?}", s.bulk_batches);
    assert_eq!(s.bulk_batches[1], ["u-0"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn no_try_of_a_bulk_request_starts_once_a_hold_would_run_out_during_it() {
    let policy = policy();
    let mut intake = Intake::new(&policy, &crate::policy::RoleTarget::Roles, false);
    let input = users(2);
    let rows: Vec<(usize, Entry)> = input.iter().map(|u| intake.take(u)).enumerate().collect();
    let cfg = BulkConfig {
        hold_rows: true,
        ..config(10)
    };
    let mut run = BulkRun::new(cfg, 2, intake.counts(), 3);
    let want = run.rows_wanted().unwrap();
    run.load(rows, want);
    let mut ledgers = Ledgers::default();
    let mut now = T0_BULK;
    let Step::Send(discover) = run.next_step(now) else {
        panic!()
    };
    run.on_response(SimServer::default().handle(&discover).unwrap(), now);
    // Nothing is sent before the rows are held.
    assert!(matches!(run.next_step(now), Step::Wait { .. } | Step::Done(_)));
    let asks = run.holds_wanted(now, "bulk:r2");
    assert_eq!(asks.len(), 2);
    assert_eq!(asks[0].lease_ms, run.hold_span() + super::hold::HOLD_SLACK_MS);
    let answers = asks.iter().map(|a| ledgers.begin(a, now)).collect();
    run.on_holds(answers, &asks, now);
    let Step::Send(bulk) = run.next_step(now) else {
        panic!("the held rows go")
    };
    assert!(bulk.url.ends_with("/Bulk"));
    run.on_response(HttpResponse::new(503, ""), now + 10);
    // The retry would start past the holds: the request is dropped, the rows read first.
    now += run.hold_span();
    if let Step::Send(req) = run.next_step(now) {
        assert!(!req.url.ends_with("/Bulk"), "a try past the holds: {}", req.url);
    }
    let releases = run.take_releases();
    assert_eq!(releases.len(), 2);
    assert!(releases.iter().all(|r| r.commit.ending == ledger::Ending::Failed));
    for r in &releases {
        ledgers.commit(r);
        assert_eq!(ledgers.people[&r.ledger].lease, None);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_row_read_after_a_409_keeps_its_hold_and_brings_a_deleted_person_back() {
    use crate::event::Operation;
    let mut s = SimServer::default();
    let mut ledgers = Ledgers::default();
    let input = users(1);
    // CXone still has the account (with an old surname) of a person a webhook deleted.
    let mut old = desired_of(&input[0]);
    old.family_name = Some("Old".into());
    let id = s.insert(&serde_json::to_string(&create_payload(&old)).unwrap());
    ledgers.people.insert(
        "ext:ext-0".into(),
        mark(T0_BULK - 60_000, Operation::Delete, "m-delete"),
    );
    let rows = run_held(&mut s, &mut ledgers, &input, T0_BULK);
    assert_eq!(
        (rows[0].outcome(), rows[0].id()),
        (Some(RowOutcome::Updated), Some(id.as_str()))
    );
    assert_eq!(s.user(&id).name.unwrap().family_name.as_deref(), Some("Last0"));
    assert_eq!(
        ledgers.asked.len(),
        1,
        "held once, through the 409 and the lookup: {:?}",
        ledgers.asked
    );
    let person = ledgers.person("ext-0");
    assert!(!person.is_tombstoned(), "{person:?}");
    assert_eq!((person.cxone_id.as_deref(), person.lease), (Some(id.as_str()), None));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_run_that_stops_for_now_gives_every_hold_back_and_renews_stored_ones() {
    let policy = policy();
    let mut intake = Intake::new(&policy, &crate::policy::RoleTarget::Roles, false);
    let input = users(3);
    let rows: Vec<(usize, Entry)> = input.iter().map(|u| intake.take(u)).enumerate().collect();
    let cfg = BulkConfig {
        hold_rows: true,
        ..config(10)
    };
    let mut run = BulkRun::new(cfg.clone(), 3, intake.counts(), 3);
    let want = run.rows_wanted().unwrap();
    run.load(rows, want);
    let mut ledgers = Ledgers::default();
    let Step::Send(discover) = run.next_step(T0_BULK) else {
        panic!()
    };
    run.on_response(SimServer::default().handle(&discover).unwrap(), T0_BULK);
    let asks = run.holds_wanted(T0_BULK, "bulk:r3");
    assert!(
        asks.iter().all(|a| a.lease_token == a.facts.event_id),
        "the token is the row's delivery"
    );
    let answers = asks.iter().map(|a| ledgers.begin(a, T0_BULK)).collect();
    run.on_holds(answers, &asks, T0_BULK);
    let stored = run.take_writes();
    assert!(stored.iter().all(|(_, e)| e.hold.is_some()));
    // The slice ends before sending: every person is given back at once.
    run.release_held();
    let releases = run.take_releases();
    assert_eq!(releases.len(), 3);
    for r in &releases {
        assert_eq!(r.commit.ending, ledger::Ending::Failed);
        ledgers.commit(r);
    }
    assert!(ledgers.people.values().all(|p| p.lease.is_none()));
    // Rows stored with a hold (a slice that died) are asked again before they are sent.
    let mut resumed = BulkRun::new(cfg, 3, intake.counts(), 3);
    let want = resumed.rows_wanted().unwrap();
    resumed.load(stored, want);
    let Step::Send(discover) = resumed.next_step(T0_BULK + 10) else {
        panic!()
    };
    resumed.on_response(SimServer::default().handle(&discover).unwrap(), T0_BULK + 10);
    assert_eq!(resumed.holds_wanted(T0_BULK + 10, "bulk:r3").len(), 3);
}

/// The sizes of the groups `flow` sends on its way to the end, and its report.
fn group_sizes(flow: &mut InMemoryRun, s: &mut SimServer) -> (Vec<usize>, BulkReport) {
    let mut sizes = Vec::new();
    let mut now = 1_000_000;
    for _ in 0..2_000 {
        match flow.next_step(now) {
            Step::SendAll(reqs) => {
                sizes.push(reqs.len());
                s.now_for_tests(now);
                let answers = reqs.iter().map(|r| s.handle(r)).collect();
                now += 5;
                flow.on_answers(answers, now);
            }
            Step::Send(req) => panic!("one request per user, sent together: {req:?}"),
            Step::Wait { until } => now = until,
            Step::Done(r) => return (sizes, r.unwrap()),
        }
    }
    panic!("the run did not finish");
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_up_to_lanes_requests_go_at_once() {
    let mut s = SimServer::cxone();
    let mut flow = InMemoryRun::new(&users(20), &policy(), cxone_config(), 4);
    let (sizes, r) = group_sizes(&mut flow, &mut s);
    assert_eq!(sizes, [6, 6, 6, 2]);
    assert_eq!((r.progress.counts.created, s.count()), (20, 20));
    let cfg = BulkConfig {
        lanes: 3,
        precheck: true,
        ..cxone_config()
    };
    let mut s = SimServer::cxone();
    let mut flow = InMemoryRun::new(&users(5), &policy(), cfg, 4);
    let (sizes, r) = group_sizes(&mut flow, &mut s);
    // Ten requests, three at a time: the lookups first (one per user), the creates after.
    assert_eq!(sizes, [3, 3, 3, 1]);
    assert_eq!((r.progress.lookups, r.progress.user_writes, s.count()), (5, 5, 5));
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_rate_limit_sends_one_at_a_time_and_loses_nobody() {
    let mut s = SimServer::cxone();
    s.limit_rate(20.0, 4.0);
    let cfg = BulkConfig {
        retry: RetryPolicy {
            max_attempts: 20,
            ..RetryPolicy::default()
        },
        ..cxone_config()
    };
    let mut flow = InMemoryRun::new(&users(30), &policy(), cfg, 4);
    let (sizes, r) = group_sizes(&mut flow, &mut s);
    assert!(s.throttled > 0, "the limit was met");
    assert_eq!(sizes.last(), Some(&1), "paced after the 429s: {sizes:?}");
    assert_eq!(
        (r.progress.counts.created, r.progress.counts.failed, s.count()),
        (30, 0, 30)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_write_without_an_answer_is_read_before_it_is_sent_again() {
    let mut s = SimServer::cxone();
    s.fail_next(Fault::Transport);
    let cfg = BulkConfig {
        precheck: false,
        ..cxone_config()
    };
    let mut flow = InMemoryRun::new(&users(3), &policy(), cfg, 4);
    let (_, r) = group_sizes(&mut flow, &mut s);
    assert_eq!(outcomes(&r), [RowOutcome::Created; 3]);
    assert_eq!(s.count(), 3);
    assert!(
        s.filters.iter().any(|f| f == "userName eq \"user0@example.com\""),
        "{:?}",
        s.filters
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_leaver_row_is_handed_to_the_leavers_steps_and_never_written_by_the_run() {
    for cxone in [true, false] {
        let mut s = if cxone {
            SimServer::cxone()
        } else {
            SimServer::default()
        };
        let mut input = users(3);
        for u in &input[..2] {
            s.insert(&serde_json::to_string(&create_payload(&desired_of(u))).unwrap());
        }
        input[0].active = false;
        // A leaver CXone has no account for: handed over all the same (its steps find nothing).
        input[2].active = false;
        let cfg = BulkConfig {
            precheck: true,
            ..if cxone { cxone_config() } else { config(50) }
        };
        let r = run(&mut s, &input, cfg);
        assert_eq!(
            outcomes(&r),
            [RowOutcome::Leaver, RowOutcome::Exists, RowOutcome::Leaver],
            "cxone {cxone}"
        );
        assert_eq!(r.progress.counts.leaver, 2);
        assert_eq!(s.users()[0].active, Some(true), "the run itself deactivates nothing");
        assert!(
            !s.filters.iter().any(|f| f.contains("user0@") || f.contains("user2@")),
            "{:?}",
            s.filters
        );
        assert!(
            !s.log().iter().any(|l| l.starts_with("POST") || l.starts_with("PATCH")),
            "{:?}",
            s.log()
        );
    }
    // What the host hands over: how to find each leaver.
    let mut input = users(2);
    input[1].active = false;
    let policy = policy();
    let target = crate::policy::RoleTarget::Roles;
    let mut intake = super::intake::Intake::new(&policy, &target, false);
    let rows: Vec<_> = input.iter().map(|u| intake.take(u)).collect();
    assert_eq!(rows[0].leaver(), None);
    let leaver = rows[1].leaver().unwrap();
    assert_eq!(leaver.user_name.as_deref(), Some(input[1].user_name.as_str()));
    assert_eq!(leaver.external_id, input[1].external_id);
    assert_eq!(intake.counts().leaver, 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_renamed_person_is_found_through_the_id_their_ledger_knows() {
    let mut s = SimServer::cxone();
    let mut ledgers = Ledgers::default();
    let old = s.insert(r#"{"userName":"old.user0@example.com","externalId":"ext-0","active":true}"#);
    ledgers.people.insert(
        "ext:ext-0".into(),
        PersonState {
            cxone_id: Some(old.clone()),
            ..PersonState::default()
        },
    );
    let rows = run_held_with(&mut s, &mut ledgers, &users(2), T0_BULK, cxone_config());
    let outcomes: Vec<_> = rows.iter().map(Entry::outcome).collect();
    assert_eq!(outcomes, [Some(RowOutcome::Updated), Some(RowOutcome::Created)]);
    assert_eq!(s.count(), 2, "nobody twice");
    assert_eq!(s.user(&old).user_name, "user0@example.com");
    assert!(s.log().contains(&format!("GET /scim/v2/Users/{old}")), "{:?}", s.log());
    // Known to the ledger but not in CXone, and nobody by that userName: CXone cannot have
    // deleted it, so no second account is made.
    let mut s = SimServer::cxone();
    let mut ledgers = Ledgers::default();
    ledgers.people.insert(
        "ext:ext-0".into(),
        PersonState {
            cxone_id: Some("u-gone".into()),
            ..PersonState::default()
        },
    );
    let rows = run_held_with(&mut s, &mut ledgers, &users(1), T0_BULK, cxone_config());
    assert_eq!(rows[0].outcome(), Some(RowOutcome::Conflict));
    assert_eq!(s.count(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_create_whose_last_try_was_lost_is_read_not_failed_blind() {
    let mut s = SimServer::cxone();
    let cfg = BulkConfig {
        precheck: false,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..cxone_config()
    };
    let mut flow = InMemoryRun::new(&users(1), &policy(), cfg, 4);
    let mut now = 1_000_000;
    let mut lost = false;
    let r = loop {
        match flow.next_step(now) {
            Step::SendAll(reqs) => {
                s.now_for_tests(now);
                let mut answers: Vec<_> = reqs.iter().map(|r| s.handle(r)).collect();
                // The create lands; its answer does not come back.
                if !lost {
                    lost = true;
                    answers[0] = Err(crate::http::TransportError("no answer".into()));
                }
                now += 5;
                flow.on_answers(answers, now);
            }
            Step::Wait { until } => now = until,
            Step::Send(req) => panic!("{req:?}"),
            Step::Done(r) => break r.unwrap(),
        }
    };
    assert_eq!(outcomes(&r), [RowOutcome::Created], "read back, found as this run's");
    assert_eq!(s.count(), 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_refused_lookup_fails_its_row_and_says_which_request() {
    let mut s = SimServer::cxone();
    s.fail_next(Fault::Status(403, None));
    let cfg = BulkConfig {
        precheck: true,
        lanes: 1,
        ..cxone_config()
    };
    let r = run(&mut s, &users(2), cfg);
    assert_eq!(outcomes(&r), [RowOutcome::Failed, RowOutcome::Created]);
    assert_eq!(r.users[0].status, Some(403));
    let detail = r.users[0].detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("lookup http://cxone.test/scim/v2/Users?filter=userName"),
        "{detail}"
    );
}
