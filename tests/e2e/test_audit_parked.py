"""Audit records the trail cannot take are parked, not lost: a Worker of its own whose `AUDIT`
binding points at a Worker that is not running (so every call to the trail fails, as when the
object cannot be reached), then the same Worker, with its local state, bound to its own trail
again. The writes go through either way; the parked records reach the trail by the cron, in the
order of their writes, and the chain verifies."""

import functools
import urllib.request

import pytest

from conftest import FAST_RETRIES, client_of, own_worker
from harness import WranglerDev
from test_lifecycle import only_user, person, then
from test_roles_audit import audit_get

# Its own ports: the session Worker, the misconfigured one (+2), the stand-in and its scim2-server
# (+3, +4), the role-target Worker (+6) and the Graph and IAM fixtures (+8, +9) hold theirs.
OFFSET = 10
TRAIL = 'name = "AUDIT"\nclass_name = "AuditTrail"'


class TrailSwitch(WranglerDev):
    """`wrangler dev` whose AUDIT binding is this Worker's own trail, or (`reachable = False`)
    one of a Worker that is not running locally."""
    def __init__(self, *args, reachable=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.reachable = reachable

    def config(self):
        path = super().config()
        text = path.read_text()
        assert TRAIL in text, "wrangler.toml no longer binds AUDIT as expected"
        if not self.reachable:
            text = text.replace(TRAIL, TRAIL + '\nscript_name = "cxone-scim-trail-elsewhere"')
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def switch(standin, workdir):
    unreachable_first = functools.partial(TrailSwitch, reachable=False)
    with own_worker(workdir, "audit-parked", OFFSET, standin.url, FAST_RETRIES, dev_class=unreachable_first) as dev:
        yield dev, client_of(dev)


def applied(worker, event, action):
    status, body, _ = worker.post_event(event)
    assert (status, body.get("action")) == (200, action), body
    return body


def parked(worker):
    status, body, _ = worker.admin_get("/audit/parked")
    assert status == 200, body
    assert body["count"] == len(body["parked"]), body
    return body["parked"]


def test_records_the_trail_cannot_take_are_parked_and_replayed_in_order(switch, standin, clean):
    dev, worker = switch
    joiner = person()
    created = applied(worker, joiner, "created")
    mover = then(joiner, operation="update", groups=[{"displayName": "cxone-supervisor"}])
    applied(worker, mover, "updated")
    # The writes happened; CXone holds the mover's state.
    assert [r["value"] for r in only_user(standin, joiner).get("roles", [])] == ["Supervisor"]

    status, body, _ = worker.admin_get("/audit")
    assert status == 503 and "cannot be reached" in body["detail"], body
    waiting = parked(worker)
    assert len(waiting) == 2, waiting
    assert [p["drafts"][0]["action"] for p in waiting] == ["created", "updated"], waiting
    assert all(p["drafts"][0]["who"]["externalId"] == joiner["externalId"] for p in waiting), waiting
    assert waiting[0]["drafts"][0]["who"]["cxoneId"] == created["id"]
    assert [p["drafts"][0]["rolesAfter"] for p in waiting] == [["Agent"], ["Supervisor"]], waiting
    assert all(p["attempts"] == 1 and "503" in p["error"] for p in waiting), waiting
    logged = [line for line in worker.log_lines() if "audit_append_failed" in line]
    assert any(waiting[0]["id"] in line for line in logged), logged

    # Still out of reach: a replay appends nothing, says so, and counts the attempt.
    status, body, _ = worker.admin_post("/audit/parked/replay")
    assert status == 503 and body["batches"] == [] and body["more"] and body.get("error"), body
    assert [p["attempts"] for p in parked(worker)] == [2, 1]

    dev.reachable = True
    dev.restart()
    status, body, _ = worker.admin_post("/audit/parked/replay", {"dryRun": True})
    assert status == 200, body
    assert (body["dryRun"], body["batches"], body["records"]) == (True, [p["id"] for p in waiting], 2), body
    assert len(parked(worker)) == 2
    assert audit_get(worker, {"externalId": joiner["externalId"]})[1] == []

    cron = urllib.request.urlopen(f"{worker.url}/cdn-cgi/handler/scheduled?cron=*/10+*+*+*+*", timeout=120)
    assert cron.status == 200
    assert parked(worker) == []
    later = then(mover, operation="update", groups=[{"displayName": "cxone-agent"}])
    applied(worker, later, "updated")
    _, entries, _, _ = audit_get(worker, {"externalId": joiner["externalId"]})
    assert [(e["action"], e["rolesAfter"], e["trigger"]) for e in entries] == [
        ("created", ["Agent"], "webhook"), ("updated", ["Supervisor"], "webhook"), ("updated", ["Agent"], "webhook")
    ], entries
    # The parked records keep the time of their writes; the chain holds them where they joined it.
    assert entries[0]["at"] <= entries[1]["at"] <= entries[2]["at"]
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    status, verified, _ = worker.admin_get("/audit/verify")
    assert status == 200 and verified["ok"] and verified["checked"] >= 3, verified

    # Nothing left: a replay has nothing to do.
    status, body, _ = worker.admin_post("/audit/parked/replay")
    assert (status, body["batches"], body["records"], body["more"]) == (200, [], 0, False), body
