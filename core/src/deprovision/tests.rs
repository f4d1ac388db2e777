//! The leaver's steps against the simulated CXone (SCIM and the Admin API) on a virtual clock.

use super::*;
use crate::event::Lookup;
use crate::flows::FlowError;
use crate::profile::Profile;
use crate::retry::RetryPolicy;
use crate::testutil::{drive, SimServer, SIM_ADMIN_BASE};
use wasm_bindgen_test::wasm_bindgen_test;

const BASE: &str = "http://cxone.test/scim/v2";
const JANE: &str = r#"{"userName":"jdoe@example.com","externalId":"e-1","active":true}"#;

fn lookup() -> Lookup {
    Lookup {
        user_name: Some("jdoe@example.com".into()),
        external_id: Some("e-1".into()),
        cxone_id: None,
    }
}

fn flow(profile: Profile, admin: bool, options: Options, lookup: Lookup) -> DeprovisionFlow {
    DeprovisionFlow::new(
        BASE,
        profile.capabilities(),
        admin.then(|| AdminApi::new(SIM_ADMIN_BASE)),
        lookup,
        options,
        RetryPolicy::default(),
        7,
        1_000_000,
    )
}

fn run_with(s: &mut SimServer, options: Options) -> Report {
    drive(&mut flow(Profile::Rfc7644, true, options, lookup()), s)
        .0
        .unwrap()
}

fn run(s: &mut SimServer) -> Report {
    run_with(s, Options::default())
}

fn statuses(r: &Report) -> Vec<(StepName, StepStatus)> {
    r.steps.iter().map(|s| (s.step, s.status)).collect()
}

/// Jane, active and logged in, with an agent that has one skill and one group.
fn jane(s: &mut SimServer) -> (String, String) {
    let id = s.insert(JANE);
    let agent = s.agent_id_of(&id);
    s.logged_in.insert(agent.clone());
    s.dependencies
        .insert(agent.clone(), (vec!["Sales EN".into()], vec!["Tier 2".into()], 2));
    (id, agent)
}

#[wasm_bindgen_test(unsupported = test)]
fn a_leaver_is_deactivated_logged_out_and_read_back() {
    let mut s = SimServer::default();
    assert_eq!(
        flow(Profile::Rfc7644, true, Options::default(), lookup()).roles_before(&crate::policy::RoleTarget::Roles),
        None,
        "nothing found yet"
    );
    // Another agent whose name contains Jane's: the search finds it, the match does not.
    s.insert(r#"{"userName":"jdoe@example.com.au","active":true}"#);
    let (id, agent) = jane(&mut s);
    let r = run(&mut s);
    assert_eq!(
        (r.outcome, r.verified),
        (DeprovisionOutcome::Deprovisioned, true),
        "{r:#?}"
    );
    assert_eq!(
        (r.action, r.cxone_id.as_deref(), r.agent_id.as_deref()),
        (Action::Disabled, Some(id.as_str()), Some(agent.as_str()))
    );
    assert_eq!(
        statuses(&r),
        [
            (StepName::Find, StepStatus::Done),
            (StepName::Agent, StepStatus::Done),
            (StepName::Dependencies, StepStatus::Done),
            (StepName::Deactivate, StepStatus::Done),
            (StepName::Logout, StepStatus::Done),
            (StepName::Verify, StepStatus::Done),
        ]
    );
    let deps = r.dependencies.clone().unwrap();
    assert_eq!(
        (
            deps.skills.names.as_slice(),
            deps.groups.count,
            deps.scheduled_callbacks.count
        ),
        (&["Sales EN".to_string()][..], 1, 2)
    );
    assert_eq!(r.licence, Licence::NotManaged);
    assert_eq!(s.user(&id).active, Some(false));
    assert!(!s.logged_in.contains(&agent), "the session is ended");
    let a = "/incontactapi/services/v31.0/agents";
    assert_eq!(
        s.log(),
        [
            "GET /scim/v2/Users".to_string(),
            format!("GET {a}"),
            format!("GET {a}/{agent}/skills"),
            format!("GET {a}/{agent}/groups"),
            format!("GET {a}/{agent}/scheduled-callbacks"),
            format!("PATCH /scim/v2/Users/{id}"),
            format!("POST {a}/{agent}/logout"),
            format!("GET /scim/v2/Users/{id}"),
            format!("GET {a}"),
        ]
    );
    // Each step's latency is its share of the run: the virtual clock moves 5 ms a request.
    let total: u64 = r.steps.iter().map(|s| s.latency_ms).sum();
    // The roles the account held when found, for the audit trail.
    s.insert_as(
        "u9",
        r#"{"userName":"roles@example.com","externalId":"e-9","active":true,"roles":[{"value":"Agent"}]}"#,
    );
    let with_roles = Lookup {
        user_name: Some("roles@example.com".into()),
        external_id: Some("e-9".into()),
        cxone_id: None,
    };
    let mut f = flow(Profile::Rfc7644, true, Options::default(), with_roles);
    drive(&mut f, &mut s).0.unwrap();
    assert_eq!(
        f.roles_before(&crate::policy::RoleTarget::Roles),
        Some(vec!["Agent".to_string()])
    );
    assert_eq!(total, 9 * 5, "{:?}", r.steps);
    assert_eq!(r.step(StepName::Dependencies).unwrap().latency_ms, 15);
    assert!(r.settled());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_second_run_is_already_deprovisioned_and_still_read_back() {
    let mut s = SimServer::default();
    let (id, _) = jane(&mut s);
    run(&mut s);
    s.clear_log();
    let again = run(&mut s);
    assert_eq!(
        (again.outcome, again.verified),
        (DeprovisionOutcome::AlreadyDeprovisioned, true)
    );
    assert_eq!(
        (again.action, again.note),
        (Action::Unchanged, Some(Note::AlreadyDisabled))
    );
    assert_eq!(
        again.step(StepName::Deactivate).unwrap().status,
        StepStatus::AlreadyDone
    );
    assert!(!s.log().iter().any(|l| l.starts_with("PATCH")), "{:?}", s.log());
    assert!(s.log().contains(&format!("GET /scim/v2/Users/{id}")), "read back");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_failed_logout_leaves_the_account_deactivated_and_the_leaver_replayable() {
    let mut s = SimServer::default();
    let (id, agent) = jane(&mut s);
    s.admin_fails.insert("logout", 403);
    let r = run(&mut s);
    assert_eq!((r.outcome, r.verified), (DeprovisionOutcome::Unverified, false));
    assert_eq!(s.user(&id).active, Some(false), "the deactivation stands");
    let logout = r.step(StepName::Logout).unwrap();
    assert_eq!(logout.status, StepStatus::Failed);
    assert!(logout.detail.as_deref().unwrap().contains("403"), "{logout:?}");
    assert_eq!(
        r.step(StepName::Verify).unwrap().status,
        StepStatus::Done,
        "the read-backs still ran"
    );
    assert!(r.replayable() && !r.settled());
    // Replayed once the Admin API takes the logout: the whole leaver again, now verified.
    s.admin_fails.clear();
    let replayed = run(&mut s);
    assert_eq!(
        (replayed.outcome, replayed.verified),
        (DeprovisionOutcome::AlreadyDeprovisioned, true)
    );
    assert!(!s.logged_in.contains(&agent));
}

#[wasm_bindgen_test(unsupported = test)]
fn dependencies_hold_the_leaver_when_asked_and_nothing_changes() {
    let mut s = SimServer::default();
    let (id, agent) = jane(&mut s);
    let held = run_with(
        &mut s,
        Options {
            block_on_dependencies: true,
            ..Options::default()
        },
    );
    assert_eq!((held.outcome, held.verified), (DeprovisionOutcome::Held, false));
    assert_eq!(held.step(StepName::Deactivate).unwrap().status, StepStatus::Held);
    assert_eq!(held.dependencies.as_ref().unwrap().skills.count, 1);
    assert!(held.settled(), "held for a person, not for a replay");
    assert_eq!(s.user(&id).active, Some(true));
    assert!(s.logged_in.contains(&agent));
    assert!(s.log().iter().all(|l| l.starts_with("GET")), "{:?}", s.log());
    // Without dependencies the same request goes through.
    s.dependencies.clear();
    let r = run_with(
        &mut s,
        Options {
            block_on_dependencies: true,
            ..Options::default()
        },
    );
    assert_eq!(r.outcome, DeprovisionOutcome::Deprovisioned);
    // Dependencies that cannot be read hold it too.
    let mut s = SimServer::default();
    jane(&mut s);
    s.admin_fails.insert("groups", 500);
    let r = run_with(
        &mut s,
        Options {
            block_on_dependencies: true,
            ..Options::default()
        },
    );
    assert_eq!(r.outcome, DeprovisionOutcome::Held);
    assert_eq!(r.step(StepName::Dependencies).unwrap().status, StepStatus::Failed);
}

#[wasm_bindgen_test(unsupported = test)]
fn several_agents_end_no_session_and_are_left_for_a_person() {
    let mut s = SimServer::default();
    let (id, agent) = jane(&mut s);
    s.extra_agents
        .push(serde_json::json!({"agentId": 9, "userName": "JDOE@example.com", "isActive": true}));
    let r = run(&mut s);
    assert_eq!(r.step(StepName::Agent).unwrap().status, StepStatus::Ambiguous);
    assert_eq!(r.step(StepName::Logout).unwrap().status, StepStatus::Ambiguous);
    assert_eq!((r.outcome, r.verified), (DeprovisionOutcome::Unverified, false));
    assert!(r.settled(), "nothing a replay would change");
    assert_eq!(
        s.user(&id).active,
        Some(false),
        "the account is provably theirs: deactivated"
    );
    assert!(s.logged_in.contains(&agent), "nothing ended");
    assert!(!s.log().iter().any(|l| l.ends_with("/logout")));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_read_back_that_does_not_show_it_is_tried_again_then_reported() {
    let mut s = SimServer::default();
    jane(&mut s);
    s.agents_stay_active = true;
    let (r, elapsed) = drive(&mut flow(Profile::Rfc7644, true, Options::default(), lookup()), &mut s);
    let r = r.unwrap();
    assert_eq!((r.outcome, r.verified), (DeprovisionOutcome::Unverified, false));
    let verify = r.step(StepName::Verify).unwrap();
    assert_eq!(verify.status, StepStatus::Failed);
    assert!(
        verify.detail.as_deref().unwrap().contains("isActive:true"),
        "{verify:?}"
    );
    let reads = s.log().iter().filter(|l| l.starts_with("GET /scim/v2/Users/")).count();
    assert_eq!(reads, VERIFY_TRIES as usize);
    assert!(elapsed >= VERIFY_PAUSE_MS * 3, "paused 1 s then 2 s: {elapsed}");
    assert!(r.replayable());
}

#[wasm_bindgen_test(unsupported = test)]
fn without_an_admin_api_the_account_alone_is_read_back() {
    let mut s = SimServer::default();
    let id = s.insert(JANE);
    let r = drive(&mut flow(Profile::Rfc7644, false, Options::default(), lookup()), &mut s)
        .0
        .unwrap();
    assert_eq!((r.outcome, r.verified), (DeprovisionOutcome::Deprovisioned, true));
    assert_eq!(r.step(StepName::Logout).unwrap().status, StepStatus::NotConfigured);
    assert_eq!(r.dependencies, None);
    assert_eq!(
        s.log(),
        [
            "GET /scim/v2/Users".to_string(),
            format!("PATCH /scim/v2/Users/{id}"),
            format!("GET /scim/v2/Users/{id}")
        ]
    );
    // endSessions:false is a choice, not a gap: still verified.
    let mut s = SimServer::default();
    let (_, agent) = jane(&mut s);
    let r = run_with(
        &mut s,
        Options {
            end_sessions: false,
            ..Options::default()
        },
    );
    assert_eq!(
        (r.step(StepName::Logout).unwrap().status, r.verified),
        (StepStatus::Skipped, true)
    );
    assert!(s.logged_in.contains(&agent));
}

#[wasm_bindgen_test(unsupported = test)]
fn delete_mode_deletes_only_where_the_server_can() {
    let delete = Options {
        mode: Mode::Delete,
        ..Options::default()
    };
    let mut s = SimServer::default();
    let (id, _) = jane(&mut s);
    let r = run_with(&mut s, delete.clone());
    assert_eq!(
        (r.action, r.outcome, r.verified),
        (Action::Deleted, DeprovisionOutcome::Deprovisioned, true)
    );
    assert_eq!(s.count(), 0);
    assert!(s.log().contains(&format!("DELETE /scim/v2/Users/{id}")));
    let gone = run_with(&mut s, delete.clone());
    assert_eq!(
        (gone.outcome, gone.verified),
        (DeprovisionOutcome::AlreadyDeprovisioned, true)
    );
    // CXone: deactivated, and said so.
    let mut s = SimServer::cxone();
    let id = s.insert(JANE);
    let known = Lookup {
        cxone_id: Some(id.clone()),
        ..lookup()
    };
    let r = drive(&mut flow(Profile::Cxone, true, delete, known), &mut s).0.unwrap();
    assert_eq!(
        (r.action, r.note, r.verified),
        (Action::Deactivated, Some(Note::CxoneCannotDelete), true)
    );
    assert_eq!(s.user(&id).active, Some(false));
    assert!(!s.log().iter().any(|l| l.starts_with("DELETE")));
}

#[wasm_bindgen_test(unsupported = test)]
fn an_account_that_is_not_theirs_is_never_touched() {
    let mut s = SimServer::default();
    s.insert(r#"{"userName":"jdoe@example.com","externalId":"someone-else","active":true}"#);
    let r = run(&mut s);
    assert_eq!(
        (r.outcome, r.action, r.verified),
        (DeprovisionOutcome::Conflict, Action::Conflict, false)
    );
    assert!(r.conflict.is_some());
    assert!(s.log().iter().all(|l| l.starts_with("GET /scim")), "{:?}", s.log());
    let mut s = SimServer::default();
    let r = run(&mut s);
    assert_eq!(
        (r.outcome, r.note),
        (DeprovisionOutcome::NotFound, Some(Note::NotFound))
    );
    assert!(!r.verified && r.settled());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_failed_deactivation_fails_the_change_and_ends_nothing() {
    use crate::flows::{Flow, Step};
    use crate::http::{HttpResponse, Method};
    let mut s = SimServer::default();
    let (_, agent) = jane(&mut s);
    let mut f = flow(Profile::Rfc7644, true, Options::default(), lookup());
    let mut sent = Vec::new();
    let out = loop {
        match f.next_step(1_000_000) {
            Step::Send(req) => {
                sent.push(req.describe());
                // CXone refuses the PATCH for good.
                let resp = if req.method == Method::Patch {
                    HttpResponse::new(400, r#"{"status":"400","detail":"no"}"#)
                } else {
                    s.handle(&req).unwrap()
                };
                f.on_response(resp, 1_000_000);
            }
            Step::Done(out) => break out,
            other => panic!("{other:?}"),
        }
    };
    assert!(matches!(out, Err(FlowError::Rejected { status: 400, .. })), "{out:?}");
    assert_eq!(sent.len(), 6, "find, agent, three dependencies, the PATCH: {sent:?}");
    assert!(
        s.logged_in.contains(&agent),
        "no session ended for an account left active"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn ids_and_notices() {
    let a = deprovision_id("ext:e-1", "evt-1");
    assert_eq!(a, deprovision_id("ext:e-1", "evt-1"));
    assert_ne!(a, deprovision_id("ext:e-1", "evt-2"));
    assert!(a.starts_with("dp_") && a.len() == 27, "{a}");
    let mut s = SimServer::default();
    jane(&mut s);
    let r = run(&mut s);
    let who = crate::audit::Who {
        user_name: Some("jdoe@example.com".into()),
        ..Default::default()
    };
    let notice = DeprovisionNotice::of(&a, who, &r, crate::audit::Trigger::Webhook, Some("left".into()), 0);
    let secret = crate::webhook::WebhookSecret::from_bytes(b"hr-secret-0123456789".to_vec());
    let signed = notice.sign(&secret, 1_700_000_000_000);
    assert_eq!(signed.id, format!("msg_{a}"));
    let body: serde_json::Value = serde_json::from_str(&signed.body).unwrap();
    assert_eq!(body["type"], "cxone.user.deprovisioned");
    assert_eq!(body["data"]["verified"], true);
    assert_eq!(body["data"]["licence"], "not_managed");
    assert_eq!(body["data"]["steps"][4]["step"], "logout");
    let timestamp = signed.timestamp.to_string();
    let headers = crate::webhook::SignatureHeaders {
        id: Some(&signed.id),
        timestamp: Some(&timestamp),
        signature: Some(&signed.signature),
    };
    let secrets = crate::webhook::WebhookSecrets::parse_list(&secret.encode()).unwrap();
    assert!(crate::webhook::verify(&secrets, headers, signed.body.as_bytes(), 1_700_000_000).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_dry_run_reads_and_lists_the_writes_it_would_send() {
    use crate::flows::{Flow, Step};
    use crate::http::Method;
    let mut s = SimServer::default();
    let (id, agent) = jane(&mut s);
    let mut f = flow(Profile::Rfc7644, true, Options::default(), lookup());
    // A host that sends reads and stops at the first write.
    loop {
        match f.next_step(1_000_000) {
            Step::Send(req) if req.method == Method::Get => {
                let resp = s.handle(&req).unwrap();
                f.on_response(resp, 1_000_000);
            }
            Step::Send(_) => break,
            other => panic!("{other:?}"),
        }
    }
    let plan = f.plan();
    let writes: Vec<String> = plan.would_send.iter().map(|r| r.describe()).collect();
    assert_eq!(
        writes,
        [
            format!("PATCH /scim/v2/Users/{id}"),
            format!("POST /incontactapi/services/v31.0/agents/{agent}/logout")
        ]
    );
    assert_eq!(plan.dependencies.unwrap().skills.count, 1);
    assert_eq!(plan.agent_id.as_deref(), Some(agent.as_str()));
    assert!(plan.finished.is_none());
    assert_eq!(s.user(&id).active, Some(true), "nothing written");
    // Held: the plan is the report, nothing to send.
    let mut held = flow(
        Profile::Rfc7644,
        true,
        Options {
            block_on_dependencies: true,
            ..Options::default()
        },
        lookup(),
    );
    let report = drive(&mut held, &mut s).0.unwrap();
    assert_eq!(report.outcome, DeprovisionOutcome::Held);
    let plan = held.plan();
    assert!(plan.would_send.is_empty());
    assert_eq!(plan.finished.unwrap().unwrap().outcome, DeprovisionOutcome::Held);
}

// What a leaver's find shares with every write: the same matching, the same refusals.

fn run_on(s: &mut SimServer, profile: Profile, options: Options, lookup: Lookup) -> Result<Report, FlowError> {
    drive(&mut flow(profile, false, options, lookup), s).0
}

fn delete_mode() -> Options {
    Options {
        mode: Mode::Delete,
        ..Options::default()
    }
}

fn writes(s: &SimServer) -> Vec<String> {
    s.log().into_iter().filter(|l| !l.starts_with("GET")).collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn a_delete_is_idempotent_and_a_user_gone_meanwhile_is_already_gone() {
    let mut s = SimServer::default();
    s.insert(JANE);
    let r = run_on(&mut s, Profile::Rfc7644, delete_mode(), lookup()).unwrap();
    assert_eq!((r.action, r.note, r.verified), (Action::Deleted, None, true));
    assert_eq!(s.count(), 0);
    let again = run_on(&mut s, Profile::Rfc7644, delete_mode(), lookup()).unwrap();
    assert_eq!(
        (again.action, again.note, again.outcome),
        (
            Action::Deleted,
            Some(Note::AlreadyDeprovisioned),
            DeprovisionOutcome::AlreadyDeprovisioned
        )
    );
    // Found, then gone before the DELETE lands: read, and gone.
    s.insert(JANE);
    s.fail_next(crate::testutil::Fault::DeleteAfterLookup);
    let r = run_on(&mut s, Profile::Rfc7644, delete_mode(), lookup()).unwrap();
    assert_eq!(
        (r.action, r.note, r.verified),
        (Action::Deleted, Some(Note::AlreadyDeprovisioned), true)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_server_that_answers_404_to_a_delete_of_an_account_it_keeps_gets_it_deactivated() {
    // Said to delete (rfc7644), but keeps the account: never reported gone.
    let mut s = SimServer::cxone();
    let id = s.insert(r#"{"userName":"jdoe@example.com","active":true}"#);
    let only_name = Lookup {
        external_id: None,
        ..lookup()
    };
    let r = run_on(&mut s, Profile::Rfc7644, delete_mode(), only_name).unwrap();
    assert_eq!(
        (r.action, r.note, r.verified),
        (Action::Deactivated, Some(Note::CxoneCannotDelete), true)
    );
    assert_eq!(s.user(&id).active, Some(false));
    assert_eq!(
        s.log(),
        [
            "GET /scim/v2/Users",
            "DELETE /scim/v2/Users/u1",
            "GET /scim/v2/Users/u1",
            "PATCH /scim/v2/Users/u1",
            "GET /scim/v2/Users/u1"
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn on_cxone_a_leaver_is_deactivated_never_deleted_and_nobody_is_not_claimed() {
    let mut s = SimServer::cxone();
    let id = s.insert(JANE);
    let r = run_on(&mut s, Profile::Cxone, delete_mode(), lookup()).unwrap();
    assert_eq!(
        (r.action, r.note, r.cxone_id.as_deref()),
        (Action::Deactivated, Some(Note::CxoneCannotDelete), Some(id.as_str()))
    );
    assert_eq!(
        s.log(),
        ["GET /scim/v2/Users", "PATCH /scim/v2/Users/u1", "GET /scim/v2/Users/u1"]
    );
    assert_eq!(
        (s.count(), s.users()[0].active),
        (1, Some(false)),
        "still there, inactive"
    );
    let known = Lookup {
        cxone_id: Some(id.clone()),
        ..lookup()
    };
    let again = run_on(&mut s, Profile::Cxone, delete_mode(), known).unwrap();
    assert_eq!(
        (again.action, again.note),
        (Action::Unchanged, Some(Note::AlreadyDisabled))
    );
    assert!(
        s.filters.iter().all(|f| f.starts_with("userName eq")),
        "{:?}",
        s.filters
    );
    let nobody = Lookup {
        user_name: Some("nobody@example.com".into()),
        ..lookup()
    };
    let r = run_on(&mut s, Profile::Cxone, delete_mode(), nobody).unwrap();
    assert_eq!(
        (r.action, r.note, r.outcome),
        (Action::Unchanged, Some(Note::NotFound), DeprovisionOutcome::NotFound)
    );
    // Known by externalId alone, no id known: CXone cannot search for it; refused, not "not found".
    let mut s = SimServer::cxone();
    let only_ext = Lookup {
        user_name: None,
        ..lookup()
    };
    assert!(matches!(
        run_on(&mut s, Profile::Cxone, delete_mode(), only_ext),
        Err(FlowError::Ambiguous(_))
    ));
    assert!(s.log().is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_leaver_known_by_external_id_alone_on_a_server_that_filters_by_it() {
    let mut s = SimServer::default();
    let id = s.insert(JANE);
    let only_ext = Lookup {
        user_name: None,
        ..lookup()
    };
    let r = run_on(&mut s, Profile::Rfc7644, delete_mode(), only_ext.clone()).unwrap();
    assert_eq!((r.action, r.cxone_id), (Action::Deleted, Some(id.clone())));
    let again = run_on(&mut s, Profile::Rfc7644, delete_mode(), only_ext).unwrap();
    assert_eq!(again.note, Some(Note::AlreadyDeprovisioned));
    assert_eq!(
        s.log(),
        [
            "GET /scim/v2/Users",
            format!("DELETE /scim/v2/Users/{id}").as_str(),
            format!("GET /scim/v2/Users/{id}").as_str(),
            "GET /scim/v2/Users"
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_recycled_user_name_a_server_ignoring_filters_and_unusable_ids_write_nothing() {
    for options in [Options::default(), delete_mode()] {
        // Another person's account under the userName.
        let mut s = SimServer::default();
        let old = s.insert(r#"{"userName":"jdoe@example.com","externalId":"e-old","active":true}"#);
        let r = run_on(&mut s, Profile::Rfc7644, options.clone(), lookup()).unwrap();
        let c = r.conflict.unwrap();
        assert_eq!(
            (r.outcome, c.reason),
            (
                DeprovisionOutcome::Conflict,
                crate::flows::ConflictReason::OtherExternalId
            )
        );
        assert_eq!(c.filter, "userName eq \"jdoe@example.com\"");
        assert!(writes(&s).is_empty(), "{:?}", s.log());
        assert_eq!(s.user(&old).active, Some(true));
        // A server that answers every filter with everyone.
        let mut s = SimServer::default();
        s.insert(r#"{"userName":"other@example.com","externalId":"e-other","active":true}"#);
        s.ignore_filter = true;
        let r = run_on(&mut s, Profile::Rfc7644, options.clone(), lookup()).unwrap();
        assert_eq!(r.conflict.unwrap().reason, crate::flows::ConflictReason::FilterIgnored);
        assert!(writes(&s).is_empty(), "{:?}", s.log());
        // An id nothing may be sent to.
        for id in ["", "..", "../../admin", "a/b", "a?b"] {
            let mut s = SimServer::default();
            let listed = serde_json::json!({"totalResults": 1, "Resources": [
                {"id": id, "userName": "jdoe@example.com", "externalId": "e-1", "active": true}]})
            .to_string();
            s.fail_next(crate::testutil::Fault::Body(200, Box::leak(listed.into_boxed_str())));
            let out = run_on(&mut s, Profile::Rfc7644, options.clone(), lookup());
            assert!(matches!(out, Err(FlowError::UnusableId(_))), "{id:?}: {out:?}");
            assert!(writes(&s).is_empty());
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_deactivation_cxone_accepts_but_does_not_apply_is_never_reported_done() {
    use crate::flows::{Flow, Step};
    let mut s = SimServer::cxone();
    let id = s.insert(JANE);
    let mut f = flow(Profile::Cxone, false, Options::default(), lookup());
    // The lookup goes through; the PATCH is answered 204 without being applied.
    let Step::Send(req) = f.next_step(1) else { panic!() };
    f.on_response(s.handle(&req).unwrap(), 2);
    s.fail_next(crate::testutil::Fault::Body(204, ""));
    let r = drive(&mut f, &mut s).0.unwrap();
    assert_eq!((r.outcome, r.verified), (DeprovisionOutcome::Unverified, false));
    assert!(r
        .step(StepName::Verify)
        .unwrap()
        .detail
        .as_deref()
        .unwrap()
        .contains("reads back active"));
    assert!(r.replayable());
    assert_eq!(s.user(&id).active, Some(true));
}
