"""Leavers, verified: deactivated, the live session ended, dependencies reported, read back,
HR told once with a signed notice, one audit record with every step. Real workerd, the real
scim2-server behind the stand-in (which serves NICE's Admin API over its users), HR's receiver."""

import json
import time
import urllib.parse
import urllib.request
import uuid

from conftest import ADMIN_API_PATH
from helpers import request


def person(**extra):
    tag = uuid.uuid4().hex[:8]
    event = {"operation": "create", "userName": f"leaver.{tag}@example.com", "externalId": f"entra-{tag}",
             "firstName": "Lee", "lastName": f"Ver{tag}", "groups": [{"displayName": "cxone-agent"}],
             "accountEnabled": True}
    event.update(extra)
    return event


def joined(worker, standin, skills=(), groups=(), callbacks=0):
    """A person created through the webhook, their agent logged in, with these dependencies."""
    joiner = person()
    status, body, _ = worker.post_event(joiner)
    assert status == 200 and body["action"] == "created", body
    name = joiner["userName"]
    status, agent, _ = request("POST", standin.url + "/_standin/agents/login", {"userName": name})
    assert status == 200, agent
    status, _, _ = request("POST", standin.url + "/_standin/agents/dependencies",
                           {"userName": name, "skills": list(skills), "groups": list(groups), "callbacks": callbacks})
    assert status == 200
    return joiner, body["id"], str(agent["agentId"])


def agent_of(standin, user_name):
    query = urllib.parse.urlencode({"userName": user_name})
    status, agents, _ = request("GET", f"{standin.url}/_standin/agents?{query}")
    assert status == 200
    mine = [a for a in agents if a["userName"].lower() == user_name.lower()]
    assert len(mine) == 1, mine
    return mine[0]


def hr_notices(hrfix, leaver_id):
    return [d for d in hrfix.received() if (d.get("json") or {}).get("data", {}).get("id") == leaver_id]


def trail_of(worker, external_id):
    """The audit trail's records of one person (JSON lines), oldest first."""
    url = f"{worker.url}/audit?" + urllib.parse.urlencode({"externalId": external_id})
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {worker.admin_token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        text = resp.read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def steps_of(report):
    return {s["step"]: s["status"] for s in report["steps"]}


def test_a_webhook_leaver_is_deactivated_logged_out_read_back_audited_and_told_to_hr(worker, clean, hrfix):
    joiner, uid, agent_id = joined(worker, clean, skills=["Sales EN"], groups=["Tier 2"], callbacks=1)
    clean.clear_log()
    status, body, _ = worker.post_event({**joiner, "operation": "disable"})
    assert (status, body["status"], body["action"]) == (200, "success", "disabled"), body
    report = body["deprovision"]
    assert (report["outcome"], report["verified"], report["licence"]) == ("deprovisioned", True, "not_managed"), report
    assert steps_of(report) == {"find": "done", "agent": "done", "dependencies": "done", "deactivate": "done",
                                "logout": "done", "verify": "done"}, report
    deps = report["dependencies"]
    assert (deps["skills"]["names"], deps["groups"]["names"], deps["scheduledCallbacks"]["count"]) == \
        (["Sales EN"], ["Tier 2"], 1), deps
    assert all(s["latencyMs"] >= 0 for s in report["steps"])
    # CXone: the account inactive, the agent inactive and logged out.
    assert clean.user(uid)["active"] is False
    agent = agent_of(clean, joiner["userName"])
    assert (agent["isActive"], agent["loggedIn"]) == (False, False), agent
    paths = [(e["method"], e["path"]) for e in clean.log()]
    assert ("POST", f"{ADMIN_API_PATH}/agents/{agent_id}/logout") in paths, paths
    # HR: one notice, signed as Standard Webhooks says.
    told = hr_notices(hrfix, report["id"])
    assert len(told) == 1, told
    assert told[0]["verified"] is True, told[0]
    data = told[0]["json"]["data"]
    assert (told[0]["json"]["type"], data["verified"], data["outcome"]) == \
        ("cxone.user.deprovisioned", True, "deprovisioned")
    assert data["who"]["externalId"] == joiner["externalId"]
    assert report["hr"]["status"] == "delivered"
    # The audit trail: one record of the leaver, with every step.
    lines = trail_of(worker, joiner["externalId"])
    leavers = [e for e in lines if e.get("steps")]
    assert len(leavers) == 1, lines
    assert [s["step"] for s in leavers[0]["steps"]] == ["find", "agent", "dependencies", "deactivate", "logout",
                                                        "verify"]
    # The record, for an auditor.
    status, record, _ = worker.admin_get(f"/deprovision/{report['id']}")
    assert (status, record["report"]["verified"], record["runs"]) == (200, True, 1), record


def test_a_failed_logout_leaves_the_account_deactivated_and_a_replay_finishes_it(worker, clean, hrfix):
    joiner, uid, agent_id = joined(worker, clean)
    logout = f"{ADMIN_API_PATH}/agents/{agent_id}/logout"
    clean.fault(status=500, method="POST", path=logout, count=20)
    status, body, _ = worker.post_event({**joiner, "operation": "disable"})
    report = body["deprovision"]
    assert (status, body["status"], report["verified"]) == (202, "unverified", False), body
    assert steps_of(report)["logout"] == "failed" and steps_of(report)["deactivate"] == "done", report
    assert clean.user(uid)["active"] is False, "the deactivation stands"
    assert agent_of(clean, joiner["userName"])["loggedIn"] is True
    assert hr_notices(hrfix, report["id"]) == [], "HR waits until the steps have settled"
    alerts = [line for line in worker.log_lines() if "leaver_unverified" in line and report["id"] in line]
    assert alerts and '"alert":true' in alerts[0], alerts
    # The webhook's redelivery is answered as before; nothing runs again.
    # A replay, once the Admin API takes the logout, finishes it.
    clean.clear_faults()
    status, plan, _ = worker.admin_post(f"/deprovision/{report['id']}/replay?dryRun=true")
    assert status == 200 and plan["dryRun"] is True, plan
    assert agent_of(clean, joiner["userName"])["loggedIn"] is True, "a dry run ends nothing"
    status, replayed, _ = worker.admin_post(f"/deprovision/{report['id']}/replay")
    again = replayed["deprovision"]
    assert (status, again["id"], again["verified"]) == (200, report["id"], True), replayed
    assert agent_of(clean, joiner["userName"])["loggedIn"] is False
    told = hr_notices(hrfix, report["id"])
    assert len(told) == 1 and told[0]["json"]["data"]["verified"] is True, told
    # Settled: nothing left to replay, and HR is not told twice.
    status, body, _ = worker.admin_post(f"/deprovision/{report['id']}/replay")
    assert status == 409, body
    assert len(hr_notices(hrfix, report["id"])) == 1
    status, record, _ = worker.admin_get(f"/deprovision/{report['id']}")
    assert (record["runs"], record["report"]["verified"]) == (2, True), record


def test_dependencies_hold_a_leaver_when_asked_and_nothing_changes(worker, clean, hrfix):
    joiner, uid, agent_id = joined(worker, clean, skills=["Billing"], callbacks=2)
    clean.clear_log()
    status, body, _ = worker.admin_post("/deprovision", {"externalId": joiner["externalId"],
                                                         "userName": joiner["userName"],
                                                         "blockOnDependencies": True, "reason": "left the company"})
    report = body["deprovision"]
    assert (status, body["status"], report["outcome"]) == (202, "held", "held"), body
    assert report["dependencies"]["skills"]["names"] == ["Billing"]
    assert report["dependencies"]["scheduledCallbacks"]["count"] == 2
    assert clean.user(uid)["active"] is True
    assert agent_of(clean, joiner["userName"])["loggedIn"] is True
    assert [e for e in clean.log() if e["method"] != "GET"] == [], "only reads"
    assert hr_notices(hrfix, report["id"]) == []
    # The person decides: the same leaver without the hold goes through.
    status, body, _ = worker.admin_post("/deprovision", {"externalId": joiner["externalId"],
                                                         "userName": joiner["userName"]})
    assert (status, body["deprovision"]["outcome"]) == (200, "deprovisioned"), body
    assert clean.user(uid)["active"] is False


def test_a_dry_run_sends_nothing_and_a_second_run_is_already_deprovisioned(worker, clean, hrfix):
    joiner, uid, agent_id = joined(worker, clean, groups=["Weekend Rota"])
    clean.clear_log()
    ask = {"userName": joiner["userName"], "externalId": joiner["externalId"]}
    status, plan, _ = worker.admin_post("/deprovision?dryRun=true", ask)
    assert status == 200 and plan["dryRun"] is True, plan
    assert [(w["method"], w["url"].split("127.0.0.1")[-1].split("/", 1)[-1]) for w in plan["wouldSend"]] == \
        [("PATCH", f"scim/v2/Users/{uid}"), ("POST", f"{ADMIN_API_PATH.lstrip('/')}/agents/{agent_id}/logout")], plan
    assert plan["dependencies"]["groups"]["names"] == ["Weekend Rota"]
    assert [e for e in clean.log() if e["method"] != "GET" and not e["path"].endswith("/token")] == []
    assert clean.user(uid)["active"] is True
    status, first, _ = worker.admin_post("/deprovision", ask)
    assert (status, first["deprovision"]["outcome"]) == (200, "deprovisioned"), first
    status, second, _ = worker.admin_post("/deprovision", ask)
    report = second["deprovision"]
    assert (status, second["status"], report["outcome"], report["verified"]) == \
        (200, "success", "already_deprovisioned", True), second
    assert steps_of(report)["deactivate"] == "already_done"
    assert report["id"] != first["deprovision"]["id"], "each request is its own leaver"
    # Both audited; HR told of the leaver once, not of the run that found it already out.
    lines = trail_of(worker, joiner["externalId"])
    assert len([e for e in lines if e.get("steps")]) == 2, lines
    assert len(hr_notices(hrfix, first["deprovision"]["id"])) == 1
    assert hr_notices(hrfix, report["id"]) == []


def test_bad_requests_name_the_field_and_run_nothing(worker, clean):
    for body, field in [({"userName": "a@example.com", "mode": "purge"}, "mode"),
                        ({"reason": "left"}, "externalId or userName"),
                        ({"userName": "a@example.com", "endSessions": "yes"}, "endSessions"),
                        ({"userName": "a@example.com", "dryRun": "maybe"}, "dryRun"),
                        ({"requests": [{"userName": "a@example.com"}, {"userName": "b@example.com", "modes": 1}]},
                         "requests[1]")]:
        status, answer, _ = worker.admin_post("/deprovision", body)
        assert status == 400 and field in answer["detail"], (body, answer)
    assert clean.log() == []
    assert worker.admin_post("/deprovision/dp_nope/replay")[0] == 404
    assert request("POST", worker.url + "/deprovision", {"userName": "a@example.com"})[0] == 401


def wait_batch(worker, batch_id, timeout=120):
    deadline = time.time() + timeout
    while True:
        status, body, _ = worker.admin_get(f"/deprovision/batches/{batch_id}?limit=1000")
        assert status == 200, body
        if body["progress"]["state"] in ("done", "rejected") or time.time() > deadline:
            return body
        time.sleep(0.5)


def test_a_batch_runs_each_leaver_through_the_same_steps(worker, clean, hrfix):
    people = [joined(worker, clean) for _ in range(3)]
    status, started, _ = worker.admin_post("/deprovision", {"requests": [
        {"externalId": j["externalId"], "userName": j["userName"], "reason": "restructure"} for j, _, _ in people]})
    assert status == 202 and started["state"] == "running" and started["total"] == 3, started
    body = wait_batch(worker, started["id"])
    progress = body["progress"]
    assert (progress["state"], progress["done"], progress["verified"]) == ("done", 3, 3), body
    assert [r["result"]["outcome"] for r in body["rows"]] == ["deprovisioned"] * 3, body["rows"]
    for (joiner, uid, _), row in zip(people, body["rows"]):
        assert row["externalId"] == joiner["externalId"]
        assert clean.user(uid)["active"] is False
        assert agent_of(clean, joiner["userName"])["loggedIn"] is False
        assert len(hr_notices(hrfix, row["result"]["deprovisionId"])) == 1


def test_a_batch_above_the_deletion_threshold_is_held_until_approved(worker, clean):
    people = [person() for _ in range(30)]
    for p in people:
        status, body, _ = worker.post_event(p)
        assert status == 200, body
    ask = {"requests": [{"externalId": p["externalId"], "userName": p["userName"]} for p in people]}
    status, plan, _ = worker.admin_post("/deprovision?dryRun=true", ask)
    assert (status, plan["state"], plan["total"]) == (200, "held", 30), plan
    clean.clear_log()
    status, started, _ = worker.admin_post("/deprovision", ask)
    assert (status, started["state"]) == (202, "held"), started
    assert clean.log() == [], "held: nothing read or written"
    assert worker.admin_post(f"/deprovision/batches/{started['id']}/reject?dryRun=true")[0] == 200
    status, approved, _ = worker.admin_post(f"/deprovision/batches/{started['id']}/approve")
    assert (status, approved["state"]) == (200, "running"), approved
    body = wait_batch(worker, started["id"], timeout=300)
    assert (body["progress"]["state"], body["progress"]["verified"]) == ("done", 30), body["progress"]
    assert all(clean.find("externalId", p["externalId"])[0]["active"] is False for p in people)
    # Approving twice changes nothing.
    assert worker.admin_post(f"/deprovision/batches/{started['id']}/approve")[0] == 409


def test_a_bulk_row_with_active_false_takes_the_leaver_steps(worker, clean, hrfix):
    stays = person()
    leaver, uid, _ = joined(worker, clean)
    rows = [{"userName": stays["userName"], "externalId": stays["externalId"], "firstName": "Stay",
             "lastName": "Here", "groups": [{"displayName": "cxone-agent"}]},
            {"userName": leaver["userName"], "externalId": leaver["externalId"], "firstName": "Lee",
             "lastName": "Ver", "active": False}]
    status, run, _ = worker.admin_post("/provision/bulk", {"users": rows})
    assert status == 200, run
    assert [u["outcome"] for u in run["users"]] == ["created", "leaver"], run["users"]
    assert run["counts"]["leaver"] == 1
    body = wait_batch(worker, run["leaverBatch"])
    assert (body["progress"]["state"], body["progress"]["verified"]) == ("done", 1), body
    report_id = body["rows"][0]["result"]["deprovisionId"]
    assert clean.user(uid)["active"] is False
    assert agent_of(clean, leaver["userName"])["loggedIn"] is False
    assert len(hr_notices(hrfix, report_id)) == 1
