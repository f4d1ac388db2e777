"""Role sync, the IAM notices and the audit trail, end to end: `POST /roles/sync` against the real
Worker and scim2-server (one PUT with If-Match, the 412 retry, refusals that leave CXone alone),
the signed notices the IAM receiver fixture gets (and their parking and replay when it is down),
and the hash-chained trail read back through `GET /audit` and checked by the CLI."""

import base64
import hashlib
import hmac
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import IAM_WEBHOOK_SECRET, ROOT
from test_lifecycle import person

CLI = ROOT / "target/debug/cxone-scim"
AGENT = {"displayName": "cxone-agent"}
SUPERVISOR = {"displayName": "cxone-supervisor"}
SUCCEEDED = "cxone.role.sync.succeeded"
FAILED = "cxone.role.sync.failed"


@pytest.fixture
def iam(iamfix):
    """The IAM receiver up, with nothing received yet."""
    iamfix.up()
    iamfix.clear()
    yield iamfix
    iamfix.up()


def header(headers, name):
    """A response header in any case."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def roles_of(user):
    return [r["value"] for r in user.get("roles", [])]


def created(worker, event):
    """Posts a create webhook; the CXone id of the account it made."""
    status, body, _ = worker.post_event(event)
    assert (status, body.get("action")) == (200, "created"), body
    return body["id"]


def role_sync(worker, **body):
    return worker.admin_post("/roles/sync", body)


def read_with_etag(standin, user_id):
    status, user, headers = standin.scim("GET", f"/Users/{user_id}")
    assert status == 200, user
    return user, header(headers, "ETag")


def deliveries_of(iamfix, notice_id):
    return [d for d in iamfix.received() if d["headers"].get("webhook-id") == notice_id]


def audit_get(worker, query):
    """GET /audit: (status, entries parsed from the JSON lines, raw text, headers)."""
    req = urllib.request.Request(worker.url + "/audit" + ("?" + urllib.parse.urlencode(query) if query else ""),
                                 headers={"Authorization": f"Bearer {worker.admin_token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        text = resp.read().decode()
        headers = dict(resp.headers)
        status = resp.status
    return status, [json.loads(line) for line in text.splitlines() if line.strip()], text, headers


def cli(*args):
    assert CLI.exists(), f"{CLI} is not built (cargo build -p cxone-scim-cli)"
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120)


# 1. A re-sync to fewer roles: one PUT, with If-Match, only the roles changed.

def test_resync_to_fewer_roles_is_one_put_with_if_match(worker, clean, iam):
    joiner = person(groups=("cxone-agent", "cxone-supervisor"))
    user_id = created(worker, joiner)
    before, etag = read_with_etag(clean, user_id)
    assert sorted(roles_of(before)) == ["Agent", "Supervisor"], before
    assert etag, "scim2-server gives an ETag"
    clean.clear_log()

    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[AGENT])
    assert status == 200, body
    assert (body["status"], body["action"], body["id"]) == ("success", "updated", user_id), body
    assert body["verdict"]["verdict"] == "pass" and [r["value"] for r in body["verdict"]["roles"]] == ["Agent"]
    assert sorted(body["rolesBefore"]) == ["Agent", "Supervisor"] and body["rolesAfter"] == ["Agent"], body
    assert body["retriedAfter412"] is False

    after = clean.user(user_id)
    assert roles_of(after) == ["Agent"], after
    for attr in ("userName", "externalId", "name", "emails", "displayName", "active"):
        assert after.get(attr) == before.get(attr), (attr, before.get(attr), after.get(attr))

    writes = clean.scim_writes()
    assert [(e["method"], e["path"], e["status"]) for e in writes] == [("PUT", f"/scim/v2/Users/{user_id}", 200)], \
        writes
    put = writes[0]
    assert put["ifMatch"] == etag, (put["ifMatch"], etag)
    sent = put["body"]
    assert [r["value"] for r in sent["roles"]] == ["Agent"], sent
    for attr in ("userName", "externalId", "name", "emails"):
        assert sent.get(attr) == before.get(attr), (attr, before.get(attr), sent.get(attr))


# 2. An escalation is refused before CXone is touched; a dry run shows the write and sends none.

def test_escalation_is_refused_and_a_dry_run_writes_nothing(worker, clean, iam):
    joiner = person(groups=("cxone-agent",))
    user_id = created(worker, joiner)
    clean.clear_log()

    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[AGENT], roles=["Supervisor"])
    assert status == 403, body
    assert body["status"] == "403" and "Supervisor" in body["detail"], body
    assert body["verdict"] == {"verdict": "escalation_detected", "role": "Supervisor", "via": "request"}, body
    assert clean.scim_writes() == []
    assert roles_of(clean.user(user_id)) == ["Agent"]

    clean.clear_log()
    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[SUPERVISOR], dryRun=True)
    assert status == 200, body
    assert body["dryRun"] is True, body
    assert body["verdict"]["verdict"] == "pass" and [r["value"] for r in body["verdict"]["roles"]] == ["Supervisor"]
    assert [(r["method"], r["url"]) for r in body["requests"]] == \
        [("PUT", f"{clean.url}/scim/v2/Users/{user_id}")], body["requests"]
    planned = body["requests"][0]["body"]
    assert [r["value"] for r in planned["roles"]] == ["Supervisor"], planned
    assert (planned["externalId"], planned["userName"]) == (joiner["externalId"], joiner["userName"]), planned
    assert clean.scim_writes() == []
    assert roles_of(clean.user(user_id)) == ["Agent"]


# 3. Someone else changes the user between the read and the PUT: 412, read again, PUT again.

def test_a_412_is_read_again_and_written_once_more(worker, clean, iam):
    joiner = person(groups=("cxone-agent",))
    user_id = created(worker, joiner)
    clean.clear_log()
    elsewhere = "changed elsewhere " + uuid.uuid4().hex[:6]
    clean.fault(kind="concurrentChange", id=user_id, value=elsewhere)

    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[SUPERVISOR])
    assert status == 200, body
    assert (body["action"], body["retriedAfter412"]) == ("updated", True), body
    assert (body["rolesBefore"], body["rolesAfter"]) == (["Agent"], ["Supervisor"]), body

    on_user = [e for e in clean.log() if e["path"] == f"/scim/v2/Users/{user_id}"]
    assert [(e["method"], e["status"]) for e in on_user] == [("GET", 200), ("PUT", 412), ("GET", 200), ("PUT", 200)], \
        [(e["method"], e["status"], e.get("ifMatch")) for e in on_user]
    first_put, second_put = on_user[1], on_user[3]
    assert first_put["concurrentChange"]["status"] in (200, 204), first_put
    assert first_put["ifMatch"] and second_put["ifMatch"] and first_put["ifMatch"] != second_put["ifMatch"]
    assert [e["method"] for e in clean.scim_writes()] == ["PUT", "PUT"]

    final = clean.user(user_id)
    assert roles_of(final) == ["Supervisor"], final
    assert final.get("nickName") == elsewhere, "the re-read keeps the other client's change"


# 4. The notice: signed with the shared secret, and naming the audit entry of the sync.

def test_notice_is_signed_and_names_the_audit_entry(worker, clean, iam):
    joiner = person(groups=("cxone-agent",))
    user_id = created(worker, joiner)
    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[SUPERVISOR])
    assert status == 200, body
    notice, entry = body["notice"], body["audit"]
    assert notice["status"] == "delivered" and notice["id"], notice
    assert entry["trigger"] == "role_sync" and entry["outcome"] == "success", entry
    assert (entry["rolesBefore"], entry["rolesAfter"]) == (["Agent"], ["Supervisor"]), entry

    got = deliveries_of(iam, notice["id"])
    assert len(got) == 1, iam.received()
    delivery = got[0]
    assert (delivery["verified"], delivery["reason"], delivery["status"]) == (True, None, 200), delivery
    doc = delivery["json"]
    assert doc["type"] == SUCCEEDED, doc
    data = doc["data"]
    assert (data["rolesBefore"], data["rolesAfter"]) == (["Agent"], ["Supervisor"]), data
    assert (data["auditSeq"], data["auditHash"]) == (entry["seq"], entry["hash"]), (data, entry)
    assert (data["trigger"], data["outcome"]) == ("role_sync", "success"), data
    assert data["who"].get("externalId") == joiner["externalId"], data
    assert data["who"].get("cxoneId") == user_id, data
    assert doc["timestamp"] == entry["at"], (doc, entry)

    # The signature, checked here too (Standard Webhooks v1, independent of the receiver fixture).
    headers = delivery["headers"]
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 300, timestamp
    key = base64.b64decode(IAM_WEBHOOK_SECRET.removeprefix("whsec_"))
    raw = delivery["body"].encode()

    def v1(payload):
        mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
        return "v1," + base64.b64encode(mac).decode()

    offered = headers["webhook-signature"].split(" ")
    assert any(hmac.compare_digest(v1(raw), s) for s in offered), (offered, v1(raw))
    assert not any(hmac.compare_digest(v1(raw + b" "), s) for s in offered), "a changed body must not verify"


# 5. The receiver is down: the sync still succeeds, the notice is parked, and replayed later.

def test_notice_parked_while_the_receiver_is_down_then_replayed(worker, clean, iam):
    joiner = person(groups=("cxone-agent",))
    user_id = created(worker, joiner)
    iam.down(status=503, count=1000)

    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[SUPERVISOR])
    assert status == 200, body
    assert (body["status"], body["action"], body["rolesAfter"]) == ("success", "updated", ["Supervisor"]), body
    assert roles_of(clean.user(user_id)) == ["Supervisor"]
    notice = body["notice"]
    assert notice["status"] == "parked" and notice["id"], notice
    assert notice["attempts"] == 3, notice  # RETRY_MAX_ATTEMPTS=3
    tries = deliveries_of(iam, notice["id"])
    assert [d["status"] for d in tries] == [503, 503, 503], tries
    assert all(d["verified"] for d in tries), tries

    parked, _ = worker.admin_pages("/notices", "notices")
    mine = [p for p in parked if p["id"] == notice["id"]]
    assert len(mine) == 1, parked
    assert mine[0]["attempts"] == 3 and "503" in mine[0]["error"] and mine[0]["parkedAt"], mine[0]
    assert mine[0]["notice"]["type"] == SUCCEEDED, mine[0]
    assert (mine[0]["notice"]["data"]["auditSeq"], mine[0]["notice"]["data"]["auditHash"]) == \
        (body["audit"]["seq"], body["audit"]["hash"]), mine[0]

    iam.up()
    iam.clear()
    status, replayed, _ = worker.admin_post(f"/notices/{notice['id']}/replay")
    assert status == 200 and replayed["status"] == "delivered", replayed
    got = deliveries_of(iam, notice["id"])
    assert len(got) == 1, iam.received()
    assert (got[0]["verified"], got[0]["status"]) == (True, 200), got[0]
    assert got[0]["json"] == mine[0]["notice"], (got[0]["json"], mine[0]["notice"])
    parked, _ = worker.admin_pages("/notices", "notices")
    assert all(p["id"] != notice["id"] for p in parked), parked
    status, again, _ = worker.admin_post(f"/notices/{notice['id']}/replay")
    assert status == 404, again


# 6. The trail: a person's records by query, the chain checked by the Worker and by the CLI.

def test_audit_query_verify_and_the_cli_check(worker, clean, iam, tmp_path):
    joiner = person(groups=("cxone-agent",))
    user_id = created(worker, joiner)
    status, synced, _ = role_sync(worker, externalId=joiner["externalId"], groups=[SUPERVISOR])
    assert status == 200, synced

    status, mine, _, headers = audit_get(worker, {"externalId": joiner["externalId"]})
    assert status == 200
    assert header(headers, "Content-Type").startswith("application/x-ndjson"), headers
    assert [(e["trigger"], e["rolesBefore"], e["rolesAfter"], e["outcome"]) for e in mine] == [
        ("webhook", [], ["Agent"], "success"),
        ("role_sync", ["Agent"], ["Supervisor"], "success"),
    ], mine
    assert mine[0]["seq"] < mine[1]["seq"] and mine[0]["action"] == "created" and mine[1]["action"] == "updated"
    assert all(e["who"]["externalId"] == joiner["externalId"] and e["who"].get("cxoneId") == user_id for e in mine)
    assert mine[1] == synced["audit"], (mine[1], synced["audit"])

    status, verdict, _ = worker.admin_get("/audit/verify")
    assert status == 200 and verdict["ok"] is True, verdict
    assert verdict["firstSeq"] == 1 and verdict["checked"] == verdict["lastSeq"] >= synced["audit"]["seq"], verdict

    # Every page, following Next-Cursor (pages small enough that there are several).
    limit = max(1, verdict["checked"] // 3)
    lines, pages, cursor = [], 0, None
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        status, entries, text, headers = audit_get(worker, query)
        assert status == 200 and len(entries) <= limit
        lines += [line for line in text.splitlines() if line.strip()]
        pages += 1
        cursor = header(headers, "Next-Cursor")
        if not cursor:
            break
        assert pages < 10_000
    assert pages >= 2, (pages, verdict, limit)
    by_seq = {e["seq"]: e for e in map(json.loads, lines)}
    total = len(lines)
    assert list(by_seq) == list(range(1, total + 1)) and total >= verdict["lastSeq"], list(by_seq)
    assert by_seq[verdict["lastSeq"]]["hash"] == verdict["headHash"], verdict
    assert by_seq[synced["audit"]["seq"]] == synced["audit"]
    trail = tmp_path / "trail.jsonl"
    trail.write_text("\n".join(lines) + "\n")
    out = cli("audit", "verify", str(trail))
    assert (out.returncode, out.stdout.strip()) == (0, f"ok: {total} records"), (out.stdout, out.stderr)

    # One record changed after the fact (the create, records follow it): the CLI names it.
    k = next(i for i, line in enumerate(lines) if json.loads(line)["seq"] == mine[0]["seq"])
    assert k < len(lines) - 1
    altered = json.loads(lines[k])
    altered["rolesAfter"] = ["Supervisor"]
    tampered = lines[:k] + [json.dumps(altered, separators=(",", ":"))] + lines[k + 1:]
    bad = tmp_path / "tampered.jsonl"
    bad.write_text("\n".join(tampered) + "\n")
    out = cli("audit", "verify", str(bad))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert f"record {altered['seq']} " in out.stdout and f"line {k + 1}:" in out.stdout, out.stdout


# 7. A refused sync is recorded and told to the IAM system too; an unmapped group is refused.

def test_refusals_are_audited_and_noticed_and_write_nothing(worker, clean, iam):
    joiner = person(groups=("cxone-agent",))
    user_id = created(worker, joiner)
    clean.clear_log()

    status, body, _ = role_sync(worker, externalId=joiner["externalId"], groups=[AGENT], roles=["Supervisor"])
    assert status == 403 and body["verdict"]["verdict"] == "escalation_detected", body
    _, mine, _, _ = audit_get(worker, {"externalId": joiner["externalId"]})
    assert [(e["trigger"], e["outcome"]) for e in mine] == [("webhook", "success"), ("role_sync", "rejected")], mine
    refused = mine[1]
    assert refused["rolesAfter"] == [] and "action" not in refused, refused
    failed = [d for d in iam.received() if (d["json"] or {}).get("type") == FAILED]
    assert len(failed) == 1, iam.received()
    assert failed[0]["verified"] is True, failed[0]
    data = failed[0]["json"]["data"]
    assert (data["outcome"], data["auditSeq"], data["auditHash"]) == ("rejected", refused["seq"], refused["hash"]), data
    assert "Supervisor" in (data.get("reason") or ""), data

    status, body, _ = role_sync(worker, externalId=joiner["externalId"],
                                groups=[AGENT, {"displayName": "Finance Admins"}])
    assert status == 403 and body["verdict"]["verdict"] == "fail", body
    assert clean.scim_writes() == []
    assert roles_of(clean.user(user_id)) == ["Agent"]


# 8. An account found by userName (it has no externalId) that already holds what the groups grant,
# an ignored group beside them: nothing is written.

def test_sync_by_user_name_to_the_roles_held_writes_nothing(worker, clean, iam):
    user_name = f"seeded.{uuid.uuid4().hex[:8]}@example.com"
    status, seeded, _ = clean.scim("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": True,
        "name": {"givenName": "Seeded", "familyName": "Agent"}, "roles": [{"value": "Agent"}]})
    assert status == 201, seeded
    clean.clear_log()
    status, body, _ = role_sync(worker, userName=user_name.upper(), groups=[AGENT, {"displayName": "All Staff"}])
    assert status == 200, body
    assert (body["action"], body["id"], body["rolesBefore"], body["rolesAfter"]) == \
        ("unchanged", seeded["id"], ["Agent"], ["Agent"]), body
    assert clean.scim_writes() == []


def test_a_bulk_run_records_each_user_it_wrote(worker, clean):
    tag = uuid.uuid4().hex[:8]
    users = [{"userName": f"bulk.{tag}.{i}@example.com", "externalId": f"bulk-{tag}-{i}", "firstName": "B",
              "lastName": f"Ulk{i}", "groups": [{"displayName": "cxone-agent"}]} for i in range(3)]
    status, report, _ = worker.admin_post("/provision/bulk", {"users": users, "runId": f"audit-{tag}"})
    assert status == 200 and report["counts"]["created"] == 3, report
    for u, line in zip(users, report["users"]):
        status, entries, _, _ = audit_get(worker, {"externalId": u["externalId"]})
        assert status == 200
        assert [(e["trigger"], e["action"], e["outcome"]) for e in entries] == [("bulk", "created", "success")], entries
        assert entries[0]["who"]["cxoneId"] == line["id"] and entries[0]["rolesAfter"] == ["Agent"], entries
    # The same input again writes nothing, and records nothing.
    status, again, _ = worker.admin_post("/provision/bulk", {"users": users, "runId": f"audit-{tag}-again"})
    assert status == 200 and again["counts"]["exists"] == 3, again
    assert len(audit_get(worker, {"externalId": users[0]["externalId"]})[1]) == 1
