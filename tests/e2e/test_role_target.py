"""A single-valued ROLE_TARGET end to end: a second Worker that keeps each person's role in the
enterprise extension's `division` (a single-valued attribute scim2-server knows) instead of
`roles`. Webhooks, bulk runs and `POST /roles/sync` all write the one role the policy's priorities
pick there, leave `roles` on the account alone, and record before → after from that attribute."""

import json
import uuid

import pytest

from conftest import ENTERPRISE, FAST_RETRIES, client_of, own_worker
from test_lifecycle import only_user, person, then
from test_roles_audit import audit_get, role_sync

DIVISION = f"{ENTERPRISE}:division"
POLICY = {
    "version": 1,
    "mode": "strict",
    "ignoreGroups": ["All Staff"],
    "mappings": [{"group": "cxone-agent", "role": "Agent"}, {"group": "cxone-supervisor", "role": "Supervisor"}],
    "roles": [{"roleId": "Agent", "inheritsFrom": [], "priority": 10},
              {"roleId": "Supervisor", "inheritsFrom": ["Agent"], "priority": 20}],
    "maxRolesPerUser": 5,
    "maxInheritanceDepth": 3,
}


@pytest.fixture(scope="module")
def division_worker(standin, workdir):
    # Its own ports: the session Worker, the misconfigured one (+2), the stand-in and its scim2-server (+3, +4) hold theirs.
    extra = [*FAST_RETRIES, f"ROLE_TARGET={DIVISION}", f"ROLE_POLICY='{json.dumps(POLICY)}'"]
    with own_worker(workdir, "role-target", 6, standin.url, extra) as dev:
        yield client_of(dev)


def division_of(user):
    return user.get(ENTERPRISE, {}).get("division")


def roles_of(user):
    return [r["value"] for r in user.get("roles", [])]


def applied(worker, event, action):
    status, body, _ = worker.post_event(event)
    assert (status, body.get("action")) == (200, action), body
    return body


def test_webhooks_write_the_picked_role_to_the_target_and_leave_roles_alone(division_worker, clean):
    joiner = person(groups=("cxone-agent", "cxone-supervisor"))
    user_id = applied(division_worker, joiner, "created")["id"]
    user = only_user(clean, joiner)
    assert division_of(user) == "Supervisor", user
    assert roles_of(user) == [], "roles is not the target"
    assert ENTERPRISE in user["schemas"], user

    # Roles someone set on the account by hand stay as they are; only the target moves.
    status, _, _ = clean.scim("PATCH", f"/Users/{user_id}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "roles", "value": [{"value": "Legacy"}]}]})
    assert status in (200, 204)
    clean.clear_log()
    applied(division_worker, then(joiner, operation="update", groups=[{"displayName": "cxone-agent"}]), "updated")
    user = clean.user(user_id)
    assert (division_of(user), roles_of(user)) == ("Agent", ["Legacy"]), user
    writes = clean.scim_writes()
    assert [w["method"] for w in writes] == ["PATCH"] and writes[0]["status"] in (200, 204), writes
    ops = writes[0]["body"]["Operations"]
    assert [(o["op"], o["path"], o.get("value")) for o in ops] == [("replace", DIVISION, "Agent")], ops

    # Without groups nothing about roles is written; with none granted the attribute goes.
    clean.clear_log()
    unchanged = then(joiner, operation="update")
    del unchanged["groups"]
    applied(division_worker, unchanged, "unchanged")
    assert clean.scim_writes() == []
    applied(division_worker, then(joiner, operation="update", groups=[]), "updated")
    user = clean.user(user_id)
    assert (division_of(user), roles_of(user)) == (None, ["Legacy"]), user

    status, entries, _, _ = audit_get(division_worker, {"externalId": joiner["externalId"]})
    assert status == 200
    assert [(e["action"], e["rolesBefore"], e["rolesAfter"]) for e in entries] == [
        ("created", [], ["Supervisor"]), ("updated", ["Supervisor"], ["Agent"]), ("updated", ["Agent"], [])], entries


def test_bulk_and_role_sync_write_the_same_target(division_worker, clean):
    tag = uuid.uuid4().hex[:8]
    users = [{"userName": f"div.{tag}.{i}@example.com", "externalId": f"div-{tag}-{i}", "firstName": "D",
              "lastName": f"Iv{i}", "groups": [{"displayName": "cxone-supervisor"}]} for i in range(2)]
    status, existing, _ = clean.scim("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE], "userName": users[1]["userName"],
        "externalId": users[1]["externalId"], "name": {"givenName": "D", "familyName": "Iv1"},
        "roles": [{"value": "Legacy"}], ENTERPRISE: {"division": "Agent"}})
    assert status == 201, existing
    status, report, _ = division_worker.admin_post("/provision/bulk", {"users": users})
    assert status == 200 and report["finished"], report
    assert [u["outcome"] for u in report["users"]] == ["created", "updated"], report
    for u in users:
        user = clean.find("externalId", u["externalId"])[0]
        assert division_of(user) == "Supervisor", user
    assert roles_of(clean.user(existing["id"])) == ["Legacy"]
    entries = audit_get(division_worker, {"externalId": users[1]["externalId"]})[1]
    assert [(e["trigger"], e["rolesBefore"], e["rolesAfter"]) for e in entries] == [
        ("bulk", ["Agent"], ["Supervisor"])], entries

    status, body, _ = role_sync(division_worker, externalId=users[0]["externalId"],
                                groups=[{"displayName": "cxone-agent"}])
    assert status == 200 and body["action"] == "updated", body
    assert (body["rolesBefore"], body["rolesAfter"]) == (["Supervisor"], ["Agent"]), body
    user = clean.find("externalId", users[0]["externalId"])[0]
    assert (division_of(user), roles_of(user)) == ("Agent", []), user
