"""CXone as NICE publishes it, end to end: a Worker with CXONE_PROFILE=cxone and an access key
against the stand-in's CXone profile (access-key tokens only, `userName eq` the only search, no
/Bulk, /ServiceProviderConfig, /Groups or DELETE, roles from the tenant's list, teams by id in
NICE's extension, names and an email required on create)."""

import json
import urllib.parse
import uuid

import pytest

from conftest import (CLIENT_ID, CLIENT_SECRET, FAST_RETRIES, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, GRAPH_TENANT,
                      STANDIN_PORT, client_of, own_worker)
from harness import start_standin, stop_group
from helpers import Standin
from test_bulk import users, wait_finished
from test_cli import POLICY as POLICY_FILE, cli
from test_graph_sync import Directory, run_pass, sync_status

CXONE_STANDIN_PORT = STANDIN_PORT + 30
# Ports above the session Worker's: +2, +6, +10, +12 and +14 are other Workers', +8 and +9 the
# Graph and IAM fixtures'.
OFFSET = 16
NICE = "urn:ietf:params:scim:schemas:extension:nice:2.0:User"
# The stand-in's tenant: teams t-100 "Default Team", t-200 "Sales", t-300 "Support".
POLICY = {
    "version": 1,
    "mode": "strict",
    "ignoreGroups": ["All Staff"],
    "mappings": [
        {"group": "cxone-agent", "role": "Agent"},
        {"group": "cxone-supervisor", "role": "Supervisor"},
        {"group": "cxone-sales", "team": "t-200", "teamName": "Sales"},
        {"group": "cxone-support", "team": "t-300"},
    ],
    "roles": [
        {"roleId": "Agent", "displayName": "Agent", "inheritsFrom": []},
        {"roleId": "Supervisor", "displayName": "Supervisor", "inheritsFrom": ["Agent"]},
    ],
    "maxRolesPerUser": 5,
    "maxInheritanceDepth": 3,
}


@pytest.fixture(scope="module")
def cxone(workdir):
    proc = start_standin(CXONE_STANDIN_PORT, CLIENT_ID, CLIENT_SECRET, workdir / "standin-cxone.log",
                         profile="cxone")
    try:
        yield Standin(f"http://127.0.0.1:{CXONE_STANDIN_PORT}", CLIENT_ID, CLIENT_SECRET, profile="cxone")
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def worker(cxone, graphfix, workdir):
    graph = [f"GRAPH_BASE_URL={graphfix.url}/v1.0",
             f"GRAPH_TOKEN_URL={graphfix.url}/{GRAPH_TENANT}/oauth2/v2.0/token",
             f"GRAPH_CLIENT_ID={GRAPH_CLIENT_ID}", f"GRAPH_CLIENT_SECRET={GRAPH_CLIENT_SECRET}",
             "GRAPH_USER_SCOPE=mapped-groups", "GRAPH_GROUP_ROUND_MINUTES=0"]
    extra = [*FAST_RETRIES, "SUBREQUEST_BUDGET=1000", f"ROLE_POLICY='{json.dumps(POLICY)}'", *graph]
    with own_worker(workdir, "cxone", OFFSET, cxone.url, extra, profile="cxone") as dev:
        yield client_of(dev)


@pytest.fixture
def cx(cxone):
    cxone.clear_faults()
    cxone.clear_log()
    yield cxone
    cxone.clear_faults()


def person(groups=("cxone-agent",), **extra):
    tag = uuid.uuid4().hex[:8]
    event = {"operation": "create", "userName": f"cx.{tag}@example.com", "externalId": f"entra-{tag}",
             "firstName": "Casey", "lastName": f"Agent{tag}",
             "groups": [{"displayName": g} for g in groups], "accountEnabled": True}
    event.update(extra)
    return event


def then(event, **changes):
    return {**event, **changes}


def user_searches(log):
    """The filters of every GET /scim/v2/Users the Worker sent."""
    out = []
    for e in log:
        if e["method"] == "GET" and e["path"] == "/scim/v2/Users":
            out.append(urllib.parse.parse_qs(e["query"]).get("filter", [None])[0])
    return out


def applied(worker, event, action, note=None):
    status, body, _ = worker.post_event(event)
    assert (status, body.get("action"), body.get("note")) == (200, action, note), body
    return body


def test_validate_searches_a_user_name_nobody_has_and_reads_the_schemas(worker, cx):
    status, body, _ = worker.admin_get("/test/validate")
    assert (status, body["status"], body["profile"]) == (200, "healthy", "cxone"), body
    assert body["search"].startswith('userName eq "') and (body["usersFetched"], body["totalResults"]) == (0, 0)
    assert body["schemas"] == {"roles": True, "niceExtension": True, "team": True}, body
    log = cx.log()
    assert [e["path"] for e in log] == ["/authentication/v1/token/access-key", "/scim/v2/Users", "/scim/v2/Schemas"]
    assert [e["status"] for e in log] == [200, 200, 200]


def test_joiner_mover_rename_disable_and_leaver(worker, cx):
    joiner = person(groups=("cxone-agent", "cxone-sales", "All Staff"))
    body = applied(worker, joiner, "created")
    uid = body["id"]
    account = cx.user(uid)
    assert [r["value"] for r in account["roles"]] == ["Agent"]
    assert account[NICE]["team"] == {"value": "t-200", "display": "Sales"}
    assert account["emails"][0]["value"] == joiner["userName"] and account["active"] is True

    mover = then(joiner, operation="update", lastName="Moved",
                 groups=[{"displayName": "cxone-supervisor"}, {"displayName": "cxone-support"}])
    assert applied(worker, mover, "updated")["id"] == uid
    account = cx.user(uid)
    assert account["name"]["familyName"] == "Moved" and account[NICE]["team"]["value"] == "t-300"
    assert "Supervisor" in [r["value"] for r in account["roles"]]

    # A UPN change: CXone can only search by userName, so the account is found by the id the
    # person's ledger knows.
    cx.clear_log()
    renamed = then(mover, userName=f"renamed.{joiner['userName']}")
    assert applied(worker, renamed, "updated")["id"] == uid
    assert cx.user(uid)["userName"] == renamed["userName"]
    assert ("GET", f"/scim/v2/Users/{uid}") in [(e["method"], e["path"]) for e in cx.log()]

    cx.clear_log()
    assert applied(worker, then(renamed, operation="disable"), "disabled")["id"] == uid
    worker_requests = [(e["method"], e["path"]) for e in cx.log() if e["path"].startswith("/scim/")]
    assert worker_requests[-2:] == [("PATCH", f"/scim/v2/Users/{uid}"), ("GET", f"/scim/v2/Users/{uid}")], \
        "read back before it is reported"
    assert cx.user(uid)["active"] is False

    back = applied(worker, then(renamed, operation="update", accountEnabled=True), "updated", "reinstated")
    assert "not restored automatically" in back["detail"], back
    assert cx.user(uid)["active"] is True
    cx.clear_log()
    leaver = applied(worker, then(renamed, operation="delete"), "deactivated", "cxone_cannot_delete")
    assert leaver["id"] == uid
    account = cx.user(uid)
    assert account["active"] is False, "CXone keeps the account, inactive"
    log = cx.log()
    assert not [e for e in log if e["method"] == "DELETE"], log
    # The ledger keeps the leaver: a later disable is not applied.
    applied(worker, then(renamed, operation="disable"), "skipped", "deleted")


def test_a_person_the_bridge_has_not_written_is_searched_by_user_name(worker, cx):
    """An account made in CXone itself: no ledger knows its id, so the update searches by
    userName (never by externalId, which CXone does not search by) and claims the account,
    which has no externalId."""
    event = person(operation="update")
    status, made, _ = cx.scim("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": event["userName"],
        "name": {"givenName": "Made", "familyName": "InCXone"}, "emails": [{"value": event["userName"]}]})
    assert status == 201, made
    cx.clear_log()
    assert applied(worker, event, "updated")["id"] == made["id"]
    searches = user_searches(cx.log())
    assert searches == [f'userName eq "{event["userName"]}"'], searches
    assert cx.user(made["id"])["externalId"] == event["externalId"]


def test_a_recycled_user_name_with_a_new_external_id_is_a_conflict_and_nothing_is_written(worker, cx):
    tag = uuid.uuid4().hex[:8]
    name = f"recycled.{tag}@example.com"
    status, old, _ = cx.scim("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "externalId": f"left-{tag}",
        "name": {"givenName": "Old", "familyName": "Owner"}, "emails": [{"value": name, "type": "work"}],
        "active": True})
    assert status == 201, old
    cx.clear_log()
    status, body, _ = worker.post_event(person(userName=name))
    assert (status, body.get("action")) == (200, "conflict"), body
    assert [(e["method"], e["status"]) for e in cx.scim_writes()] == [("POST", 409)], "the refused create only"
    assert cx.user(old["id"])["externalId"] == f"left-{tag}"


def test_a_joiner_without_a_family_name_or_email_is_refused_with_422_and_nothing_is_sent(worker, cx):
    event = person()
    event.pop("lastName")
    event["userName"] = "no-address-" + uuid.uuid4().hex[:8]
    status, body, _ = worker.post_event(event)
    assert status == 422 and body["scimType"] == "invalidValue", body
    assert "familyName" in body["detail"] and "email" in body["detail"], body
    assert cx.scim_writes() == []


def test_the_cli_provisions_with_an_access_key_one_request_per_user(cx, tmp_path):
    tag = uuid.uuid4().hex[:6]
    batch = users(30, tag)
    (tmp_path / "users.json").write_text(json.dumps(batch))
    env = {"CXONE_SCIM_BASE_URL": f"{cx.url}/scim/v2", "CXONE_PROFILE": "cxone", "CXONE_AUTH": "access_key",
           "CXONE_TOKEN_URL": f"{cx.url}/authentication/v1/token/access-key",
           "CXONE_ACCESS_KEY_ID": CLIENT_ID, "CXONE_ACCESS_KEY_SECRET": CLIENT_SECRET}
    out = cli("bulk", "--users", str(tmp_path / "users.json"), "--policy", str(POLICY_FILE), "--quiet",
              "--report", str(tmp_path / "report.json"), env=env)
    assert out.returncode == 0, out.stderr.decode()
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["counts"]["created"], report["bulkRequests"], report["userWrites"]) == (30, 0, 30), report
    assert [e["path"] for e in cx.log() if e["method"] == "POST"][0] == "/authentication/v1/token/access-key"
    assert not [e for e in cx.log() if e["path"].endswith("/Bulk")]
    assert CLIENT_SECRET.encode() not in out.stdout + out.stderr


def test_role_sync_writes_roles_and_the_team(worker, cx):
    joiner = person()
    uid = applied(worker, joiner, "created")["id"]
    status, body, _ = worker.admin_post("/roles/sync", {
        "userName": joiner["userName"], "externalId": joiner["externalId"],
        "groups": [{"displayName": "cxone-supervisor"}, {"displayName": "cxone-sales"}]})
    assert status == 200 and body["action"] == "updated", body
    account = cx.user(uid)
    assert "Supervisor" in [r["value"] for r in account["roles"]]
    assert account[NICE]["team"]["value"] == "t-200"


def test_bulk_of_2000_sends_each_user_once_without_bulk(worker, cx):
    tag = uuid.uuid4().hex[:6]
    batch = users(2000, tag)
    status, body, _ = worker.admin_post("/provision/bulk", {"users": batch, "runId": f"cx-{tag}"})
    assert status == 202, body
    report = wait_finished(worker, f"cx-{tag}", timeout=600)
    counts = report["counts"]
    assert (counts["created"], counts["failed"], counts["conflict"]) == (2000, 0, 0), counts
    assert report["bulkRequests"] == 0 and report["userWrites"] == 2000, report
    log = cx.log()
    assert not [e for e in log if e["path"].endswith("/Bulk")], "no Bulk request"
    created = [e for e in log if e["method"] == "POST" and e["path"] == "/scim/v2/Users" and e["status"] == 201]
    assert len(created) == 2000
    names = [n for n in cx.all_user_names() if n.startswith(f"bulk.{tag}.")]
    assert sorted(names) == sorted(u["userName"] for u in batch), "each created once"


def test_a_graph_first_pass_creates_everyone_in_scope_one_request_each(worker, cx, graphfix):
    graphfix.reset()
    d = Directory(graphfix)
    d.group("agent", "cxone-agent")
    d.group("sales", "cxone-sales")
    people = d.people(3, groups=("agent",))
    seller = d.person(groups=("agent", "sales"))
    if sync_status(worker)["cursor"] is not None:
        run_pass(worker)
    cx.clear_log()
    last = run_pass(worker)["lastPass"]
    assert last["counts"].get("created") == 4, last
    for u in [*people, seller]:
        found = cx.find("userName", u["userPrincipalName"])
        assert len(found) == 1 and found[0]["externalId"] == u["id"], found
        assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" not in found[0], \
            "CXone publishes no enterprise extension: department and employeeId are not sent"
    assert cx.find("userName", seller["userPrincipalName"])[0][NICE]["team"]["value"] == "t-200"
    posts = [e for e in cx.log() if e["method"] == "POST" and e["path"] == "/scim/v2/Users"]
    assert [e["status"] for e in posts] == [201] * 4
    assert not [e for e in cx.log() if e["path"].endswith("/Bulk")]
