//! The decision table, row by row.

use super::*;
use wasm_bindgen_test::wasm_bindgen_test;

const LEASE_MS: u64 = 30_000;
const T0: UnixMillis = 1_800_000_000_000;

fn facts(id: &str, operation: Operation, occurred_at: Option<UnixMillis>) -> EventFacts {
    EventFacts {
        event_id: id.into(),
        body_digest: format!("digest-of-{id}"),
        operation,
        occurred_at,
        replay: false,
        keeps_status: false,
    }
}

fn applied(at: UnixMillis, operation: Operation, id: &str) -> PersonState {
    PersonState {
        last: Some(LastApplied {
            at,
            operation,
            event_id: id.into(),
        }),
        last_status: None,
        cxone_id: (operation != Operation::Delete).then(|| "cx-1".to_string()),
        lease: None,
        alias_of: None,
    }
}

fn seen(first_seen: UnixMillis, id: &str, answer: Option<StoredAnswer>) -> SeenDelivery {
    SeenDelivery {
        first_seen,
        body_digest: format!("digest-of-{id}"),
        answer,
    }
}

fn go_time(d: &Decision) -> UnixMillis {
    match d {
        Decision::Go { event_time, .. } => *event_time,
        other => panic!("expected go, got {other:?}"),
    }
}

fn action_of(d: &Decision) -> Value {
    match d {
        Decision::Stale { answer } | Decision::Skipped { answer } => answer.body["action"].clone(),
        other => panic!("expected a kept answer, got {other:?}"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_new_person_goes_with_a_lease() {
    let d = decide(
        &PersonState::default(),
        None,
        &facts("m1", Operation::Create, None),
        T0,
        LEASE_MS,
        "tok",
    );
    assert_eq!(
        d,
        Decision::Go {
            event_time: T0,
            lease: Lease {
                holder: "m1".into(),
                token: "tok".into(),
                until: T0 + LEASE_MS
            },
            known_id: None
        }
    );
    assert_eq!(d.answer_to_keep(), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_redelivery_gets_the_first_answer_back() {
    let answer = StoredAnswer::ok(json!({"action": "created"}));
    let d = decide(
        &applied(T0, Operation::Create, "m1"),
        Some(&seen(T0, "m1", Some(answer.clone()))),
        &facts("m1", Operation::Create, None),
        T0 + 5,
        LEASE_MS,
        "tok",
    );
    assert_eq!(d, Decision::Duplicate { answer });
}

#[wasm_bindgen_test(unsupported = test)]
fn a_permanent_failure_is_answered_from_the_ledger_until_replayed() {
    let failed = StoredAnswer {
        status: 422,
        body: json!({"status": "422"}),
    };
    let delivery = seen(T0, "m1", Some(failed.clone()));
    let mut f = facts("m1", Operation::Create, None);
    let person = PersonState::default();
    assert_eq!(
        decide(&person, Some(&delivery), &f, T0 + 9, LEASE_MS, "t"),
        Decision::Duplicate { answer: failed }
    );
    f.replay = true;
    assert_eq!(
        go_time(&decide(&person, Some(&delivery), &f, T0 + 9, LEASE_MS, "t")),
        T0,
        "a replay keeps the event's original place"
    );
    let ok = seen(T0, "m1", Some(StoredAnswer::ok(json!({"action": "created"}))));
    assert!(matches!(
        decide(&person, Some(&ok), &f, T0 + 9, LEASE_MS, "t"),
        Decision::Duplicate { .. }
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_same_id_with_another_body_is_a_conflict() {
    let mut f = facts("m1", Operation::Delete, None);
    f.body_digest = "something else".into();
    let d = decide(
        &PersonState::default(),
        Some(&seen(T0, "m1", None)),
        &f,
        T0,
        LEASE_MS,
        "t",
    );
    assert!(matches!(d, Decision::Conflict { .. }), "{d:?}");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_held_lease_makes_others_wait_and_an_expired_one_does_not() {
    let person = PersonState {
        lease: Some(Lease {
            holder: "m1".into(),
            token: "a".into(),
            until: T0 + 1_000,
        }),
        ..PersonState::default()
    };
    for id in ["m1", "m2"] {
        let d = decide(&person, None, &facts(id, Operation::Create, None), T0, LEASE_MS, "b");
        assert_eq!(d, Decision::Busy { retry_after_ms: 1_000 }, "{id}");
    }
    let d = decide(
        &person,
        None,
        &facts("m2", Operation::Create, None),
        T0 + 1_000,
        LEASE_MS,
        "b",
    );
    assert_eq!(go_time(&d), T0 + 1_000, "a crashed holder never blocks the person");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_retry_keeps_the_place_of_its_first_delivery() {
    // m1 (update) first seen at T0 failed; m2 (delete) applied at T0+10; m1 comes back later.
    let person = applied(T0 + 10, Operation::Delete, "m2");
    let d = decide(
        &person,
        Some(&seen(T0, "m1", None)),
        &facts("m1", Operation::Update, None),
        T0 + 60_000,
        LEASE_MS,
        "t",
    );
    assert_eq!(action_of(&d), "stale");
    assert_eq!(d.answer_to_keep().unwrap().body["supersededBy"], "m2");
}

#[wasm_bindgen_test(unsupported = test)]
fn source_time_orders_before_arrival() {
    let person = applied(T0, Operation::Update, "m1");
    let older = facts("m2", Operation::Update, Some(T0 - 1));
    assert_eq!(
        action_of(&decide(&person, None, &older, T0 + 99, LEASE_MS, "t")),
        "stale"
    );
    let newer = facts("m3", Operation::Update, Some(T0 + 1));
    assert_eq!(go_time(&decide(&person, None, &newer, T0 + 99, LEASE_MS, "t")), T0 + 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn at_equal_times_a_leaver_is_never_undone() {
    for leaver in [Operation::Disable, Operation::Delete] {
        let person = applied(T0, leaver, "leave");
        for joiner in [Operation::Create, Operation::Update] {
            let d = decide(&person, None, &facts("j", joiner, Some(T0)), T0, LEASE_MS, "t");
            assert_eq!(action_of(&d), "stale", "{joiner:?} after {leaver:?}");
        }
    }
    let joined = applied(T0, Operation::Update, "j");
    for leaver in [Operation::Disable, Operation::Delete] {
        let d = decide(&joined, None, &facts("l", leaver, Some(T0)), T0, LEASE_MS, "t");
        assert_eq!(go_time(&d), T0, "{leaver:?} at the same time as a mover still applies");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_tombstone_is_lifted_only_by_a_newer_create() {
    let person = applied(T0, Operation::Delete, "del");
    for op in [Operation::Update, Operation::Disable] {
        let d = decide(&person, None, &facts("u", op, Some(T0 + 5)), T0 + 9, LEASE_MS, "t");
        assert_eq!(action_of(&d), "skipped", "{op:?}");
        assert_eq!(d.answer_to_keep().unwrap().body["note"], "deleted");
    }
    let d = decide(
        &person,
        None,
        &facts("c", Operation::Create, Some(T0 + 5)),
        T0 + 9,
        LEASE_MS,
        "t",
    );
    assert!(matches!(d, Decision::Go { known_id: None, .. }), "{d:?}");
    let d = decide(
        &person,
        None,
        &facts("c", Operation::Create, Some(T0 - 5)),
        T0 + 9,
        LEASE_MS,
        "t",
    );
    assert_eq!(
        action_of(&d),
        "stale",
        "a create older than the delete does not recreate"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_known_account_is_handed_to_the_flow() {
    let person = applied(T0, Operation::Create, "m1");
    let d = decide(
        &person,
        None,
        &facts("m2", Operation::Create, None),
        T0 + 1,
        LEASE_MS,
        "t",
    );
    assert!(
        matches!(d, Decision::Go { known_id: Some(ref id), .. } if id == "cx-1"),
        "{d:?}"
    );
}

fn ending(action: Action, id: Option<&str>) -> Ending {
    Ending::Applied {
        action,
        id: id.map(str::to_string),
    }
}

fn commit_of(id: &str, token: &str, at: UnixMillis, operation: Operation, ending: Ending) -> Commit {
    Commit {
        event_id: id.into(),
        lease_token: token.into(),
        event_time: at,
        operation,
        keeps_status: false,
        ending,
        answer: None,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn commit_moves_the_mark_forward_and_releases_its_own_lease() {
    let person = PersonState {
        lease: Some(Lease {
            holder: "m1".into(),
            token: "mine".into(),
            until: T0 + LEASE_MS,
        }),
        ..PersonState::default()
    };
    let c = commit(
        &person,
        &commit_of(
            "m1",
            "mine",
            T0,
            Operation::Create,
            ending(Action::Created, Some("cx-9")),
        ),
    );
    assert_eq!(c.person.lease, None);
    assert_eq!(c.person.cxone_id.as_deref(), Some("cx-9"));
    assert_eq!(c.person.last.as_ref().map(|l| l.at), Some(T0));
    assert_eq!(c.supersedes_up_to, Some(T0));

    let deleted = commit(
        &c.person,
        &commit_of(
            "m2",
            "x",
            T0 + 5,
            Operation::Delete,
            ending(Action::Deleted, Some("cx-9")),
        ),
    );
    assert!(deleted.person.is_tombstoned() && deleted.person.cxone_id.is_none());

    // A late commit (its lease had expired) for an older event changes nothing but its answer.
    let late = commit(
        &deleted.person,
        &commit_of(
            "m0",
            "old",
            T0 + 1,
            Operation::Update,
            ending(Action::Updated, Some("cx-9")),
        ),
    );
    assert_eq!(late.person, deleted.person);
    assert_eq!(late.supersedes_up_to, None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_commit_with_another_token_leaves_the_current_lease() {
    let theirs = Lease {
        holder: "m2".into(),
        token: "theirs".into(),
        until: T0 + LEASE_MS,
    };
    let person = PersonState {
        lease: Some(theirs.clone()),
        ..PersonState::default()
    };
    for e in [Ending::Failed, Ending::Answered] {
        let c = commit(&person, &commit_of("m1", "mine", T0, Operation::Update, e));
        assert_eq!(c.person.lease.as_ref(), Some(&theirs));
        assert_eq!((c.person.last.clone(), c.supersedes_up_to), (None, None));
    }
}

fn keeping_status(mut f: EventFacts) -> EventFacts {
    f.keeps_status = true;
    f
}

#[wasm_bindgen_test(unsupported = test)]
fn an_update_that_leaves_active_alone_never_makes_an_earlier_leaver_stale() {
    // Created at T0; a disable at T0+1 failed (CXone down); an update without accountEnabled at
    // T0+2 was applied; the disable's redelivery comes last.
    let created = commit(
        &PersonState::default(),
        &commit_of("m0", "t0", T0, Operation::Create, ending(Action::Created, Some("cx-1"))),
    )
    .person;
    let mut moved = commit_of(
        "m2",
        "t2",
        T0 + 2,
        Operation::Update,
        ending(Action::Updated, Some("cx-1")),
    );
    moved.keeps_status = true;
    let after = commit(&created, &moved);
    assert_eq!(after.supersedes_up_to, Some(T0 + 2), "older joiner or mover failures");
    assert_eq!(after.supersedes_leavers_up_to, None, "the failed disable still stands");
    let person = after.person;
    assert_eq!(person.last.as_ref().map(|l| l.at), Some(T0 + 2));
    assert_eq!(
        person.status_mark().map(|l| (l.at, l.operation)),
        Some((T0, Operation::Create))
    );

    let disable = facts("m1", Operation::Disable, Some(T0 + 1));
    assert_eq!(
        go_time(&decide(&person, None, &disable, T0 + 10, LEASE_MS, "t1")),
        T0 + 1
    );
    let disabled = commit(
        &person,
        &commit_of(
            "m1",
            "t1",
            T0 + 1,
            Operation::Disable,
            ending(Action::Disabled, Some("cx-1")),
        ),
    );
    assert_eq!(disabled.supersedes_leavers_up_to, Some(T0 + 1));
    assert_eq!(disabled.supersedes_up_to, None, "not newer than the update");
    let person = disabled.person;
    assert_eq!(person.last.as_ref().map(|l| l.event_id.as_str()), Some("m2"));
    assert_eq!(person.status_mark().map(|l| l.event_id.as_str()), Some("m1"));
    // A mover from before the disable is still stale; a rehire after it goes.
    let old_mover = keeping_status(facts("m3", Operation::Update, Some(T0 + 1)));
    assert_eq!(
        action_of(&decide(&person, None, &old_mover, T0 + 11, LEASE_MS, "t3")),
        "stale"
    );
    let rehire = facts("m4", Operation::Update, Some(T0 + 3));
    assert_eq!(
        go_time(&decide(&person, None, &rehire, T0 + 12, LEASE_MS, "t4")),
        T0 + 3
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_later_event_that_sets_active_still_makes_an_earlier_leaver_stale() {
    let person = applied(T0 + 2, Operation::Update, "m2");
    let person = commit(
        &person,
        &commit_of(
            "m2",
            "t2",
            T0 + 2,
            Operation::Update,
            ending(Action::Updated, Some("cx-1")),
        ),
    )
    .person;
    assert_eq!(person.status_mark().map(|l| l.at), Some(T0 + 2));
    let late_disable = facts("m1", Operation::Disable, Some(T0 + 1));
    assert_eq!(
        action_of(&decide(&person, None, &late_disable, T0 + 9, LEASE_MS, "t1")),
        "stale"
    );
    // At the same time the leaver wins, as before.
    let same_time = facts("m5", Operation::Disable, Some(T0 + 2));
    assert_eq!(
        go_time(&decide(&person, None, &same_time, T0 + 9, LEASE_MS, "t5")),
        T0 + 2
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_delete_applied_after_a_later_attribute_update_still_tombstones() {
    let person = commit(
        &applied(T0, Operation::Create, "m0"),
        &Commit {
            keeps_status: true,
            ..commit_of(
                "m2",
                "t2",
                T0 + 2,
                Operation::Update,
                ending(Action::Updated, Some("cx-1")),
            )
        },
    )
    .person;
    let delete = facts("m1", Operation::Delete, Some(T0 + 1));
    assert_eq!(go_time(&decide(&person, None, &delete, T0 + 5, LEASE_MS, "t1")), T0 + 1);
    let person = commit(
        &person,
        &commit_of(
            "m1",
            "t1",
            T0 + 1,
            Operation::Delete,
            ending(Action::Deleted, Some("cx-1")),
        ),
    )
    .person;
    assert!(person.is_tombstoned());
    assert_eq!(person.cxone_id, None);
    let update = keeping_status(facts("m3", Operation::Update, Some(T0 + 3)));
    assert_eq!(
        action_of(&decide(&person, None, &update, T0 + 6, LEASE_MS, "t3")),
        "skipped"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_ledger_kept_before_the_status_mark_reads_it_from_its_last_event() {
    // Old state: `last` only. A create or leaver there counts; an update may not have set it.
    assert_eq!(
        applied(T0, Operation::Disable, "m0").status_mark().map(|l| l.operation),
        Some(Operation::Disable)
    );
    assert_eq!(applied(T0, Operation::Update, "m0").status_mark(), None);
    let old: PersonState = serde_json::from_str(r#"{"last":{"at":5,"operation":"delete","eventId":"m"}}"#).unwrap();
    assert!(old.is_tombstoned());
}

#[wasm_bindgen_test(unsupported = test)]
fn an_event_dated_past_the_allowed_skew_is_refused() {
    let skew = 300_000;
    assert_eq!(check_event_time(None, T0, skew), Ok(()));
    assert_eq!(check_event_time(Some(T0 + skew), T0, skew), Ok(()));
    assert_eq!(
        check_event_time(Some(1), T0, skew),
        Ok(()),
        "the far past is only stale"
    );
    let err = check_event_time(Some(T0 + skew + 1), T0, skew).unwrap_err();
    assert_eq!(err.max_future_s, 300);
    let far = check_event_time(Some(32_503_680_000_000), T0, skew).unwrap_err();
    assert!(far.to_string().starts_with("occurredAt 3000-01-01T00:00:00"), "{far}");
    assert_eq!(check_event_time(Some(u64::MAX), u64::MAX - 1, skew), Ok(()));
}

#[wasm_bindgen_test(unsupported = test)]
fn no_request_starts_unless_the_lease_outlives_it() {
    assert_eq!(shortest_lease(15_000), 16_000);
    // The default lease (30 s) is the shortest accepted for the default timeout (15 s).
    assert_eq!(shortest_accepted_lease(15_000), 30_000);
    assert!(request_deadline(T0 + shortest_accepted_lease(15_000), 15_000) >= T0 + 14_000);
    let until = T0 + LEASE_MS;
    // Started at the deadline, a request that times out ends just as the margin begins.
    assert_eq!(request_deadline(until, 15_000), T0 + 14_000);
    assert_eq!(request_deadline(until, 15_000) + 15_000 + LEASE_MARGIN_MS, until);
    assert_eq!(request_deadline(5, 15_000), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_lease_holder_may_renew_its_lease_and_no_one_else() {
    let first = decide(
        &PersonState::default(),
        None,
        &facts("b1", Operation::Create, Some(T0)),
        T0,
        LEASE_MS,
        "tok-a",
    );
    let Decision::Go { lease, .. } = first else {
        panic!("{first:?}")
    };
    let held = PersonState {
        lease: Some(lease),
        ..PersonState::default()
    };
    let other = decide(
        &held,
        None,
        &facts("m2", Operation::Update, Some(T0)),
        T0 + 10,
        LEASE_MS,
        "tok-b",
    );
    assert!(matches!(other, Decision::Busy { .. }), "{other:?}");
    let again = decide(
        &held,
        None,
        &facts("b1", Operation::Create, Some(T0)),
        T0 + 10,
        LEASE_MS,
        "tok-a",
    );
    let Decision::Go { lease, .. } = again else {
        panic!("{again:?}")
    };
    assert_eq!(lease.until, T0 + 10 + LEASE_MS);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_future_mark_holds_every_event_back_until_an_admin_resets_it() {
    // An update dated 3000 that carried accountEnabled: the mark of both kinds of event.
    let mut frozen = applied(32_503_680_000_000, Operation::Update, "m-future");
    frozen.last_status = frozen.last.clone();
    let leaver = facts("m-leave", Operation::Disable, Some(T0));
    assert_eq!(
        action_of(&decide(&frozen, None, &leaver, T0, LEASE_MS, "tok")),
        json!("stale")
    );
    let mover = facts("m-move", Operation::Update, Some(T0));
    assert_eq!(
        action_of(&decide(&frozen, None, &mover, T0, LEASE_MS, "tok")),
        json!("stale")
    );
    let reset = reset_marks(&frozen);
    assert_eq!((reset.last.as_ref(), reset.last_status.as_ref()), (None, None));
    assert_eq!(reset.cxone_id.as_deref(), Some("cx-1"));
    assert!(matches!(
        decide(&reset, None, &mover, T0, LEASE_MS, "tok"),
        Decision::Go { .. }
    ));
    assert!(matches!(
        decide(&reset, None, &leaver, T0, LEASE_MS, "tok"),
        Decision::Go { .. }
    ));
    let deleted = applied(T0, Operation::Delete, "m-del");
    assert!(deleted.is_tombstoned());
    assert!(!reset_marks(&deleted).is_tombstoned());
}

#[wasm_bindgen_test(unsupported = test)]
fn one_person_one_ledger_keys() {
    assert_eq!(person_key(Some("e-1"), "Jane@X.io"), "ext:e-1");
    assert_eq!(person_key(None, " Jane@X.io "), "user:jane@x.io");
    assert_eq!(user_key("JANE@x.io"), "user:jane@x.io");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_linked_user_name_forwards_every_delivery_to_the_external_id_ledger() {
    let by_name = applied(T0, Operation::Create, "m-name-only");
    let (forwarding, answer) = link(&by_name, "ext:e-1", T0 + 5);
    let Link::Linked { carried: Some(carried) } = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(carried.last.as_ref().map(|l| l.event_id.as_str()), Some("m-name-only"));
    assert_eq!(forwarding.alias_of.as_deref(), Some("ext:e-1"));
    let d = decide(
        &forwarding,
        None,
        &facts("m2", Operation::Disable, Some(T0 + 9)),
        T0 + 9,
        LEASE_MS,
        "tok",
    );
    let Decision::Forward {
        to,
        carried,
        first_seen,
    } = d
    else {
        panic!("{d:?}")
    };
    assert_eq!((to.as_str(), first_seen), ("ext:e-1", Some(T0 + 9)));
    assert_eq!(
        carried.and_then(|c| c.last).map(|l| l.event_id),
        Some("m-name-only".to_string())
    );
    // A redelivery keeps the time the userName's ledger first saw it.
    let first = seen(T0 + 2, "m2", None);
    let again = decide(
        &forwarding,
        Some(&first),
        &facts("m2", Operation::Disable, None),
        T0 + 90,
        LEASE_MS,
        "tok",
    );
    assert!(
        matches!(again, Decision::Forward { first_seen: Some(t), .. } if t == T0 + 2),
        "{again:?}"
    );
    // An answer the userName's ledger gave before the link is still a duplicate's answer.
    let answered = seen(T0, "m-name-only", Some(StoredAnswer::ok(json!({"action": "created"}))));
    let again = decide(
        &forwarding,
        Some(&answered),
        &facts("m-name-only", Operation::Create, Some(T0)),
        T0 + 9,
        LEASE_MS,
        "tok",
    );
    assert!(matches!(again, Decision::Duplicate { .. }), "{again:?}");
    // Linking again hands the same marks over (an earlier hand-over may have been lost).
    assert_eq!(
        link(&forwarding, "ext:e-1", T0 + 10).1,
        Link::Linked {
            carried: forwarding.marks()
        }
    );
    assert!(forwarding.marks().is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_user_name_in_use_is_linked_only_once_its_delivery_is_done() {
    let mut busy = applied(T0, Operation::Create, "m1");
    busy.lease = Some(Lease {
        holder: "m2".into(),
        token: "t".into(),
        until: T0 + 1_000,
    });
    let (same, answer) = link(&busy, "ext:e-1", T0 + 400);
    assert_eq!(answer, Link::Busy { retry_after_ms: 600 });
    assert_eq!(same, busy);
    let (_, answer) = link(&busy, "ext:e-1", T0 + 1_000);
    assert!(matches!(answer, Link::Linked { carried: Some(_) }), "{answer:?}");
    // A userName another externalId had: re-pointed, and that person's marks are not carried.
    let other = PersonState {
        alias_of: Some("ext:e-0".into()),
        ..applied(T0, Operation::Create, "m-e0")
    };
    let (moved, answer) = link(&other, "ext:e-1", T0);
    assert_eq!(
        (moved.alias_of.as_deref(), answer),
        (Some("ext:e-1"), Link::Linked { carried: None })
    );
    assert_eq!(
        moved.marks(),
        None,
        "the other person's marks do not stay to be handed over"
    );
    // A userName's ledger that never ordered anything carries nothing.
    assert_eq!(
        link(&PersonState::default(), "ext:e-1", T0).1,
        Link::Linked { carried: None }
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn carried_marks_order_the_external_id_ledger() {
    // A disable that named only the userName, at T0 + 50; then an update by externalId dated T0.
    let mut carried = applied(T0 + 50, Operation::Disable, "m-name-disable");
    carried.cxone_id = Some("cx-9".into());
    let own = applied(T0 - 100, Operation::Create, "m-create");
    let merged = absorb(&own, &carried);
    assert_eq!(
        merged.last.as_ref().map(|l| l.event_id.as_str()),
        Some("m-name-disable")
    );
    assert_eq!(merged.status_mark().map(|l| l.at), Some(T0 + 50));
    assert_eq!(
        merged.cxone_id.as_deref(),
        Some("cx-1"),
        "the externalId ledger's account wins"
    );
    let older = facts("m-update", Operation::Update, Some(T0));
    assert_eq!(
        action_of(&decide(&merged, None, &older, T0 + 60, LEASE_MS, "tok")),
        json!("stale")
    );
    let fresh = absorb(&PersonState::default(), &carried);
    assert_eq!(fresh.cxone_id.as_deref(), Some("cx-9"));
}

#[wasm_bindgen_test(unsupported = test)]
fn admins_name_a_ledger_by_its_key() {
    assert_eq!(parse_person_key("ext:e-1").as_deref(), Some("ext:e-1"));
    assert_eq!(parse_person_key("user:Jane@X.io").as_deref(), Some("user:jane@x.io"));
    for bad in ["", "ext:", "user: ", "jane@x.io", "EXT:e-1", "id:1"] {
        assert_eq!(parse_person_key(bad), None, "{bad:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_reset_is_recorded_for_the_person_it_was_done_to() {
    let before = applied(T0, Operation::Update, "m1");
    let after = reset_marks(&before);
    let record = reset_record("ext:e-1", &before, &after, T0);
    assert_eq!(record.action, Some(Action::MarksReset));
    assert_eq!(record.trigger, crate::audit::Trigger::Admin);
    assert_eq!(
        (record.who.external_id.as_deref(), record.who.user_name.as_deref()),
        (Some("e-1"), None)
    );
    assert_eq!(record.who.cxone_id.as_deref(), Some("cx-1"));
    let by_name = reset_record("user:jane@x.io", &before, &after, T0);
    assert_eq!(by_name.who.user_name.as_deref(), Some("jane@x.io"));
    assert_ne!(
        record.payload_sha256,
        reset_record("ext:e-1", &before, &before, T0).payload_sha256
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_user_name_is_linked_only_to_a_person_with_an_external_id() {
    assert_eq!(
        link_of(Some("e1"), " Jane@X.io "),
        Some(("user:jane@x.io".to_string(), "ext:e1".to_string()))
    );
    assert_eq!(link_of(None, "jane@x.io"), None);
    assert_eq!(link_of(Some("e1"), "  "), None);
}
