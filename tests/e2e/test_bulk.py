"""Bulk provisioning end to end: real workerd (with its local queue and KV), real scim2-server."""

import collections
import time
import uuid
from datetime import datetime, timedelta, timezone

from helpers import request
from test_roles_audit import audit_get, header


def users(n, tag):
    return [{"userName": f"bulk.{tag}.{i}@example.com", "externalId": f"bulk-{tag}-{i}", "firstName": "Bulk",
             "lastName": f"User{i}", "groups": [{"displayName": "cxone-agent"}]} for i in range(n)]


def bulk_audit_entries(worker, since):
    """Every audit entry recorded by bulk runs since `since` (RFC 3339), all pages."""
    entries, cursor = [], None
    while True:
        query = {"trigger": "bulk", "from": since, **({"cursor": cursor} if cursor else {})}
        status, page, _, headers = audit_get(worker, query)
        assert status == 200
        entries += page
        cursor = header(headers, "Next-Cursor")
        if not cursor:
            return entries


def scim_shape(u):
    """The resource the Worker would create for input user `u`."""
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": u["userName"],
            "externalId": u["externalId"], "name": {"givenName": u["firstName"], "familyName": u["lastName"]},
            "displayName": f"{u['firstName']} {u['lastName']}",
            "emails": [{"value": u["userName"], "type": "work", "primary": True}], "active": True,
            "roles": [{"value": "Agent", "display": "Agent"}]}


def wait_finished(worker, run_id, timeout=240, until=None):
    """Polls the run's state (no users listed), then answers its first page of users."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status, body, _ = worker.poll(f"/provision/bulk/{run_id}?limit=0")
        assert status == 200, body
        assert "users" not in body
        if body["finished"] or (until and until(body)):
            return worker.admin_get(f"/provision/bulk/{run_id}")[1]
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} not finished: {body['counts']}")


def test_dry_run_plans_and_sends_nothing(worker, clean):
    batch = users(120, uuid.uuid4().hex[:6])
    batch.append({"userName": "broken", "email": "nope"})
    for status, body, _ in (worker.admin_post("/provision/bulk?dryRun=true", {"users": batch}),
                            worker.admin_post("/provision/bulk", {"users": batch, "dryRun": True})):
        assert status == 200, body
        assert body["dryRun"] is True
        assert [len(r["body"]["Operations"]) for r in body["requests"]] == [50, 50, 20]
        assert body["requests"][0]["method"] == "POST" and body["requests"][0]["url"].endswith("/scim/v2/Bulk")
        assert [r["index"] for r in body["rejected"]] == [120]
    assert clean.log() == []


def test_bad_bulk_requests(worker, clean):
    status, body, _ = worker.admin_post("/provision/bulk", {"users": [{"userName": "a@x.io", "groups": "x"}]})
    assert status == 400 and "users[0].groups" in body["detail"], body
    status, _, _ = request("POST", worker.url + "/provision/bulk", {"users": []})
    assert status == 401
    status, body, _ = worker.admin_post("/provision/bulk", {"users": [], "runId": "no spaces"})
    assert status == 400, body
    assert worker.admin_get("/provision/bulk/never-ran")[0] == 404
    status, body, _ = worker.admin_post("/provision/bulk", {"users": [], "runId": "empty-" + uuid.uuid4().hex[:6]})
    assert status == 200 and body["finished"] and body["total"] == 0
    assert clean.scim_writes() == []


def test_small_run_answers_with_the_report(worker, clean):
    tag = uuid.uuid4().hex[:6]
    batch = users(12, tag)
    status, existing, _ = clean.scim("POST", "/Users", scim_shape(batch[0]))
    assert status == 201
    moved = scim_shape(batch[1])
    moved["name"]["familyName"] = "Before"
    assert clean.scim("POST", "/Users", moved)[0] == 201
    batch.append({**batch[2], "userName": batch[2]["userName"].upper()})
    status, body, _ = worker.admin_post("/provision/bulk", {"users": batch})
    assert status == 200, body
    assert body["finished"] and body["status"] == "finished"
    outcomes = [u["outcome"] for u in body["users"]]
    assert outcomes[:3] == ["exists", "updated", "created"] and outcomes[12] == "exists"
    assert body["users"][12]["duplicateOf"] == 2 and body["users"][12]["id"] == body["users"][2]["id"]
    assert body["counts"] == {"created": 10, "updated": 1, "exists": 2, "failed": 0, "conflict": 0, "stale": 0,
                              "skipped": 0, "pending": 0}
    assert body["users"][0]["id"] == existing["id"]
    assert clean.find("userName", batch[1]["userName"])[0]["name"]["familyName"] == batch[1]["lastName"]


def test_thousand_users_with_faults_and_a_restart(worker, clean):
    tag = uuid.uuid4().hex[:6]
    unique = users(979, tag)
    # 3 % are in CXone already, exactly as the input describes them.
    for u in unique[:30]:
        assert clean.scim("POST", "/Users", scim_shape(u))[0] == 201
    batch = list(unique)
    # 2 % repeat inside the request (another case, same person).
    batch += [{**unique[100 + i * 7], "userName": unique[100 + i * 7]["userName"].title()} for i in range(20)]
    batch.append({"userName": f"invalid.{tag}@example.com", "email": "not-an-email", "firstName": "In", "lastName": "Valid"})
    assert len(batch) == 1000
    before = clean.user_count()

    clean.configure(bulkStatus=207)
    clean.fault(status=503, share=0.10, method="POST", path="/scim/v2/Bulk")
    clean.fault(status=429, share=0.05, method="POST", path="/scim/v2/Bulk", retryAfter="1")
    clean.fault(status=0, share=1.0, method="POST", path="/scim/v2/Bulk", delayMs=120)
    run_id = f"run-{tag}"
    started = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat(timespec="milliseconds")
    started = started.replace("+00:00", "Z")
    status, body, _ = worker.admin_post("/provision/bulk", {"users": batch, "runId": run_id})
    assert status == 202, body
    assert body["status"] == "running" and body["total"] == 1000

    midway = wait_finished(worker, run_id, until=lambda b: b["done"] >= 300)
    assert not midway["finished"], "the run must still be going when the Worker restarts"
    worker.restart()
    status, body, _ = worker.admin_post("/provision/bulk", {"users": batch, "runId": run_id})
    assert status in (200, 202), body
    # The same runId with other input is refused, not mixed in.
    status, body, _ = worker.admin_post("/provision/bulk", {"users": batch[:10], "runId": run_id})
    assert status == 409, body

    report = wait_finished(worker, run_id)
    clean.clear_faults()
    counts = report["counts"]
    # A create of a seeded user answered 503, then 409 when sent again, cannot be told from one
    # of this run's: CXone made the account moments before the run, within the clock skew the
    # run allows. Such a row may say `created`; what CXone holds (below) is exact either way.
    seeded_as_created = sum(u["outcome"] == "created" for u in report["users"][:30])
    assert counts == {"created": 949 + seeded_as_created, "updated": 0, "exists": 50 - seeded_as_created,
                      "failed": 1, "conflict": 0, "stale": 0, "skipped": 0, "pending": 0}, counts
    assert sum(counts.values()) == len(report["users"]) == 1000
    invalid = report["users"][999]
    assert (invalid["outcome"], invalid["status"], invalid["scimType"]) == ("failed", 400, "invalidValue")
    assert all(u["outcome"] == "exists" for u in report["users"][979:999])
    assert all(u["outcome"] in ("exists", "created") for u in report["users"][:30])

    names = [n.lower() for n in clean.all_user_names()]
    mine = [n for n in names if f".{tag}." in n]
    assert len(mine) == len(set(mine)) == 979, "every user exactly once"
    assert clean.user_count() == before + 949
    injected = [e for e in clean.log() if e.get("injected")]
    assert injected, "faults were injected"
    # The audit trail holds each created user once, the restart notwithstanding: the records of
    # the slice it cut short were kept with the rows and appended by the next slice.
    created = collections.Counter(
        e["who"]["externalId"] for e in bulk_audit_entries(worker, started)
        if (e["who"].get("externalId") or "").startswith(f"bulk-{tag}-") and e["action"] == "created")
    assert len(created) == counts["created"] and set(created.values()) == {1}, collections.Counter(created.values())
