//! The decision tables of applying one change: refusals before the ledger, what each ledger
//! decision answers, how long a busy person is waited for, and what each flow result keeps,
//! commits, audits and answers.

use super::*;
use crate::flows::{Conflict, ConflictReason, Note};
use crate::ledger::PersonState;
use crate::scim::User;
use wasm_bindgen_test::wasm_bindgen_test;

const CREATE: &str = include_str!("../../tests/fixtures/event_create.json");
const NOW: UnixMillis = 1_800_000_000_000;

fn policy() -> RolePolicy {
    RolePolicy::from_json(include_str!("../../tests/fixtures/role_policy.json")).unwrap()
}

fn event(json: &str) -> LifecycleEvent {
    LifecycleEvent::from_json(json.as_bytes()).unwrap()
}

fn delivery(trigger: Trigger) -> Delivery {
    Delivery {
        event_id: "msg_1".into(),
        body_digest: "d1".into(),
        event: serde_json::from_str(CREATE).unwrap(),
        replay: false,
        trigger,
        deprovision: None,
        leaver_id: None,
    }
}

fn go() -> Go {
    Go {
        event_time: NOW - 5_000,
        lease: Lease {
            holder: "msg_1".into(),
            token: "t1".into(),
            until: NOW + 30_000,
        },
        known_id: None,
    }
}

fn settle_with(result: Result<Applied, FlowError>, roles_before: Option<Vec<String>>) -> Settlement {
    let (event, delivery, go) = (event(CREATE), delivery(Trigger::Webhook), go());
    settle(Ran {
        delivery: &delivery,
        event: &event,
        go: &go,
        result,
        roles_before,
        roles_after: Some(vec!["Agent".into()]),
        skipped_groups: Vec::new(),
        leaver: None,
        runs_before: 0,
        started: NOW - 40,
        now: NOW,
    })
}

const LEAVER: &str = r#"{"operation":"disable","userName":"jdoe@example.com","externalId":"e-1"}"#;

/// A leaver's report: `outcome`, with a failed logout when unverified.
fn report(outcome: crate::deprovision::DeprovisionOutcome) -> crate::deprovision::Report {
    use crate::deprovision::{DeprovisionOutcome as O, Licence, Mode, StepName, StepRecord, StepStatus};
    let step = |step, status| StepRecord {
        step,
        status,
        latency_ms: 5,
        detail: None,
    };
    let (action, steps) = match outcome {
        O::Held => (Action::Unchanged, vec![step(StepName::Deactivate, StepStatus::Held)]),
        O::Unverified => (
            Action::Disabled,
            vec![
                step(StepName::Deactivate, StepStatus::Done),
                step(StepName::Logout, StepStatus::Failed),
            ],
        ),
        _ => (
            Action::Disabled,
            vec![
                step(StepName::Deactivate, StepStatus::Done),
                step(StepName::Logout, StepStatus::Done),
            ],
        ),
    };
    crate::deprovision::Report {
        outcome,
        verified: outcome == O::Deprovisioned,
        mode: Mode::Deactivate,
        action,
        note: None,
        cxone_id: Some("u1".into()),
        user_name: Some("jdoe@example.com".into()),
        agent_id: Some("1001".into()),
        steps,
        dependencies: None,
        licence: Licence::NotManaged,
        conflict: None,
    }
}

fn settle_leaver(
    outcome: crate::deprovision::DeprovisionOutcome,
    runs_before: u32,
    leaver_id: Option<&str>,
) -> Settlement {
    let event = event(LEAVER);
    let delivery = Delivery {
        event: serde_json::from_str(LEAVER).unwrap(),
        leaver_id: leaver_id.map(str::to_string),
        ..delivery(Trigger::Webhook)
    };
    let go = go();
    let report = report(outcome);
    settle(Ran {
        delivery: &delivery,
        event: &event,
        go: &go,
        result: Ok(report.applied()),
        roles_before: None,
        roles_after: None,
        skipped_groups: Vec::new(),
        leaver: Some((report, crate::deprovision::Options::default())),
        runs_before,
        started: NOW - 40,
        now: NOW,
    })
}

#[wasm_bindgen_test(unsupported = test)]
fn a_leaver_is_done_only_when_verified_and_a_held_one_changes_nothing() {
    use crate::deprovision::DeprovisionOutcome as O;
    let done = settle_leaver(O::Deprovisioned, 0, None);
    assert_eq!(done.answer.status, 200);
    assert_eq!(done.answer.body["status"], "success");
    let record = done.leaver.clone().unwrap();
    assert_eq!(done.answer.body["deprovision"]["id"], json!(record.id));
    assert_eq!(done.answer.body["deprovision"]["verified"], true);
    assert_eq!(
        done.audit.as_ref().unwrap().steps.as_ref().unwrap().len(),
        2,
        "the audit entry has every step"
    );
    assert!(record.tell_hr(), "settled: HR is told");
    let told = LeaverRecord {
        hr: Some(json!({"status": "delivered"})),
        ..record.clone()
    };
    assert!(!told.tell_hr(), "HR once");
    assert_eq!(
        record.event["occurredAt"],
        json!(crate::time::iso8601(NOW - 5_000)),
        "pinned where the ledger ordered it"
    );

    let unverified = settle_leaver(O::Unverified, 0, None);
    assert_eq!(
        (unverified.answer.status, &unverified.answer.body["status"]),
        (202, &json!("unverified"))
    );
    assert!(
        matches!(
            unverified.commit.ending,
            Ending::Applied {
                action: Action::Disabled,
                ..
            }
        ),
        "the account was written"
    );
    assert_eq!(unverified.commit.answer.as_ref().unwrap().status, 202);
    let record = unverified.leaver.unwrap();
    assert!(!record.tell_hr(), "not settled: HR waits for the replay");
    // Its replay: a new event id, the same leaver, the same event time.
    let replay = record.replay_delivery();
    assert_eq!(replay.event_id, "msg_1:replay:1");
    assert_eq!(replay.leaver_id.as_deref(), Some(record.id.as_str()));
    let replayed = settle_leaver(O::Deprovisioned, record.runs, Some(&record.id))
        .leaver
        .unwrap();
    assert_eq!((replayed.id, replayed.runs), (record.id.clone(), 2));
    // The replay finds the account out already (its first run did that): the leaver is
    // deprovisioned, and HR is told.
    let finished = settle_leaver(O::AlreadyDeprovisioned, record.runs, Some(&record.id))
        .leaver
        .unwrap();
    assert_eq!(finished.report.outcome, O::Deprovisioned);
    assert!(finished.tell_hr());
    assert!(
        !settle_leaver(O::AlreadyDeprovisioned, 0, None)
            .leaver
            .unwrap()
            .tell_hr(),
        "already out: HR knew"
    );
    let again = LifecycleEvent::from_json(&serde_json::to_vec(&replay.event).unwrap()).unwrap();
    assert_eq!(again.occurred_at, Some(NOW - 5_000));
    assert_eq!(again.operation, crate::event::Operation::Disable);

    let held = settle_leaver(O::Held, 0, None);
    assert_eq!((held.answer.status, &held.answer.body["status"]), (202, &json!("held")));
    assert_eq!(held.commit.ending, Ending::Answered, "nothing changed for the person");
    assert!(!held.leaver.unwrap().tell_hr());
    // A redelivery of a taken leaver is a duplicate, not a failure.
    let stored = unverified.commit.answer.unwrap();
    assert!(matches!(
        admit(Decision::Duplicate { answer: stored }),
        Admission::Answer(ApplyAnswer {
            settled: Settled::Duplicate,
            status: 202,
            ..
        })
    ));
}

fn rejected(status: u16) -> FlowError {
    FlowError::Rejected {
        request: "POST /Users".into(),
        status,
        scim_type: Some("invalidValue".into()),
        detail: Some("bad".into()),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_joiner_is_prepared_with_its_facts_and_the_groups_the_policy_skips() {
    let lenient = policy_lenient();
    let ev = event(&CREATE.replace("\"All Staff\"", "\"Unmapped\""));
    let prepared = prepared(&ev, &lenient, 60_000).unwrap();
    assert_eq!(prepared.facts.event_id, "msg_1");
    assert_eq!(prepared.facts.operation, crate::event::Operation::Create);
    assert!(!prepared.facts.keeps_status);
    assert_eq!(prepared.skipped_groups, vec!["Unmapped".to_string()]);
    assert!(matches!(prepared.command, Command::Upsert { create_first: true, .. }));
}

/// `prepare` for a webhook under `policy`, events up to `max_future_ms` ahead allowed.
fn prepared(ev: &LifecycleEvent, policy: &RolePolicy, max_future_ms: u64) -> Result<Prepared, ApplyAnswer> {
    prepare(
        ev,
        &delivery(Trigger::Webhook),
        policy,
        &RoleTarget::Roles,
        max_future_ms,
        NOW,
    )
}

fn policy_lenient() -> RolePolicy {
    RolePolicy::from_json(&include_str!("../../tests/fixtures/role_policy.json").replace("strict", "lenient")).unwrap()
}

#[wasm_bindgen_test(unsupported = test)]
fn a_group_the_strict_policy_does_not_know_is_refused_before_the_ledger() {
    let ev = event(&CREATE.replace("\"All Staff\"", "\"Unmapped\""));
    let refused = prepared(&ev, &policy(), 60_000).unwrap_err();
    assert!(refused.status >= 400 && refused.status < 500, "{refused:?}");
    assert_eq!(refused.settled, Settled::Failed);
    assert_eq!(refused.outcome, AuditOutcome::Rejected);
    assert!(refused.detail.is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn an_event_dated_past_the_allowed_future_is_refused_before_the_ledger() {
    let ev = event(&CREATE.replace(
        "\"operation\"",
        "\"occurredAt\": \"2027-03-01T00:00:00Z\", \"operation\"",
    ));
    let refused = prepared(&ev, &policy(), 60_000).unwrap_err();
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body["detail"].as_str().unwrap().contains("ahead"));
    // Within the allowance it goes on.
    let ninety_days = 90 * 24 * 3600 * 1000;
    assert!(prepared(&ev, &policy(), ninety_days).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn each_ledger_decision_is_answered_or_admitted() {
    let stored = StoredAnswer::ok(json!({"status": "success", "action": "created", "eventId": "msg_1"}));
    let Admission::Answer(dup) = admit(Decision::Duplicate { answer: stored }) else {
        panic!("a duplicate is answered")
    };
    assert_eq!(
        (dup.status, dup.settled, dup.outcome),
        (200, Settled::Duplicate, AuditOutcome::Duplicate)
    );
    assert_eq!(dup.body["duplicate"], true);
    assert_eq!(dup.body["action"], "created");

    let failed_before = StoredAnswer {
        status: 422,
        body: json!({"status": "422", "detail": "CXone refused"}),
    };
    let Admission::Answer(dup) = admit(Decision::Duplicate { answer: failed_before }) else {
        panic!("a duplicate is answered")
    };
    assert_eq!((dup.status, dup.settled), (422, Settled::Failed));

    let stale = StoredAnswer::ok(json!({"status": "success", "action": "stale"}));
    let Admission::Answer(a) = admit(Decision::Stale { answer: stale }) else {
        panic!("stale is answered")
    };
    assert_eq!(
        (a.settled, a.action),
        (Settled::Done(Action::Stale), Some(Action::Stale))
    );
    let skipped = StoredAnswer::ok(json!({"status": "success", "action": "skipped", "note": "deleted"}));
    let Admission::Answer(a) = admit(Decision::Skipped { answer: skipped }) else {
        panic!("skipped is answered")
    };
    assert_eq!(a.settled, Settled::Done(Action::Skipped));

    let Admission::Busy { retry_after_ms, answer } = admit(Decision::Busy { retry_after_ms: 2_500 }) else {
        panic!("busy waits or answers")
    };
    assert_eq!(retry_after_ms, 2_500);
    assert_eq!(
        (answer.status, answer.retry_after_secs, answer.settled),
        (503, Some(3), Settled::Later)
    );

    let Admission::Answer(a) = admit(Decision::Conflict {
        detail: "webhook-id msg_1 was seen with another body".into(),
    }) else {
        panic!("a reused webhook-id is answered")
    };
    assert_eq!((a.status, a.settled), (409, Settled::Failed));
    assert_eq!(a.body["scimType"], "uniqueness");

    let carried = PersonState {
        cxone_id: Some("c1".into()),
        ..PersonState::default()
    };
    assert_eq!(
        admit(Decision::Forward {
            to: "ext:e1".into(),
            carried: Some(carried.clone()),
            first_seen: Some(7),
        }),
        Admission::Forward {
            to: "ext:e1".into(),
            carried: Some(carried),
            first_seen: Some(7),
        }
    );
    let g = go();
    assert_eq!(
        admit(Decision::Go {
            event_time: g.event_time,
            lease: g.lease.clone(),
            known_id: Some("c1".into()),
        }),
        Admission::Go(Go {
            known_id: Some("c1".into()),
            ..g
        })
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_busy_person_is_asked_again_after_doubling_pauses_until_the_wait_is_spent() {
    let mut wait = BusyWait::new(NOW, 1_000);
    let mut now = NOW;
    let mut pauses = Vec::new();
    while let Some(p) = wait.next(10_000, now) {
        pauses.push(p);
        now += p;
    }
    assert_eq!(pauses, vec![50, 100, 200, 400]);
    // The lease ends sooner than the pause: ask again when it does.
    let mut wait = BusyWait::new(NOW, 1_000);
    assert_eq!(wait.next(7, NOW), Some(7));
    // A Graph pass does not wait at all.
    let d = delivery(Trigger::Delta);
    assert_eq!(BusyWait::new(NOW, d.waits_for_busy(1_000)).next(10, NOW), None);
    assert_eq!(delivery(Trigger::Webhook).waits_for_busy(1_000), 1_000);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_created_account_is_committed_audited_and_answered_with_its_id() {
    let s = settle_with(Ok(Applied::new(Action::Created, Some("c1".into()))), None);
    assert_eq!(s.keep, Keep::Nothing);
    assert!(!s.failure_recorded);
    assert_eq!(
        s.commit.ending,
        Ending::Applied {
            action: Action::Created,
            id: Some("c1".into())
        }
    );
    assert_eq!(s.commit.lease_token, "t1");
    assert_eq!(s.commit.answer.as_ref().unwrap().body, s.answer.body);
    assert_eq!(s.answer.body["id"], "c1");
    assert_eq!(s.answer.body["eventId"], "msg_1");
    assert_eq!(s.answer.settled, Settled::Done(Action::Created));
    assert_eq!(s.answer.cxone_id.as_deref(), Some("c1"));
    let audit = s.audit.unwrap();
    assert_eq!(audit.outcome, AuditOutcome::Success);
    assert_eq!(audit.who.cxone_id.as_deref(), Some("c1"));
    assert_eq!(audit.roles_before, Vec::<String>::new());
    assert_eq!(audit.roles_after, vec!["Agent".to_string()]);
    assert_eq!(audit.latency_ms, 40);
    assert_eq!(audit.trigger, Trigger::Webhook);
}

#[wasm_bindgen_test(unsupported = test)]
fn nothing_written_is_not_audited_and_a_note_is_told() {
    let s = settle_with(
        Ok(Applied::noted(
            Action::Unchanged,
            Some("c1".into()),
            Note::AlreadyDisabled,
        )),
        Some(vec!["Agent".into()]),
    );
    assert!(s.audit.is_none());
    assert_eq!(s.answer.body["note"], "already_disabled");
    assert_eq!(s.answer.settled, Settled::Done(Action::Unchanged));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_conflict_is_kept_for_a_person_and_answered_for_good() {
    let account: User =
        serde_json::from_value(json!({"id": "c9", "userName": "jdoe@example.com", "externalId": "other"})).unwrap();
    let conflict = Conflict {
        reason: ConflictReason::OtherExternalId,
        filter: "userName eq \"jdoe@example.com\"".into(),
        accounts: vec![account],
    };
    let s = settle_with(
        Ok(Applied {
            conflict: Some(conflict),
            ..Applied::new(Action::Conflict, None)
        }),
        None,
    );
    let Keep::Conflict(record) = &s.keep else {
        panic!("a conflict is kept")
    };
    assert_eq!(record.account.as_ref().and_then(|a| a.id.as_deref()), Some("c9"));
    assert!(record.detail.contains("another externalId"));
    assert_eq!(record.subject, "ext:e-jdoe-1");
    assert_eq!(s.commit.ending, Ending::Answered);
    assert_eq!(s.answer.body["conflictId"], json!(record.id));
    assert_eq!(s.answer.body["reason"], "other_external_id");
    assert_eq!(s.answer.settled, Settled::Done(Action::Conflict));
    assert!(s.audit.is_none(), "nothing was written");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_permanent_rejection_is_the_final_answer_and_a_failure_to_replay() {
    let s = settle_with(Err(rejected(400)), Some(vec!["Agent".into()]));
    let Keep::Failure(seed) = &s.keep else {
        panic!("a failure is kept")
    };
    assert!(seed.permanent);
    assert!(s.failure_recorded);
    assert_eq!(s.commit.ending, Ending::Answered);
    assert_eq!(s.commit.answer.as_ref().map(|a| a.status), Some(422));
    assert_eq!((s.answer.status, s.answer.settled), (422, Settled::Failed));
    assert_eq!(s.answer.outcome, AuditOutcome::Failure);
    let audit = s.audit.unwrap();
    assert_eq!(audit.outcome, AuditOutcome::Failure);
    assert!(audit.roles_after.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_transient_failure_leaves_the_delivery_open_for_redelivery() {
    let s = settle_with(Err(rejected(503)), None);
    assert_eq!(s.commit.ending, Ending::Failed);
    assert!(s.commit.answer.is_none());
    assert!(s.failure_recorded);
    assert_eq!((s.answer.status, s.answer.settled), (502, Settled::Failed));
    assert!(s.audit.is_some(), "CXone may have been written");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_spent_budget_wrote_nothing_and_is_come_back_to() {
    let s = settle_with(Err(FlowError::BudgetExhausted(3)), None);
    assert!(s.audit.is_none());
    assert_eq!((s.answer.status, s.answer.settled), (503, Settled::Later));
    assert!(s.answer.retry_after_secs.is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_failure_record_counts_its_attempts_from_the_first() {
    let s = settle_with(Err(rejected(400)), None);
    let Keep::Failure(seed) = s.keep else {
        panic!("a failure is kept")
    };
    let first = seed.clone().record(None, NOW);
    assert_eq!(first.attempts, 1);
    assert_eq!(first.id, crate::digest::key_of("msg_1"));
    assert_eq!(first.event["userName"], "jdoe@example.com");
    let again = seed.record(Some(&first), NOW + 60_000);
    assert_eq!(again.attempts, 2);
    assert_eq!(again.first_failed_at, first.first_failed_at);
    assert_ne!(again.last_failed_at, first.last_failed_at);
}

#[wasm_bindgen_test(unsupported = test)]
fn answers_travel_between_objects_unchanged() {
    let s = settle_with(Ok(Applied::new(Action::Updated, Some("c1".into()))), None);
    let text = serde_json::to_string(&s.answer).unwrap();
    let back: ApplyAnswer = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s.answer);
    assert!(
        text.contains("\"settled\":{\"kind\":\"done\",\"action\":\"updated\"}"),
        "{text}"
    );
}

fn role_change() -> RoleChange {
    let policy = policy();
    let groups = vec![crate::policy::GroupInput {
        display_name: Some("cxone-agent".into()),
        id: None,
    }];
    RoleChange {
        event_id: "roles-1".into(),
        lookup: crate::event::Lookup {
            user_name: Some("jdoe@example.com".into()),
            external_id: Some("e-jdoe-1".into()),
            cxone_id: None,
        },
        verdict: policy.verdict(&groups, None),
        groups,
        request_digest: "r1".into(),
        at: NOW - 100,
    }
}

fn synced(action: Action) -> crate::flows::RoleSynced {
    crate::flows::RoleSynced {
        id: (action != Action::Conflict).then(|| "c1".to_string()),
        roles_before: vec!["Supervisor".into()],
        roles_after: vec!["Agent".into()],
        action,
        conflict: None,
        payload: Some(json!({"roles": [{"value": "Agent"}]})),
        retried_after_412: false,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_role_sync_is_an_update_that_leaves_the_status_and_the_event_time_alone() {
    let change = role_change();
    assert_eq!(change.roles().len(), 1);
    let facts = change.facts();
    assert_eq!(facts.operation, crate::event::Operation::Update);
    assert!(facts.keeps_status);
    assert_eq!(facts.occurred_at, Some(NOW - 100));
    let s = settle_roles(&change, &go(), Ok(synced(Action::Updated)), NOW - 40, NOW);
    assert_eq!(s.commit.ending, Ending::Answered, "the person's marks do not move");
    assert!(s.commit.answer.is_none());
    assert_eq!(
        (s.answer.status, s.answer.settled),
        (200, Settled::Done(Action::Updated))
    );
    assert_eq!(s.answer.body["rolesBefore"], json!(["Supervisor"]));
    assert_eq!(s.answer.body["verdict"]["verdict"], "pass");
    assert_eq!(s.audit.outcome, AuditOutcome::Success);
    assert_eq!(s.audit.trigger, Trigger::RoleSync);
    assert_eq!(
        s.audit.payload_sha256,
        payload_sha256(&json!({"roles": [{"value": "Agent"}]}))
    );
    assert!(s.reason.is_none());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_role_sync_that_meets_someone_elses_account_or_fails_is_still_audited_and_told() {
    let change = role_change();
    let s = settle_roles(&change, &go(), Ok(synced(Action::Conflict)), NOW - 40, NOW);
    assert_eq!((s.answer.status, s.answer.settled), (409, Settled::Failed));
    assert_eq!(s.answer.body["status"], "conflict");
    assert_eq!(s.audit.outcome, AuditOutcome::Rejected);
    assert!(s.reason.unwrap().contains("not provably"));
    let s = settle_roles(&change, &go(), Err(rejected(400)), NOW - 40, NOW);
    assert_eq!(s.answer.status, 422);
    assert_eq!(s.audit.outcome, AuditOutcome::Failure);
    assert_eq!(s.audit.payload_sha256, "r1", "no write: the request's digest");
    assert!(s.reason.is_some());
    let refused = refused_draft(&change.lookup, "r1", NOW - 10, NOW);
    assert_eq!((refused.outcome, refused.latency_ms), (AuditOutcome::Rejected, 10));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_role_sync_goes_only_where_the_ledger_lets_a_new_change_go() {
    let g = go();
    let decision = |d| admit_roles(d);
    assert!(matches!(
        decision(Decision::Go {
            event_time: g.event_time,
            lease: g.lease.clone(),
            known_id: None
        }),
        Admission::Go(_)
    ));
    assert!(matches!(
        decision(Decision::Busy { retry_after_ms: 10 }),
        Admission::Busy { .. }
    ));
    let Admission::Answer(deleted) = decision(Decision::Skipped {
        answer: StoredAnswer::ok(json!({"action": "skipped"})),
    }) else {
        panic!("a deleted person is answered")
    };
    assert_eq!(deleted.status, 409);
    assert!(deleted.body["detail"].as_str().unwrap().contains("deleted"));
    let Admission::Answer(stale) = decision(Decision::Stale {
        answer: StoredAnswer::ok(json!({"action": "stale"})),
    }) else {
        panic!("a refused sync is answered")
    };
    assert_eq!((stale.status, stale.settled), (409, Settled::Failed));
    assert!(matches!(
        decision(Decision::Forward {
            to: "ext:e".into(),
            carried: None,
            first_seen: None
        }),
        Admission::Forward { .. }
    ));
}
