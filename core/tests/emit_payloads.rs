//! Builds every kind of payload cxone-scim sends or answers with and, when `SCIM_PAYLOAD_DIR`
//! is set, writes them there for `make test-payloads` to check with an independent SCIM
//! implementation (scim2-models, via ../shared/tools/scim-validate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should stop loudly

use cxone_scim_core::event::{Command, LifecycleEvent};
use cxone_scim_core::policy::{RolePolicy, RoleTarget};
use cxone_scim_core::scim::build::{create_payload, disable_patch, patch_to, replace_payload, DesiredUser, TEAM_PATH};
use cxone_scim_core::scim::{ListResponse, ScimError, User, USER_SCHEMA};
use serde::Serialize;
use serde_json::Value;

fn desired(event: &str) -> DesiredUser {
    desired_at(event, &RoleTarget::Roles)
}

fn desired_at(event: &str, target: &RoleTarget) -> DesiredUser {
    let policy = RolePolicy::from_json(include_str!("fixtures/role_policy.json")).unwrap();
    match LifecycleEvent::from_json(event.as_bytes())
        .unwrap()
        .command(&policy, target)
        .unwrap()
        .0
    {
        Command::Upsert { desired, .. } => *desired,
        other => panic!("{other:?}"),
    }
}

fn emit<T: Serialize>(kind: &str, name: &str, payload: &T) {
    let text = serde_json::to_string_pretty(payload).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert!(parsed.is_object(), "{kind}/{name} must be a JSON object");
    if let Ok(dir) = std::env::var("SCIM_PAYLOAD_DIR") {
        std::fs::write(format!("{dir}/{kind}-{name}.json"), text).unwrap();
    }
}

#[test]
fn emits_every_payload_kind() {
    let jane = desired(include_str!("fixtures/event_create.json"));
    emit("user", "create", &create_payload(&jane));

    let rfc: User = serde_json::from_str(include_str!("fixtures/rfc7643_enterprise_user.json")).unwrap();
    emit("user", "replace-rfc", &replace_payload(&rfc, &jane));

    let current = create_payload(&jane);
    let moved = desired(
        r#"{"operation":"update","userName":"jdoe@example.com","externalId":"e-jdoe-1","firstName":"Jane",
            "lastName":"Roe","email":"jane.roe@example.com","groups":[{"displayName":"cxone-supervisor"}]}"#,
    );
    let patch = patch_to(&current, &moved).expect("a mover needs a patch");
    assert!(patch.operations.len() >= 4);
    emit("patch", "mover", &patch);

    let stripped = desired(r#"{"operation":"update","userName":"jdoe@example.com","groups":[]}"#);
    emit(
        "patch",
        "remove-roles",
        &patch_to(&current, &stripped).expect("roles removed"),
    );

    // A single-valued ROLE_TARGET (the enterprise extension's division): the role goes there.
    let division = RoleTarget::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division").unwrap();
    let at_division = desired_at(include_str!("fixtures/event_create.json"), &division);
    let created_at_division = create_payload(&at_division);
    assert!(created_at_division.roles.is_empty() && created_at_division.enterprise.is_some());
    emit("user", "create-role-target", &created_at_division);
    emit("user", "replace-role-target", &replace_payload(&rfc, &at_division));
    let moved_at_division = desired_at(
        r#"{"operation":"update","userName":"jdoe@example.com","groups":[{"displayName":"cxone-supervisor"}]}"#,
        &division,
    );
    let patch = patch_to(&created_at_division, &moved_at_division).expect("the role moves");
    assert_eq!(patch.operations.len(), 1);
    emit("patch", "role-target", &patch);

    // A team mapped by the policy: the create carries NICE's extension, a mover's PATCH its team.
    // Written as `nice-user-*` and `nice-patch-*`, outside the `user` and `patch` kinds checked
    // today: the checker's User model holds the enterprise extension only and refuses any other
    // (NICE's included) as an unknown attribute.
    let teams = RolePolicy::from_json(include_str!("fixtures/role_policy_teams.json")).unwrap();
    let in_team = |event: &str| match LifecycleEvent::from_json(event.as_bytes())
        .unwrap()
        .command(&teams, &RoleTarget::Roles)
        .unwrap()
        .0
    {
        Command::Upsert { desired, .. } => *desired,
        other => panic!("{other:?}"),
    };
    let teamed = in_team(
        r#"{"operation":"create","userName":"jdoe@example.com","externalId":"e-jdoe-1","firstName":"Jane",
            "lastName":"Doe","groups":[{"displayName":"cxone-agent"},{"displayName":"support-emea"}]}"#,
    );
    let created_in_team = create_payload(&teamed);
    let nice = "urn:ietf:params:scim:schemas:extension:nice:2.0:User";
    let v = serde_json::to_value(&created_in_team).unwrap();
    assert_eq!(v["schemas"], serde_json::json!([USER_SCHEMA, nice]));
    assert_eq!(
        v[nice],
        serde_json::json!({"team": {"value": "5f0c7e2a-1d2b-4c3d-8e4f-a1b2c3d4e5f6", "display": "Support EMEA"}})
    );
    emit("nice-user", "create-team", &created_in_team);
    let moved_team = in_team(
        r#"{"operation":"update","userName":"jdoe@example.com","groups":[{"displayName":"cxone-agent"},
            {"id":"6f1c2d3e-0000-4000-8000-00000000a002"}]}"#,
    );
    let patch = patch_to(&created_in_team, &moved_team).expect("the team moves");
    assert_eq!(patch.operations.len(), 1);
    assert_eq!(patch.operations[0].path.as_deref(), Some(TEAM_PATH));
    emit("nice-patch", "team", &patch);

    let mut homeless = current.clone();
    homeless.emails.clear();
    emit("patch", "add-email", &patch_to(&homeless, &moved).expect("email added"));
    emit("patch", "disable", &disable_patch());

    let staffed = desired(
        r#"{"operation":"create","userName":"asmith@example.com","externalId":"e-asmith-1","firstName":"Al",
            "lastName":"Smith","title":"Agent","department":"Support","employeeNumber":"E-17",
            "displayName":"Al Smith (Support)","initial":{"email":"al.smith@example.com"},
            "groups":[{"displayName":"cxone-agent"}]}"#,
    );
    let created = create_payload(&staffed);
    assert_eq!(created.title.as_deref(), Some("Agent"));
    assert_eq!(created.emails[0].value, "al.smith@example.com", "the initial email");
    assert!(created.enterprise.is_some() && created.schemas.len() == 2);
    emit("user", "create-enterprise", &created);
    emit("user", "replace-enterprise", &replace_payload(&rfc, &staffed));

    let restaffed = desired(
        r#"{"operation":"update","userName":"asmith@example.com","externalId":"e-asmith-1","title":"Supervisor",
            "department":null,"employeeNumber":"E-18","displayName":"","initial":{"title":"ignored"}}"#,
    );
    let patch = patch_to(&created, &restaffed).expect("new attributes need a patch");
    let kinds: Vec<_> = patch
        .operations
        .iter()
        .map(|o| (o.path.clone().unwrap_or_default(), format!("{:?}", o.op)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("displayName".to_string(), "Remove".to_string()),
            ("title".to_string(), "Replace".to_string()),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".to_string(),
                "Remove".to_string()
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber".to_string(),
                "Replace".to_string()
            ),
        ]
    );
    emit("patch", "enterprise", &patch);

    emit(
        "error",
        "rbac",
        &ScimError::new(400, Some("invalidValue"), "RBAC violation: group(s) 'x' not mapped"),
    );
    emit(
        "error",
        "signature",
        &ScimError::new(401, None, "webhook signature rejected: no valid v1 signature"),
    );

    let list: ListResponse<User> = serde_json::from_str(include_str!("fixtures/standin_list_users.json")).unwrap();
    emit("list", "users", &list);
}
