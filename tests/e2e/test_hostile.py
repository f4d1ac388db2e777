"""What an attacker or a buggy sender would send, against the real Worker: times far ahead and
far back, oversized, truncated and deeply nested bodies, `dryRun` in every wrong form on every
admin POST, look-alike userNames, huge group lists, ids that try to leave their path, a webhook
and a bulk row racing for one person, and a CXone request that would outlive its lease. Each
test checks the answer and that nothing reached the stand-in that should not have."""

import json
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone

import pytest

from conftest import CXONE_REQUEST_TIMEOUT_MS, LEDGER_LEASE_MS
from helpers import request, sign
from test_bulk import wait_finished
from test_ledger import at, msg, only_user, seed_user, user_posts
from test_lifecycle import person, then
from test_roles_audit import audit_get


def writes_for(standin, *user_names):
    """SCIM writes that name one of `user_names` (in a path, a filter or a body)."""
    names = [n.lower() for n in user_names]
    out = []
    for entry in standin.scim_writes():
        text = json.dumps(entry).lower()
        if any(n in text for n in names):
            out.append(entry)
    return out


# 1. Event times: far ahead is refused, the ledger can be seen and repaired.

def test_an_event_dated_in_the_future_is_refused_and_writes_nothing(worker, clean):
    joiner = person()
    applied = worker.post_event(joiner)
    assert applied[0] == 200, applied
    clean.clear_log()
    for when in ("2999-01-01T00:00:00Z", at(3600), at(6 * 60)):
        status, body, _ = worker.post_event(then(joiner, operation="update", firstName="Future", occurredAt=when))
        assert status == 400, (when, body)
        assert body["scimType"] == "invalidValue" and "occurredAt" in body["detail"], body
    assert clean.scim_writes() == []
    # A leaver stamped now still applies: nothing dated ahead became the person's mark.
    status, body, _ = worker.post_event(then(joiner, operation="disable", occurredAt=at()))
    assert (status, body.get("action")) == (200, "disabled"), body
    assert only_user(clean, joiner["externalId"])["active"] is False


def test_a_small_clock_skew_is_accepted_and_far_past_events_are_only_stale(worker, clean):
    joiner = person(occurredAt=at(60))
    status, body, _ = worker.post_event(joiner)
    assert (status, body.get("action")) == (200, "created"), body
    status, body, _ = worker.post_event(then(joiner, operation="update", firstName="Old",
                                             occurredAt="1970-01-01T00:00:01Z"))
    assert (status, body.get("action")) == (200, "stale"), body
    assert only_user(clean, joiner["externalId"])["name"]["givenName"] == "Jane"


def test_an_admin_sees_a_persons_ledger_and_resets_its_marks(worker, clean):
    joiner = person()
    key = urllib.parse.quote(f"ext:{joiner['externalId']}", safe="")
    # Dated four minutes ahead (inside the allowed skew): it holds a leaver stamped now back.
    ahead = then(joiner, occurredAt=at(4 * 60))
    status, body, _ = worker.post_event(ahead)
    assert (status, body.get("action")) == (200, "created"), body
    user_id = body["id"]
    leaver_id = msg("leaver")
    leaver = then(joiner, operation="disable", occurredAt=at())
    status, body, _ = worker.post_event(leaver, msg_id=leaver_id)
    assert (status, body.get("action")) == (200, "stale"), body

    status, seen, _ = worker.admin_get(f"/people/{key}")
    assert status == 200, seen
    assert seen["key"] == f"ext:{joiner['externalId']}"
    assert seen["person"]["last"]["operation"] == "create" and seen["person"]["cxoneId"] == user_id
    assert {d["eventId"] for d in seen["deliveries"]} >= {leaver_id}
    assert "lease" not in seen["person"]

    since = at(-5)
    status, body, _ = worker.admin_post(f"/people/{key}/reset-marks?dryRun=true")
    assert (status, body["dryRun"]) == (200, True), body
    assert "last" in body["before"] and "last" not in body["after"]
    assert "last" in worker.admin_get(f"/people/{key}")[1]["person"], "a dry run changes nothing"
    status, body, _ = worker.admin_post(f"/people/{key}/reset-marks", {"dryRun": False})
    assert status == 200 and body["auditRecorded"] is True, body
    assert "last" not in worker.admin_get(f"/people/{key}")[1]["person"]
    status, entries, _, _ = audit_get(worker, {"externalId": joiner["externalId"], "from": since})
    assert [e["action"] for e in entries if e["trigger"] == "admin"] == ["marks_reset"], entries

    # A new leaver (a new id) now applies; the account is disabled.
    status, body, _ = worker.post_event(then(joiner, operation="disable", occurredAt=at()))
    assert (status, body.get("action")) == (200, "disabled"), body
    assert clean.user(user_id)["active"] is False


def test_people_keys_are_checked(worker, clean):
    for bad in ("nobody", "ext%3A", "user%3A%20", "%E0%A4%A"):
        status, body, _ = worker.admin_get(f"/people/{bad}")
        assert status == 400, (bad, body)
    status, body, _ = worker.admin_post("/people/ext%3Anobody-here/reset-marks", b"{dryRun: true")
    assert status == 400, body
    assert request("GET", worker.url + "/people/ext%3Ax")[0] == 401


# 2. dryRun: one strict reading on every admin POST; nothing unreadable runs for real.

BAD_DRY_RUNS = [
    ("", b"{dryRun: true", 400),
    ("", b'{"dryRun":true', 400),
    ("", b'{"dryRun":"yes"}', 400),
    ("", b'{"dryRun":1}', 400),
    ("", b'{"dryrun":true}', 400),
    ("", b'{"dryRun":true,"extra":1}', 400),
    ("", b"[true]", 400),
    ("?dryRun=yes", b"", 400),
    ("?dryrun=true", b"", 400),
    ("?dryRun=true", b'{"dryRun":false}', 400),
    ("", b'{"dryRun":true,"pad":"' + b"x" * 6000 + b'"}', 413),
]


def failed_create(worker, clean):
    """A create CXone refused for good: its failure record's id."""
    joiner = person()
    clean.fault(status=400, count=1, method="POST", path="/scim/v2/Users")
    status, body, _ = worker.post_event(joiner)
    assert status == 422, body
    failures, _ = worker.admin_pages("/failures", "failures")
    [record] = [f for f in failures if f["event"]["externalId"] == joiner["externalId"]]
    return joiner, record["id"]


def test_a_failure_replay_never_becomes_real_unless_asked_plainly(worker, clean):
    joiner, failure = failed_create(worker, clean)
    clean.clear_log()
    path = f"/failures/{failure}/replay"
    for query, body, expected in BAD_DRY_RUNS:
        status, answer, _ = worker.admin_post(path + query, body)
        assert status == expected, (query, body[:40], answer)
        assert "dryRun" in answer["detail"] or expected == 413 or "JSON" in answer["detail"] \
            or "object" in answer["detail"], answer
    for query, body in (("?dryRun=TRUE", b""), ("", b'{"dryRun":"true"}'), ("?dryRun=True", b'{"dryRun":true}')):
        status, answer, _ = worker.admin_post(path + query, body)
        assert (status, answer.get("dryRun")) == (200, True), (query, body, answer)
    assert user_posts(clean) == [], "a dry run or a refused request sent the create"
    assert clean.find("externalId", joiner["externalId"]) == []
    status, answer, _ = worker.admin_post(path + "?dryRun=false")
    assert (status, answer.get("action")) == (200, "created"), answer


@pytest.mark.parametrize("path", ["/sync/approve", "/sync/reject", "/sync/run", "/audit/parked/replay",
                                  "/notices/nonexistent/replay", "/people/ext%3Anobody/reset-marks",
                                  "/provision/bulk", "/roles/sync"])
def test_every_admin_post_refuses_an_unreadable_dry_run(worker, clean, path):
    for query, body, expected in BAD_DRY_RUNS:
        if path in ("/provision/bulk", "/roles/sync") and expected == 413:
            continue  # their bodies are larger by design
        status, answer, _ = worker.admin_post(path + query, body)
        assert status == expected, (path, query, body[:40], answer)
    assert clean.scim_writes() == []


def test_plainly_asked_dry_runs_send_nothing(worker, clean):
    for path in ("/sync/approve", "/sync/reject", "/audit/parked/replay"):
        for query, body in (("?dryRun=TRUE", b""), ("", b'{"dryRun":"True"}')):
            status, answer, _ = worker.admin_post(path + query, body)
            assert (status, answer.get("dryRun")) == (200, True), (path, query, answer)
    users = [{"userName": f"dry.{uuid.uuid4().hex[:6]}@example.com", "externalId": f"dry-{uuid.uuid4().hex[:6]}",
              "firstName": "Dry", "lastName": "Run"}]
    status, answer, _ = worker.admin_post("/provision/bulk?dryRun=TRUE", {"users": users})
    assert (status, answer.get("dryRun")) == (200, True), answer
    status, answer, _ = worker.admin_post("/provision/bulk", {"users": users, "dryRun": "true"})
    assert (status, answer.get("dryRun")) == (200, True), answer
    status, answer, _ = worker.admin_post("/provision/bulk?dryRun=false", {"users": users, "dryRun": True})
    assert status == 400, answer
    assert clean.scim_writes() == []


# 3. Bodies and ids that try to get past the parser or out of their path.

def test_oversized_truncated_and_deeply_nested_events_are_refused(worker, clean):
    joiner = person()
    huge = then(joiner, pad="x" * (300 * 1024))
    assert worker.post_event(huge)[0] == 413
    raw = json.dumps(joiner).encode()
    for cut in (1, len(raw) // 2, len(raw) - 1):
        status, body, _ = worker.post_event(raw[:cut])
        assert status == 400, (cut, body)
    nested = b'{"operation":"create","userName":"n@x.io","extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, body, _ = worker.post_event(nested)
    assert status in (400, 413), body
    deep = b'{"operation":"create","userName":"n@x.io","extra":' + b"[" * 200 + b"]" * 200 + b"}"
    status, body, _ = worker.post_event(deep)
    assert status == 400, body
    groups = [{"displayName": f"g{i}"} for i in range(10_000)]
    compact = json.dumps(then(joiner, groups=groups), separators=(",", ":")).encode()
    assert len(compact) < 256 * 1024
    status, body, _ = worker.post_event(compact)
    assert status == 400 and "groups" in body["detail"], body
    assert clean.scim_writes() == []


def test_a_look_alike_user_name_is_another_person(worker, clean):
    tag = uuid.uuid4().hex[:8]
    real = f"jdoe.{tag}@example.com"
    seeded = seed_user(clean, real, external_id=f"someone-{tag}")
    # A Cyrillic "е" in place of the Latin one.
    look_alike = then(person(), userName=real.replace("e", "\u0435", 1), email=f"lookalike.{tag}@example.com")
    status, body, _ = worker.post_event(look_alike)
    assert status == 200 and body["action"] == "created", body
    assert body["id"] != seeded["id"]
    assert clean.user(seeded["id"])["externalId"] == f"someone-{tag}", "the real account is untouched"
    assert [w for w in clean.scim_writes() if seeded["id"] in w["path"]] == []


def test_ids_that_try_to_leave_their_path(worker, clean):
    for method, path in (("POST", "/failures/..%2F..%2Fconflicts/replay"), ("POST", "/failures/%2e%2e/replay"),
                         ("DELETE", "/conflicts/..%2Ffailures"), ("GET", "/provision/bulk/.."),
                         ("GET", "/provision/bulk/a%2Fb"), ("POST", "/notices/%2F/replay")):
        status, body, _ = request(method, worker.url + path, b"" if method == "POST" else None,
                                  {"Authorization": f"Bearer {worker.admin_token}"})
        assert status in (400, 404), (path, status, body)
    assert clean.scim_writes() == []


# 4. One ledger for every write: bulk rows wait for webhooks, and a bulk re-creation is a real
#    joiner for the ledger.

def test_a_person_deleted_by_a_webhook_and_recreated_by_a_bulk_run_can_be_disabled(worker, clean):
    joiner = person()
    assert worker.post_event(joiner)[0] == 200
    status, body, _ = worker.post_event(then(joiner, operation="delete"))
    assert (status, body.get("action")) == (200, "deleted"), body
    row = {"userName": joiner["userName"], "externalId": joiner["externalId"], "firstName": "Back",
           "lastName": "Again", "groups": [{"displayName": "cxone-agent"}]}
    run_id = f"revive-{uuid.uuid4().hex[:6]}"
    status, report, _ = worker.admin_post("/provision/bulk", {"users": [row], "runId": run_id})
    assert status == 200 and report["counts"]["created"] == 1, report
    recreated = report["users"][0]["id"]
    status, body, _ = worker.post_event(then(joiner, operation="disable", occurredAt=at()))
    assert (status, body.get("action"), body.get("id")) == (200, "disabled", recreated), body
    assert clean.user(recreated)["active"] is False
    key = urllib.parse.quote(f"ext:{joiner['externalId']}", safe="")
    assert worker.admin_get(f"/people/{key}")[1]["person"]["last"]["operation"] == "disable"


def test_a_bulk_row_waits_while_a_webhook_writes_the_same_person(worker, clean):
    joiner = person()
    clean.fault(status=0, delayMs=1500, count=1, method="POST", path="/scim/v2/Users")
    answers = {}
    webhook = threading.Thread(target=lambda: answers.setdefault("webhook", worker.post_event(joiner)))
    webhook.start()
    end = time.monotonic() + 10
    while clean.stats()["delaying"] < 1:
        assert time.monotonic() < end, "the webhook never reached POST /Users"
        time.sleep(0.02)
    row = {"userName": joiner["userName"], "externalId": joiner["externalId"], "firstName": "Jane",
           "lastName": joiner["lastName"], "groups": [{"displayName": "cxone-agent"}]}
    run_id = f"race-{uuid.uuid4().hex[:6]}"
    status, _, _ = worker.admin_post("/provision/bulk", {"users": [row], "runId": run_id})
    assert status in (200, 202)
    report = wait_finished(worker, run_id, timeout=60)
    webhook.join(timeout=30)
    assert answers["webhook"][0] == 200 and answers["webhook"][1]["action"] == "created", answers
    assert report["users"][0]["outcome"] in ("exists", "updated", "stale"), report["users"]
    [post] = [e for e in user_posts(clean) if joiner["userName"] in json.dumps(e.get("body"))]
    bulks = [e for e in clean.log() if e["path"] == "/scim/v2/Bulk" and joiner["userName"] in json.dumps(e["body"])]
    assert all(b["receivedAt"] >= post["answeredAt"] for b in bulks), (post, bulks)
    assert len(clean.find("externalId", joiner["externalId"])) == 1


# 5. A lease covers every request started under it.

def test_no_cxone_request_starts_unless_the_lease_outlives_it(worker, clean):
    joiner = person()
    assert worker.post_event(joiner)[0] == 200
    clean.clear_log()
    # The lookup hangs past the request timeout; a retry would start too late in the lease.
    clean.fault(status=0, delayMs=CXONE_REQUEST_TIMEOUT_MS + 1500, count=1, method="GET", path="/scim/v2/Users")
    event_id = msg("overrun")
    sent = time.time()
    status, body, headers = worker.post_event(then(joiner, operation="update", firstName="Late"), msg_id=event_id)
    assert status == 503 and "Retry-After" in headers, body
    # The hung lookup is logged once the stand-in answers it.
    time.sleep(max(0.0, sent + (CXONE_REQUEST_TIMEOUT_MS + 2000) / 1000 - time.time()))
    latest_start = sent + (LEDGER_LEASE_MS - CXONE_REQUEST_TIMEOUT_MS - 1000) / 1000
    started = [e["receivedAt"] for e in clean.log() if e["path"].startswith("/scim/v2/Users")]
    assert started and max(started) <= latest_start + 0.3, (started, latest_start)
    # The sender's redelivery, once the lease is over, applies it.
    time.sleep(LEDGER_LEASE_MS / 1000)
    status, body, _, _ = worker.deliver(then(joiner, operation="update", firstName="Late"), event_id)
    assert (status, body.get("action")) == (200, "updated"), body


# 6. Audit bounds by date cover the whole day.

def test_a_date_only_audit_range_covers_the_whole_day(worker, clean):
    joiner = person()
    assert worker.post_event(joiner)[0] == 200
    today = datetime.now(timezone.utc).date().isoformat()
    status, entries, _, _ = audit_get(worker, {"from": today, "to": today, "externalId": joiner["externalId"]})
    assert status == 200 and [e["action"] for e in entries] == ["created"], entries
    status, body, _ = worker.admin_get("/audit?to=yesterday")
    assert status == 400 and "to" in body["detail"], body


def test_signatures_still_come_first(worker, clean):
    joiner = person(occurredAt="2999-01-01T00:00:00Z")
    body = json.dumps(joiner).encode()
    status, answer, _ = worker.post_event(body, signature=sign(worker.secret, "msg_x", 1, body))
    assert status == 401, answer
    assert clean.scim_writes() == []
