"""Microsoft Graph sync end to end: the real Worker under `wrangler dev` reads Entra users from the
Graph fixture (tests/graphfix/graphfix.py) and writes them to scim2-server behind the CXone
stand-in. The module resets the fixture's directory once; each test then adds users and groups of
its own. The Worker keeps its delta cursor from test to test, so a pass sees what changed in
Graph since the previous one; every test waits for the passes it starts to finish."""

import collections
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest

from conftest import DELETION_THRESHOLD, ENTERPRISE, GRAPH_CLIENT_STATE, WORKER_PORT

NOTIFICATION_URL = f"http://127.0.0.1:{WORKER_PORT}/graph/notifications"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASS_TIMEOUT_S = 90
CRON = "*/10+*+*+*+*"


# --- the directory in the Graph fixture ------------------------------------------------------

class Directory:
    """The fixture's groups as this module set them up, and users added to them."""

    def __init__(self, fix):
        self.fix = fix
        self.groups = {}

    def group(self, key, display_name, members=()):
        self.groups[key] = {"id": str(uuid.uuid4()), "displayName": display_name, "members": list(members)}
        self._put(key)

    def join(self, key, *member_ids):
        self.groups[key]["members"] += member_ids
        self._put(key)

    def _put(self, key):
        g = self.groups[key]
        self.fix.put_group(g["id"], g["displayName"], g["members"])

    def people(self, n, groups=("agent",), **props):
        """n new users, members of `groups` (keys of self.groups) before they appear in Graph."""
        users = []
        for _ in range(n):
            uid = str(uuid.uuid4())
            tag = uid[:8]
            user = {"id": uid, "userPrincipalName": f"g.{tag}@contoso.example", "givenName": "Grace",
                    "surname": f"Graph{tag}", "displayName": f"Grace Graph{tag}",
                    "mail": f"grace.{tag}@mail.contoso.example", "accountEnabled": True, "jobTitle": "Agent I",
                    "department": "Support", "employeeId": f"E-{tag}"}
            user.update(props)
            users.append(user)
        for key in groups:
            self.join(key, *[u["id"] for u in users])
        for user in users:
            self.fix.put_user(user["id"], **{k: v for k, v in user.items() if k != "id"})
        return users

    def person(self, groups=("agent",), **props):
        return self.people(1, groups, **props)[0]


# --- the Worker's sync ----------------------------------------------------------------------

def sync_status(worker):
    status, body, _ = worker.admin_get("/sync/status")
    assert status == 200, body
    assert body["configured"] is True, body
    return body


def last_pass_id(worker):
    last = sync_status(worker)["lastPass"]
    return last and last["passId"]


def wait_pass(worker, before_id, timeout=PASS_TIMEOUT_S, seen=None):
    """The status once no pass runs and the last one is not `before_id`; `seen` collects the
    `running` summaries met on the way."""
    end = time.monotonic() + timeout
    while True:
        st = sync_status(worker)
        last = st["lastPass"]
        if st["running"] is None and last and last["passId"] != before_id:
            return st
        if st["running"] is not None and seen is not None:
            seen.append(st["running"])
        if time.monotonic() > end:
            raise AssertionError(f"no pass after {before_id} finished within {timeout} s: {st}")
        time.sleep(0.2)


def wait_settled(worker, before_id, quiet_s=1.5):
    """Like wait_pass, and then no further pass for `quiet_s` (longer than the Worker's
    coalescing delay): for asks that may start more than one pass."""
    st = wait_pass(worker, before_id)
    quiet_until = time.monotonic() + quiet_s
    while time.monotonic() < quiet_until:
        time.sleep(0.2)
        now = sync_status(worker)
        if now["running"] is not None or now["lastPass"]["passId"] != st["lastPass"]["passId"]:
            st = wait_pass(worker, st["lastPass"]["passId"])
            quiet_until = time.monotonic() + quiet_s
    return st


def logged_passes(worker):
    """The pass summaries the Worker logged (`"event":"graph_sync_pass"`), oldest first."""
    out = []
    for line in worker.log_lines():
        start = line.find('{"at"')
        if start >= 0 and '"graph_sync_pass"' in line:
            out.append(json.loads(line[start:])["summary"])
    return out


def assert_complete(last):
    assert not last.get("error"), last
    assert last["cursorAdvanced"] is True, last
    assert millis(last["finishedAt"]) >= millis(last["startedAt"]), last


def run_pass(worker, seen=None):
    """POST /sync/run and the status after the pass it started, checked to have completed."""
    before = last_pass_id(worker)
    status, body, _ = worker.admin_post("/sync/run")
    assert status == 202, body
    assert body["status"] == "accepted" and isinstance(body["running"], bool), body
    st = wait_pass(worker, before, seen=seen)
    assert_complete(st["lastPass"])
    return st


def count(last, outcome):
    return last["counts"].get(outcome, 0)


def millis(value):
    if isinstance(value, (int, float)):
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_request(method, url, data=None, headers=None):
    """(status, text, headers) for answers that need not be JSON."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode(errors="replace"), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace"), dict(err.headers)


def poll(what, check, timeout=10.0, pause=0.1):
    """Calls check() until it answers something truthy; that answer."""
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(pause)


# --- what CXone received ----------------------------------------------------------------------

def account(standin, user):
    """The one CXone account of Graph user `user`."""
    found = standin.find("externalId", user["id"])
    assert len(found) == 1, (user["id"], found)
    return found[0]


def role_values(acc):
    return sorted(r["value"] for r in acc.get("roles") or [])


def assert_mirrors(acc, user, role):
    """`acc` carries what the attribute map makes of `user`, and `role`."""
    assert acc["userName"] == user["userPrincipalName"], acc
    assert acc["externalId"] == user["id"], acc
    assert (acc["name"]["givenName"], acc["name"]["familyName"]) == (user["givenName"], user["surname"]), acc
    assert [e["value"] for e in acc.get("emails", []) if e.get("type") == "work"] == [user["mail"]], acc
    assert acc["active"] is user["accountEnabled"], acc
    assert acc.get("title") == user["jobTitle"], acc
    enterprise = acc.get(ENTERPRISE) or {}
    assert enterprise.get("department") == user["department"], acc
    assert enterprise.get("employeeNumber") == user["employeeId"], acc
    assert role_values(acc) == [role], acc


def user_posts(standin):
    return [e for e in standin.log() if e["method"] == "POST" and e["path"] == "/scim/v2/Users"]


def patched_attributes(body):
    """The attributes a SCIM PATCH body touches: each operation's path, or the keys of a
    path-less operation's value (an extension's keys as `urn:...:key`)."""
    names = set()
    for op in body["Operations"]:
        if op.get("path"):
            names.add(op["path"])
            continue
        for key, value in op["value"].items():
            if key.startswith("urn:") and isinstance(value, dict):
                names |= {f"{key}:{k}" for k in value}
            else:
                names.add(key)
    return names


def without_meta(acc):
    return {k: v for k, v in acc.items() if k != "meta"}


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def directory(worker, graphfix):
    graphfix.reset()
    d = Directory(graphfix)
    d.group("team-x", "team-x")
    d.group("agent", "cxone-agent", [d.groups["team-x"]["id"]])
    d.group("supervisor", "cxone-supervisor")
    d.group("finance", "Finance Admins")
    if sync_status(worker)["cursor"] is not None:
        run_pass(worker)  # a cursor from before the reset: settle on the empty directory first
    return d


@pytest.fixture
def fix(graphfix):
    """The Graph fixture with no faults, the default config and an empty log."""
    graphfix.clear_faults()
    graphfix.configure(pageSize=100, emptyPages=False, changedOnly=True)
    graphfix.clear_log()
    yield graphfix
    graphfix.clear_faults()
    graphfix.configure(pageSize=100, emptyPages=False, changedOnly=True)


# --- scope, roles and what is sent ------------------------------------------------------------

def test_first_pass_creates_everyone_in_scope_with_their_roles(worker, clean, directory, fix):
    before = sync_status(worker)
    direct = directory.person(groups=("agent", "finance"))  # an unmapped group beside a mapped one
    boss = directory.person(groups=("supervisor",))
    nested = directory.person(groups=("team-x",))  # cxone-agent > team-x > the user
    outsider = directory.person(groups=("finance",))
    nobody = directory.person(groups=())
    st = run_pass(worker)
    last = st["lastPass"]

    assert_mirrors(account(clean, direct), direct, "Agent")
    assert_mirrors(account(clean, boss), boss, "Supervisor")
    assert_mirrors(account(clean, nested), nested, "Agent")
    for user in (outsider, nobody):
        assert clean.find("externalId", user["id"]) == []
        assert clean.find("userName", user["userPrincipalName"]) == []
    posts = user_posts(clean)
    assert sorted((p["status"], p["body"]["externalId"]) for p in posts) == \
        sorted((201, u["id"]) for u in (direct, boss, nested)), posts
    assert (count(last, "created"), count(last, "out_of_scope"), last["changes"]) == (3, 2, 5), last
    assert st["inScope"] == before["inScope"] + 3, st
    assert st["cursor"] is not None and st["cursor"]["ageSeconds"] >= 0, st


def test_a_changed_title_is_the_only_attribute_sent(worker, clean, directory, fix):
    user, other = directory.people(2)
    run_pass(worker)
    acc, other_acc = account(clean, user), account(clean, other)
    # The documented default of a delta round: a changed user comes with every selected
    # property, changed or not. `other` changes and changes back: in the round, as it was.
    fix.configure(changedOnly=False)
    fix.patch_user(user["id"], jobTitle="Team Lead")
    fix.patch_user(other["id"], jobTitle="Temporary")
    fix.patch_user(other["id"], jobTitle=other["jobTitle"])
    clean.clear_log()
    last = run_pass(worker)["lastPass"]

    writes = clean.scim_writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PATCH", f"/scim/v2/Users/{acc['id']}")], writes
    assert writes[0]["status"] in (200, 204), writes
    assert patched_attributes(writes[0]["body"]) == {"title"}, writes[0]["body"]
    after = clean.user(acc["id"])
    assert after["title"] == "Team Lead"
    assert {k: v for k, v in without_meta(after).items() if k != "title"} == \
        {k: v for k, v in without_meta(acc).items() if k != "title"}
    assert clean.user(other_acc["id"]) == other_acc
    assert (last["changes"], count(last, "updated"), count(last, "unchanged")) == (2, 1, 1), last


def test_a_dry_run_lists_the_requests_and_moves_nothing(worker, clean, directory, fix):
    user = directory.person()
    run_pass(worker)
    acc = account(clean, user)
    fix.patch_user(user["id"], surname="Dryrun")
    before = sync_status(worker)
    clean.clear_log()
    status, body, _ = worker.admin_post("/sync/run?dryRun=true")
    assert status == 200, body
    assert body["dryRun"] is True and body["complete"] is True, body
    assert [r["externalId"] for r in body["requests"]] == [user["id"]], body
    planned = body["requests"][0]["request"]
    assert planned["method"] == "PATCH" and planned["url"].endswith(f"/Users/{acc['id']}"), planned
    assert "Dryrun" in json.dumps(planned["body"]) and user["surname"] not in json.dumps(planned["body"]), planned
    assert body["wouldHold"] == [] and body["changes"] == 1, body

    assert clean.scim_writes() == []
    after = sync_status(worker)
    assert after["cursor"]["storedAt"] == before["cursor"]["storedAt"], (before, after)
    assert after["lastPass"]["passId"] == before["lastPass"]["passId"]
    assert clean.user(acc["id"])["name"]["familyName"] == user["surname"]
    # The cursor stayed: the change is still there for the next pass.
    last = run_pass(worker)["lastPass"]
    assert count(last, "updated") == 1, last
    assert clean.user(acc["id"])["name"]["familyName"] == "Dryrun"


def test_a_cxone_owned_attribute_is_set_on_create_and_never_overwritten(worker, clean, directory, fix):
    # The session's ATTRIBUTE_MAP (conftest) makes department CXone's.
    user = directory.person(department="Sales")
    run_pass(worker)
    acc = account(clean, user)
    assert acc[ENTERPRISE]["department"] == "Sales", acc
    status, body, _ = clean.scim("PATCH", f"/Users/{acc['id']}", {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Workforce Planning"}]})
    assert status in (200, 204), body
    edited = clean.user(acc["id"])
    assert edited[ENTERPRISE]["department"] == "Workforce Planning"

    # Only department changes in Entra: nothing to send for this person; a newcomer still gets
    # department on create.
    fix.patch_user(user["id"], department="Marketing")
    newcomer = directory.person(department="Logistics")
    clean.clear_log()
    last = run_pass(worker)["lastPass"]
    assert [(w["method"], w["path"]) for w in clean.scim_writes()] == [("POST", "/scim/v2/Users")], clean.scim_writes()
    assert (count(last, "created"), count(last, "unchanged")) == (1, 1), last
    assert account(clean, newcomer)[ENTERPRISE]["department"] == "Logistics"
    assert clean.user(acc["id"]) == edited

    # Department and title change: only the title is sent.
    fix.patch_user(user["id"], department="Finance", jobTitle="Senior Agent")
    clean.clear_log()
    last = run_pass(worker)["lastPass"]
    writes = clean.scim_writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PATCH", f"/scim/v2/Users/{acc['id']}")], writes
    assert patched_attributes(writes[0]["body"]) == {"title"}, writes[0]["body"]
    after = clean.user(acc["id"])
    assert (after["title"], after[ENTERPRISE]["department"]) == ("Senior Agent", "Workforce Planning"), after
    assert count(last, "updated") == 1, last


def test_soft_and_hard_deleted_users_are_disabled(worker, clean, directory, fix):
    soft, hard, stays = directory.people(3)
    run_pass(worker)
    accs = {u["id"]: account(clean, u) for u in (soft, hard, stays)}
    assert all(a["active"] is True for a in accs.values())
    fix.delete_user(soft["id"], hard=False)
    fix.delete_user(hard["id"], hard=True)  # GRAPH_DELETE_MODE=disable: kept, disabled
    clean.clear_log()
    st = run_pass(worker)
    last = st["lastPass"]

    for user in (soft, hard):
        acc = accs[user["id"]]
        after = clean.user(acc["id"])
        assert after["active"] is False, after
        assert without_meta({**after, "active": True}) == without_meta(acc)
    assert clean.user(accs[stays["id"]]["id"]) == accs[stays["id"]]
    writes = clean.scim_writes()
    assert sorted(w["path"] for w in writes) == sorted(f"/scim/v2/Users/{accs[u['id']]['id']}" for u in (soft, hard))
    assert all(w["method"] == "PATCH" and patched_attributes(w["body"]) == {"active"} for w in writes), writes
    assert (count(last, "disabled"), last["held"], st["held"]["count"]) == (2, 0, 0), st


# --- failures, a lost cursor, throttling ------------------------------------------------------

def test_a_lost_cursor_resyncs_without_duplicates(worker, clean, directory, fix):
    directory.person()
    run_pass(worker)
    users_before = clean.user_count()
    fix.fault(kind="gone")
    clean.clear_log()
    fix.clear_log()
    last = run_pass(worker)["lastPass"]

    assert last["resynced"] is True, last
    delta = [e for e in fix.log() if e["path"] == "/v1.0/users/delta"]
    assert delta[0]["status"] == 410 and "deltatoken" in delta[0]["query"].lower(), delta
    assert all(e["status"] == 200 for e in delta[1:]) and len(delta) > 1, delta
    assert last["changes"] == len(fix.users()), last  # the full round: every live user
    assert count(last, "created") == 0, last
    assert user_posts(clean) == []
    assert clean.user_count() == users_before
    for user in fix.users():  # each at most once, by externalId and by userName
        assert len(clean.find("externalId", user["id"])) <= 1, user
        assert len(clean.find("userName", user["userPrincipalName"])) <= 1, user


def test_a_full_round_disables_who_was_deleted_while_no_cursor_was_followed(worker, clean, directory, fix):
    # Deleted for good while Graph forgets the cursor: no `@removed` will ever tell of them, so
    # the full round that follows must notice they are gone.
    stays, goes = directory.person(), directory.person()
    run_pass(worker)
    assert account(clean, goes)["active"] is True
    fix.delete_user(goes["id"], hard=True)
    fix.fault(kind="gone")
    clean.clear_log()
    last = run_pass(worker)["lastPass"]

    assert last["resynced"] is True and last["fullRound"] is True, last
    assert count(last, "disabled") == 1 and count(last, "held") == 0, last
    acc = account(clean, goes)
    assert acc["active"] is False
    assert account(clean, stays)["active"] is True
    writes = [e for e in clean.log() if e["method"] in ("POST", "PUT", "PATCH", "DELETE") and "/Users" in e["path"]]
    assert [(e["method"], e["path"].rsplit("/", 1)[-1]) for e in writes] == [("PATCH", acc["id"])], writes


def test_throttled_graph_calls_are_waited_out(worker, clean, directory, fix):
    user = directory.person()
    run_pass(worker)
    acc = account(clean, user)
    fix.patch_user(user["id"], jobTitle="After The Wait")
    newcomer = directory.person()
    member_of = f"/v1.0/users/{newcomer['id']}/transitiveMemberOf"
    fix.fault(kind="throttle", retryAfter=1, count=1, path="/v1.0/users/delta")
    fix.fault(kind="throttle", retryAfter=1, count=1, path=member_of)
    fix.clear_log()
    last = run_pass(worker)["lastPass"]

    assert clean.user(acc["id"])["title"] == "After The Wait"
    assert account(clean, newcomer)["active"] is True
    log = fix.log()
    for prefix in ("/v1.0/users/delta", member_of):
        statuses = [e["status"] for e in log if e["path"].startswith(prefix)]
        assert statuses[0] == 429 and 200 in statuses[1:], (prefix, statuses)
    assert last["durationMs"] >= 1000, last  # Retry-After: 1 honoured
    assert (count(last, "updated"), count(last, "created")) == (1, 1), last


# --- cron, change notifications ----------------------------------------------------------------

def test_the_cron_trigger_runs_a_pass_and_keeps_one_subscription(worker, clean, directory, fix):
    user = directory.person()
    existed = [s for s in fix.subscriptions() if s["notificationUrl"] == NOTIFICATION_URL]
    before = last_pass_id(worker)
    status, text, _ = raw_request("GET", f"{worker.url}/cdn-cgi/handler/scheduled?cron={CRON}")
    assert status == 200, text
    wait_pass(worker, before)
    assert account(clean, user)["active"] is True

    def ours():
        subs = [s for s in fix.subscriptions() if s["notificationUrl"] == NOTIFICATION_URL]
        return subs if any(s["resource"].lower().startswith("users") for s in subs) else None

    subs = poll("a users subscription for the Worker", ours)
    for sub in subs:
        assert sub["clientState"] == GRAPH_CLIENT_STATE, sub
        assert millis(sub["expirationDateTime"].replace("0Z", "Z")) > time.time() * 1000 + 3600_000, sub
    if not existed:  # created by this cron run: Graph checked the URL first
        validations = [e for e in fix.log() if e.get("outbound") == "validation" and e["path"] == NOTIFICATION_URL]
        assert validations and all(e["status"] == 200 for e in validations), fix.log()

    # Another cron run keeps (renews) the subscriptions instead of adding more.
    before = last_pass_id(worker)
    assert raw_request("GET", f"{worker.url}/cdn-cgi/handler/scheduled?cron={CRON}")[0] == 200
    wait_pass(worker, before)
    time.sleep(1)  # a renewal that would add a subscription has had time to
    assert sorted(s["id"] for s in ours()) == sorted(s["id"] for s in subs)

    # A notification sent for the subscription (Graph fills in its clientState) is taken.
    acc = account(clean, user)
    fix.patch_user(user["id"], jobTitle="Via Subscription")
    users_sub = next(s for s in subs if s["resource"].lower().startswith("users"))
    answer = fix.notify(subscriptionId=users_sub["id"], ids=[user["id"]])
    assert answer["status"] == 202, answer
    poll("the notified change in CXone", lambda: clean.user(acc["id"]).get("title") == "Via Subscription")


def test_the_validation_handshake(worker, fix):
    result = fix.validate(NOTIFICATION_URL)
    assert result["ok"] is True, result
    assert all(result["checks"].values()), result


def test_a_change_notification_brings_the_change_without_a_run(worker, clean, directory, fix):
    user = directory.person()
    run_pass(worker)
    acc = account(clean, user)
    before = last_pass_id(worker)
    fix.patch_user(user["id"], jobTitle="Notified Title")
    answer = fix.notify(url=NOTIFICATION_URL, clientState=GRAPH_CLIENT_STATE, resource="users",
                        changeType="updated", ids=[user["id"]])
    assert answer["status"] == 202 and answer["error"] is None, answer
    assert answer["elapsedMs"] < 3000, answer  # Graph gives up after 3 s
    poll("the notified change in CXone", lambda: clean.user(acc["id"]).get("title") == "Notified Title")
    last = wait_pass(worker, before)["lastPass"]
    assert count(last, "updated") == 1, last


def test_a_group_change_notification_brings_in_a_new_member(worker, clean, directory, fix):
    # Membership is not in /users/delta: a user who joins a mapped group later shows only in the
    # group's notification, which makes the next pass read every user's groups again.
    user = directory.person(groups=())
    run_pass(worker)
    assert clean.find("externalId", user["id"]) == []
    before = last_pass_id(worker)
    directory.join("team-x", user["id"])  # nested: team-x is a member of cxone-agent
    answer = fix.notify(url=NOTIFICATION_URL, clientState=GRAPH_CLIENT_STATE, resource="groups",
                        changeType="updated", ids=[directory.groups["team-x"]["id"]])
    assert answer["status"] == 202 and answer["error"] is None, answer
    poll("the group's new member in CXone", lambda: clean.find("externalId", user["id"]), timeout=30)
    last = wait_pass(worker, before)["lastPass"]
    assert last["fullRound"] is True and last["resynced"] is False, last
    assert count(last, "created") == 1 and count(last, "disabled") == 0, last
    assert role_values(account(clean, user)) == ["Agent"]


def test_a_wrong_client_state_is_refused_and_runs_nothing(worker, clean, directory, fix):
    user = directory.person()
    run_pass(worker)
    acc = account(clean, user)
    fix.patch_user(user["id"], jobTitle="Waits For A Pass")
    before = sync_status(worker)
    clean.clear_log()
    for state in ("not-the-client-state", GRAPH_CLIENT_STATE[:-1], None):  # wrong, almost, missing
        answer = fix.notify(url=NOTIFICATION_URL, clientState=state, ids=[user["id"]])
        assert answer["status"] is not None and 400 <= answer["status"] < 500, (state, answer)
    time.sleep(2.5)  # a pass asked for starts within about a second
    after = sync_status(worker)
    assert after["running"] is None and after["lastPass"]["passId"] == before["lastPass"]["passId"], after
    assert clean.log() == []
    assert clean.user(acc["id"]).get("title") == user["jobTitle"]
    # Nothing was lost: the next pass brings the change.
    run_pass(worker)
    assert clean.user(acc["id"])["title"] == "Waits For A Pass"


# --- ordering against webhooks ----------------------------------------------------------------

def test_a_webhook_and_a_delta_change_for_one_person_end_in_the_newer_state(worker, clean, directory, fix):
    user = directory.person()
    run_pass(worker)
    acc = account(clean, user)
    fix.patch_user(user["id"], surname="FromGraph")
    last = run_pass(worker)["lastPass"]
    assert clean.user(acc["id"])["name"]["familyName"] == "FromGraph"

    event = {"operation": "update", "userName": user["userPrincipalName"], "externalId": user["id"],
             "firstName": user["givenName"], "lastName": "FromOlderWebhook",
             "groups": [{"displayName": "cxone-agent"}], "accountEnabled": True,
             "occurredAt": iso(millis(last["startedAt"]) - 1000)}
    clean.clear_log()
    status, body, _, _ = worker.deliver(event, f"msg_graph_older_{uuid.uuid4().hex}")
    assert (status, body.get("action")) == (200, "stale"), body
    assert clean.scim_writes() == []
    assert clean.user(acc["id"])["name"]["familyName"] == "FromGraph"

    newer = dict(event, lastName="FromNewerWebhook", occurredAt=iso(millis(last["finishedAt"]) + 1000))
    status, body, _, _ = worker.deliver(newer, f"msg_graph_newer_{uuid.uuid4().hex}")
    assert (status, body.get("action"), body.get("id")) == (200, "updated", acc["id"]), body
    assert clean.user(acc["id"])["name"]["familyName"] == "FromNewerWebhook"


# --- many users: checkpoints and the deletion guard ------------------------------------------

def test_a_pass_over_40_users_is_checkpointed_and_creates_each_once(worker, clean, directory, fix):
    people = directory.people(40)
    clean.clear_log()
    seen = []
    last = run_pass(worker, seen=seen)["lastPass"]

    assert (count(last, "created"), last["changes"]) == (40, 40), last
    posts = user_posts(clean)
    assert all(p["status"] == 201 for p in posts), [p["status"] for p in posts]
    assert collections.Counter(p["body"]["externalId"] for p in posts) == collections.Counter(u["id"] for u in people)
    for user in people:
        assert_mirrors(account(clean, user), user, "Agent")
        assert len(clean.find("userName", user["userPrincipalName"])) == 1, user
    # 40 creates and their memberships do not fit one invocation's 50 subrequests: several
    # slices, and the pass was seen part done between them.
    assert last["slices"] > 1, last
    partial = [r for r in seen if 0 < (r.get("counts") or {}).get("created", 0) < 40]
    assert partial, seen[-3:]


def hold_leavers(worker, clean, directory, fix, n):
    """n users created, then soft-deleted in Entra in one go: the pass that reads them holds
    them. Their accounts and the status after that pass."""
    people = directory.people(n)
    run_pass(worker)
    accs = {u["id"]: account(clean, u) for u in people}
    for user in people:
        fix.delete_user(user["id"], hard=False)
    status, plan, _ = worker.admin_post("/sync/run?dryRun=true")
    assert status == 200 and plan["complete"] is True, plan
    assert sorted(h["graphId"] for h in plan["wouldHold"]) == sorted(accs), plan
    assert [r for r in plan["requests"] if r["externalId"] in accs] == [], plan
    clean.clear_log()
    st = run_pass(worker)
    last = st["lastPass"]
    assert (last["held"], count(last, "held"), count(last, "disabled")) == (n, n, 0), last
    assert st["held"]["count"] == n, st["held"]
    assert sorted(h["graphId"] for h in st["held"]["leavers"]) == sorted(accs), st["held"]
    assert clean.scim_writes() == []
    assert all(clean.user(a["id"])["active"] is True for a in accs.values())
    return accs


def test_mass_leavers_are_held_until_approved(worker, clean, directory, fix):
    assert DELETION_THRESHOLD == 25
    accs = hold_leavers(worker, clean, directory, fix, 30)
    before = last_pass_id(worker)
    logged_before = {p["passId"] for p in logged_passes(worker)}
    status, body, _ = worker.admin_post("/sync/approve")
    assert status in (200, 202) and body.get("approved") == 30, body
    # The approved leavers run as a pass of their own (a delta pass may follow it).
    st = wait_settled(worker, before)
    assert not st["lastPass"].get("error"), st["lastPass"]
    assert st["held"]["count"] == 0, st["held"]
    approved = [p for p in logged_passes(worker) if p["passId"] not in logged_before and count(p, "disabled")]
    assert len(approved) == 1 and count(approved[0], "disabled") == 30, approved
    assert all(clean.user(a["id"])["active"] is False for a in accs.values())
    patched = [w for w in clean.scim_writes() if w["method"] == "PATCH"]
    assert sorted(w["path"] for w in patched) == sorted(f"/scim/v2/Users/{a['id']}" for a in accs.values())
    # Each approved leaver took the leaver's steps and was read back: a verified record each.
    leavers, _ = worker.admin_pages("/deprovision", "leavers")
    mine = [r for r in leavers if r["who"].get("externalId") in accs]
    assert len(mine) == 30, [r["who"] for r in mine]
    assert all(r["report"]["verified"] and r["trigger"] == "delta" for r in mine), mine
    assert all(s["status"] == "done" for r in mine for s in r["report"]["steps"]), mine


def test_mass_disabling_in_entra_is_held_like_mass_removal(worker, clean, directory, fix):
    """A script that disables many accounts in Entra (accountEnabled false, still in the mapped
    group) meets the deletion guard too: nothing is disabled in CXone until approved."""
    n = DELETION_THRESHOLD + 2
    people = directory.people(n)
    run_pass(worker)
    accs = {u["id"]: account(clean, u) for u in people}
    for user in people:
        fix.patch_user(user["id"], accountEnabled=False)
    clean.clear_log()
    st = run_pass(worker)
    last = st["lastPass"]
    assert (last["held"], count(last, "disabled")) == (n, 0), last
    assert set(accs) <= {h["graphId"] for h in st["held"]["leavers"]}, st["held"]
    assert clean.scim_writes() == []
    assert all(clean.user(a["id"])["active"] is True for a in accs.values())
    before = last_pass_id(worker)
    status, body, _ = worker.admin_post("/sync/approve")
    assert status in (200, 202) and body.get("approved") == n, body
    wait_settled(worker, before)
    assert all(clean.user(a["id"])["active"] is False for a in accs.values())


def test_held_leavers_can_be_rejected(worker, clean, directory, fix):
    accs = hold_leavers(worker, clean, directory, fix, DELETION_THRESHOLD + 1)
    # What approving would apply: the held leavers, and nothing is done yet.
    status, body, _ = worker.admin_post("/sync/approve?dryRun=true")
    assert status == 200 and body["dryRun"] is True, body
    assert sorted(x["graphId"] for x in body["wouldApply"]) == sorted(accs), body
    assert {x["operation"] for x in body["wouldApply"]} == {"disable"}, body
    assert sync_status(worker)["held"]["count"] == len(accs)
    assert clean.scim_writes() == []

    before = last_pass_id(worker)
    status, body, _ = worker.admin_post("/sync/reject")
    assert (status, body.get("rejected")) == (200, len(accs)), body
    st = sync_status(worker)
    assert st["held"]["count"] == 0 and st["held"]["leavers"] == [], st["held"]
    # Rejected means dropped: no pass disables them, now or later.
    last = run_pass(worker)["lastPass"]
    assert last["passId"] != before and last["held"] == 0 and count(last, "disabled") == 0, last
    assert sync_status(worker)["held"]["count"] == 0
    assert clean.scim_writes() == []
    assert all(clean.user(a["id"])["active"] is True for a in accs.values())


# --- a refused change (last: a parked change stays in the status for the rest of the session) --

def test_a_change_cxone_refuses_is_parked_and_the_pass_goes_on(worker, clean, directory, fix):
    people = directory.people(3)
    run_pass(worker)
    accs = [account(clean, u) for u in people]
    before = sync_status(worker)
    refused = people[1]
    clean.fault(status=400, scimType="invalidValue", detail="title refused by a CXone rule", count=5,
                method="PATCH", path=f"/scim/v2/Users/{accs[1]['id']}")
    for i, user in enumerate(people):
        fix.patch_user(user["id"], jobTitle=f"Title {i}")
    clean.clear_log()
    st = run_pass(worker)
    last = st["lastPass"]

    assert [clean.user(a["id"]).get("title") for a in accs] == ["Title 0", refused["jobTitle"], "Title 2"]
    to_refused = [w for w in clean.scim_writes() if w["path"] == f"/scim/v2/Users/{accs[1]['id']}"]
    assert [(w["method"], w["status"]) for w in to_refused] == [("PATCH", 400)], "a refusal is not retried"
    assert (count(last, "updated"), count(last, "failed")) == (2, 1), last
    assert st["parked"]["count"] == before["parked"]["count"] + 1, st["parked"]
    mine = [p for p in st["parked"]["changes"] if p["graphId"] == refused["id"]]
    assert len(mine) == 1 and mine[0]["detail"] and mine[0]["eventId"], st["parked"]
    failures, _ = worker.admin_pages("/failures", "failures")
    recorded = [f for f in failures if f["eventId"] == mine[0]["eventId"]]
    assert len(recorded) == 1 and refused["id"] in json.dumps(recorded[0]), failures
    assert millis(st["cursor"]["storedAt"]) > millis(before["cursor"]["storedAt"]), (before["cursor"], st["cursor"])
