"""The signed lifecycle webhook, end to end: real workerd, real scim2-server."""

import json
import time
import uuid

import pytest

from conftest import (ADMIN_TOKEN, CLIENT_ID, CLIENT_SECRET, FAST_RETRIES, OLD_ADMIN_TOKEN, OLD_WEBHOOK_SECRET,
                      WEBHOOK_SECRET, client_of, own_worker)
from helpers import request, sign


def person(operation="create", groups=("cxone-agent",), **extra):
    tag = uuid.uuid4().hex[:8]
    event = {"operation": operation, "userName": f"user.{tag}@example.com", "externalId": f"entra-{tag}",
             "firstName": "Jane", "lastName": f"Doe{tag}",
             "groups": [{"displayName": g} for g in groups], "accountEnabled": True}
    event.update(extra)
    return event


def then(event, **changes):
    out = dict(event)
    out.update(changes)
    return out


def only_user(standin, event):
    users = standin.find("externalId", event["externalId"])
    assert len(users) == 1, users
    return users[0]


def test_healthz_and_validate(worker, clean):
    status, body, _ = request("GET", worker.url + "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, body, _ = worker.admin_get("/test/validate")
    assert status == 200 and body["status"] == "healthy", body
    assert isinstance(body["usersFetched"], int) and body["latencyMs"] >= 0
    # Both configured admin tokens work (rotation); anything else is refused.
    assert worker.admin_get("/test/validate", token=OLD_ADMIN_TOKEN)[0] == 200
    status, body, headers = worker.admin_get("/test/validate", token="wrong")
    assert status == 401 and body["status"] == "401" and headers.get("WWW-Authenticate") == "Bearer"
    assert request("GET", worker.url + "/failures")[0] == 401


def test_joiner_mover_leaver(worker, clean):
    joiner = person(groups=("cxone-agent", "All Staff"))
    status, body, _ = worker.post_event(joiner)
    assert status == 200, body
    assert body["status"] == "success" and body["action"] == "created"
    user = only_user(clean, joiner)
    assert user["id"] == body["id"]
    assert [r["value"] for r in user["roles"]] == ["Agent"]
    assert user["emails"][0]["value"] == joiner["userName"] and user["active"] is True

    mover = then(joiner, operation="update", lastName="Moved", groups=[{"displayName": "cxone-supervisor"}])
    status, body, _ = worker.post_event(mover)
    assert (status, body["action"], body["id"]) == (200, "updated", user["id"]), body
    user = only_user(clean, joiner)
    assert user["name"]["familyName"] == "Moved"
    assert [r["value"] for r in user["roles"]] == ["Supervisor"]
    patches = [e for e in clean.scim_writes() if e["method"] == "PATCH"]
    assert patches and all("[0]" not in json.dumps(p["body"]) for p in patches)

    same = then(mover)
    status, body, _ = worker.post_event(same)
    assert body["action"] == "unchanged", body

    status, body, _ = worker.post_event(then(joiner, operation="disable"))
    assert (status, body["action"]) == (200, "disabled"), body
    assert only_user(clean, joiner)["active"] is False

    # Rehire: an update with accountEnabled true re-enables.
    status, body, _ = worker.post_event(then(mover, operation="update", accountEnabled=True))
    assert (status, body["action"], body.get("note")) == (200, "updated", "reinstated"), body
    assert "session, skills and groups are not restored" in body["detail"], body
    assert only_user(clean, joiner)["active"] is True

    status, body, _ = worker.post_event(then(joiner, operation="delete"))
    assert (status, body["action"]) == (200, "deleted"), body
    assert clean.find("externalId", joiner["externalId"]) == []
    status, body, _ = worker.post_event(then(joiner, operation="delete"))
    assert (status, body["action"], body.get("note")) == (200, "deleted", "already_deprovisioned"), body


def test_unmapped_group_in_strict_mode_writes_nothing(worker, clean):
    event = person(groups=("cxone-agent", "Finance Admins"))
    status, body, _ = worker.post_event(event)
    assert status == 400, body
    assert body["status"] == "400" and "RBAC violation" in body["detail"] and "Finance Admins" in body["detail"]
    assert clean.scim_writes() == []
    assert clean.find("externalId", event["externalId"]) == []


@pytest.mark.parametrize("case", ["forged", "empty", "stale", "future", "missing", "old-secret-ok"])
def test_signatures(worker, clean, case):
    event = person()
    before = clean.user_count()
    now = int(time.time())
    if case == "forged":
        result = worker.post_event(event, secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
    elif case == "empty":
        result = worker.post_event(event, signature="v1,")
    elif case == "stale":
        result = worker.post_event(event, timestamp=now - 301)
    elif case == "future":
        result = worker.post_event(event, timestamp=now + 400)
    elif case == "missing":
        result = worker.post_event(event, headers={"webhook-signature": None})
    else:
        result = worker.post_event(event, secret=OLD_WEBHOOK_SECRET)
    status, body, _ = result
    if case == "old-secret-ok":
        assert (status, body["action"]) == (200, "created"), body
        return
    assert status == 401, body
    assert body["status"] == "401" and body["detail"].startswith("webhook signature rejected")
    assert clean.scim_writes() == [] and clean.user_count() == before


def test_tampered_body_is_rejected(worker, clean):
    event = person()
    body = json.dumps(event).encode()
    msg_id, ts = "msg_tamper_" + uuid.uuid4().hex, int(time.time())
    sig = sign(WEBHOOK_SECRET, msg_id, ts, body)
    tampered = body.replace(b"cxone-agent", b"cxone-supervisor")
    status, _, _ = worker.post_event(tampered, msg_id=msg_id, timestamp=ts, signature=sig)
    assert status == 401
    assert clean.scim_writes() == []


def test_replay_has_no_second_effect(worker, clean):
    event = person()
    msg_id, ts = "msg_replay_" + uuid.uuid4().hex, int(time.time())
    status, first, _ = worker.post_event(event, msg_id=msg_id, timestamp=ts)
    assert (status, first["action"]) == (200, "created"), first
    # Someone deletes the user in CXone; a replayed create must not bring it back.
    clean.scim("DELETE", f"/Users/{first['id']}")
    clean.clear_log()
    status, again, _ = worker.post_event(event, msg_id=msg_id, timestamp=ts)
    assert status == 200 and again["duplicate"] is True
    assert {k: v for k, v in again.items() if k != "duplicate"} == first
    assert clean.log() == [], "a duplicate must not reach CXone at all"
    assert clean.find("externalId", event["externalId"]) == []


def test_late_older_event_is_stale(worker, clean):
    event = person()
    now = time.time()
    at = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"  # noqa: E731
    assert worker.post_event(then(event, occurredAt=at(now - 10)))[1]["action"] == "created"
    assert worker.post_event(then(event, operation="delete", occurredAt=at(now)))[1]["action"] == "deleted"
    clean.clear_log()
    late = then(event, operation="update", lastName="Resurrected", occurredAt=at(now - 5))
    status, body, _ = worker.post_event(late)
    assert (status, body["action"]) == (200, "stale"), body
    assert clean.scim_writes() == []
    assert clean.find("externalId", event["externalId"]) == []


def test_create_conflict_is_resolved_as_update(worker, clean):
    event = person()
    # The user already exists in CXone (created by hand, different case, no externalId).
    status, existing, _ = clean.scim("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": event["userName"].upper(), "active": True})
    assert status == 201, existing
    clean.clear_log()
    status, body, _ = worker.post_event(event)
    assert (status, body["action"], body["id"]) == (200, "updated", existing["id"]), body
    writes = [(e["method"], e["status"]) for e in clean.scim_writes()]
    assert writes == [("POST", 409), ("PATCH", 204)], writes
    user = only_user(clean, event)
    assert user["id"] == existing["id"] and [r["value"] for r in user["roles"]] == ["Agent"]


def test_cxone_outage_fails_then_redelivery_succeeds(worker, clean):
    event = person()
    msg_id, ts = "msg_outage_" + uuid.uuid4().hex, int(time.time())
    clean.fault(status=503, count=100, method="POST", path="/scim/v2/Users", retryAfter="0")
    status, body, _ = worker.post_event(event, msg_id=msg_id, timestamp=ts)
    assert status == 502, body
    assert "recorded for replay" in body["detail"]
    posts = [e for e in clean.scim_writes() if e["method"] == "POST"]
    assert len(posts) == 3, "RETRY_MAX_ATTEMPTS=3 tries, then give up"
    status, failures, _ = worker.admin_get("/failures")
    assert status == 200
    mine = [f for f in failures["failures"] if f["eventId"] == msg_id]
    assert len(mine) == 1 and mine[0]["attempts"] == 1
    assert mine[0]["event"]["externalId"] == event["externalId"]
    assert mine[0]["error"]["kind"] == "retriesExhausted"

    clean.clear_faults()
    status, body, _ = worker.post_event(event, msg_id=msg_id, timestamp=ts)
    assert (status, body["action"]) == (200, "created"), body
    assert body.get("duplicate") is None
    assert len(clean.find("externalId", event["externalId"])) == 1
    failures = worker.admin_get("/failures")[1]["failures"]
    assert all(f["eventId"] != msg_id for f in failures)


def test_transient_429_is_retried_within_the_request(worker, clean):
    event = person()
    clean.fault(status=429, count=1, method="POST", path="/scim/v2/Users", retryAfter="1")
    started = time.monotonic()
    status, body, _ = worker.post_event(event)
    assert (status, body["action"]) == (200, "created"), body
    assert time.monotonic() - started >= 1.0, "Retry-After: 1 must be honoured"
    assert len(clean.find("externalId", event["externalId"])) == 1


def test_revoked_token_is_refreshed_once(worker, clean):
    assert worker.post_event(person())[0] == 200
    clean.revoke_tokens()
    clean.clear_log()
    event = person()
    status, body, _ = worker.post_event(event)
    assert (status, body["action"]) == (200, "created"), body
    paths = [(e["method"], e["path"], e["status"]) for e in clean.log()]
    assert paths[0][2] == 401 and ("POST", "/oauth/token", 200) in paths, paths
    assert sum(1 for p in paths if p[1] == "/oauth/token") == 1


def test_bad_input_gets_clear_errors(worker, clean):
    status, body, _ = worker.post_event(b'{"operation":"create",')
    assert status == 400 and "invalid JSON" in body["detail"]
    status, body, _ = worker.post_event({"operation": "rename", "userName": "a@b.co"})
    assert status == 400 and "unknown variant" in body["detail"]
    big = json.dumps(person(firstName="x" * (256 * 1024))).encode()
    status, body, _ = worker.post_event(big)
    assert status == 413, body
    status, _, _ = request("GET", worker.url + "/webhooks/lifecycle")
    assert status == 405
    assert clean.scim_writes() == []


def test_log_lines_are_structured_and_secret_free(worker, clean):
    event = person()
    msg_id = "msg_log_" + uuid.uuid4().hex
    assert worker.post_event(event, msg_id=msg_id)[0] == 200
    time.sleep(0.5)
    lines = worker.log_lines()
    records = []
    for line in lines:
        start = line.find("{\"at\"")
        if start >= 0:
            records.append(json.loads(line[start:]))
    mine = [r for r in records if r.get("eventId") == msg_id]
    assert len(mine) == 1, mine
    assert mine[0]["action"] == "created" and mine[0]["status"] == 200 and "latencyMs" in mine[0]
    text = "\n".join(lines)
    for secret in (WEBHOOK_SECRET, WEBHOOK_SECRET[6:], ADMIN_TOKEN, CLIENT_SECRET, OLD_WEBHOOK_SECRET[6:]):
        assert secret not in text


def test_a_worker_with_a_cxone_access_key_gets_its_token_as_nice_documents(standin, clean, workdir):
    """CXONE_AUTH=access_key: the JSON exchange at /authentication/v1/token/access-key, then the
    same writes as with client credentials."""
    extra = [*FAST_RETRIES, "CXONE_AUTH=access_key", f"CXONE_ACCESS_KEY_ID={CLIENT_ID}",
             f"CXONE_ACCESS_KEY_SECRET={CLIENT_SECRET}",
             f"CXONE_TOKEN_URL={standin.url}/authentication/v1/token/access-key"]
    with own_worker(workdir, "access-key", 14, standin.url, extra) as dev:
        worker = client_of(dev)
        joiner = person()
        status, body, _ = worker.post_event(joiner)
        assert (status, body.get("action")) == (200, "created"), body
        # The Worker's requests only (the test's own lookups fetch a token of their own).
        log = clean.log()
        paths = [e["path"] for e in log if e["method"] == "POST"]
        assert paths == ["/authentication/v1/token/access-key", "/scim/v2/Users"], paths
        assert [e["status"] for e in log if e["path"].startswith("/authentication")] == [200]
        assert only_user(clean, joiner)["id"] == body["id"]
