"""A quick check of the stand-in (a few seconds). In its default profile (scim2-server behind
standin.py): ETags and If-Match go through, and the concurrentChange fault makes an If-Match PUT
meet scim2-server's own 412. In its cxone profile: CXone's UserHub SCIM as NICE publishes it
(access-key tokens, the userName filter only, no Bulk, Groups or DELETE, required attributes,
the tenant's roles and teams, the NICE extension). In both: NICE's Admin API over the SCIM users
(agent search, logout, an agent's skills, groups and scheduled callbacks), with the token check,
faults, the log and the rate limit of /scim/v2.

Run with the venv's Python (scim2-server sits beside it):
    ~/.cache/cxone-scim/py-*/bin/python tests/standin/selftest.py [--port 48790]
(the default profile on PORT, scim2-server on PORT + 1; the cxone profile on PORT + 2 and
PORT + 3)."""

import argparse
import json
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from harness import start_standin, stop_group  # noqa: E402

CLIENT_ID = "standin-selftest"
CLIENT_SECRET = "selftest-secret"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
NICE_USER = "urn:ietf:params:scim:schemas:extension:nice:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ADMIN = "/incontactapi/services/v31.0"  # NICE's Admin API, the stand-in's default --admin-prefix
OAUTH_FORM = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                     "client_secret": CLIENT_SECRET}).encode()


def check(ok, what):
    if not ok:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


class Client:
    def __init__(self, base, access_key=False):
        """Gets a token with client credentials, or with `access_key` as CXone hands them out."""
        self.base = base
        if access_key:
            status, doc, _ = self.call("POST", "/authentication/v1/token/access-key",
                                       {"accessKeyId": CLIENT_ID, "accessKeySecret": CLIENT_SECRET},
                                       {"Content-Type": "application/json"})
        else:
            status, doc, _ = self.call("POST", "/oauth/token", raw=OAUTH_FORM,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 200, f"a token ({'access key' if access_key else 'client credentials'})")
        self.token = doc["access_token"]

    def call(self, method, path, body=None, headers=None, raw=None, auth=True):
        """(status, parsed body, headers); the token goes to /scim/v2 and the Admin API unless
        `auth` is false."""
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/scim+json")
        if auth and getattr(self, "token", None) and path.startswith(("/scim/", ADMIN)):
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                got, status, hdrs = resp.read(), resp.status, resp.headers
        except urllib.error.HTTPError as err:
            got, status, hdrs = err.read(), err.code, err.headers
        return status, (json.loads(got) if got else None), hdrs


def put_body(user, roles):
    body = {k: v for k, v in user.items() if k not in ("meta", "groups")}
    body["roles"] = roles
    return body


def run(c):
    new = {"schemas": [USER_SCHEMA], "userName": "jdoe@example.com", "externalId": "e-1", "nickName": "JJ",
           "roles": [{"value": "A"}, {"value": "B"}]}
    status, jane, hdrs = c.call("POST", "/scim/v2/Users", new)
    check(status == 201 and hdrs.get("ETag") == jane["meta"]["version"], "create: ETag header is meta.version")
    _, other, _ = c.call("POST", "/scim/v2/Users", dict(new, userName="other@example.com", externalId="e-2"))
    path = f"/scim/v2/Users/{jane['id']}"

    # --- ETag and If-Match go through ---
    status, current, hdrs = c.call("GET", path)
    etag = hdrs.get("ETag")
    check(status == 200 and etag and etag == current["meta"]["version"], f"GET: ETag {etag} comes back")
    status, _, _ = c.call("PUT", path, put_body(current, [{"value": "A"}]), {"If-Match": 'W/"stale"'})
    check(status == 412, "PUT with another version's If-Match: 412 from scim2-server")
    status, _, hdrs = c.call("PUT", path, put_body(current, [{"value": "A"}]), {"If-Match": etag})
    check(status == 200 and hdrs.get("ETag") not in (None, etag), "PUT with the current If-Match: 200, new ETag")

    # --- concurrentChange: the user moves on between our read and our PUT ---
    status, _, _ = c.call("POST", "/_standin/faults", {"kind": "nope"})
    check(status == 400, "faults: an unknown kind is refused")
    c.call("DELETE", "/_standin/log")
    c.call("POST", "/_standin/faults", {"kind": "concurrentChange", "id": jane["id"]})
    _, before, hdrs = c.call("GET", path)
    read_etag = hdrs.get("ETag")
    # Another user's PUT does not take the fault.
    _, theirs, their_hdrs = c.call("GET", f"/scim/v2/Users/{other['id']}")
    status, _, _ = c.call("PUT", f"/scim/v2/Users/{other['id']}", put_body(theirs, [{"value": "B"}]),
                          {"If-Match": their_hdrs.get("ETag")})
    check(status == 200, "concurrentChange with an id: another user's PUT passes")
    status, doc, _ = c.call("PUT", path, put_body(before, [{"value": "B"}]), {"If-Match": read_etag})
    check(status == 412, "concurrentChange: the If-Match PUT meets scim2-server's 412")
    _, after, hdrs = c.call("GET", path)
    check(after["nickName"].startswith("changed concurrently") and after["roles"] == [{"value": "A"}]
          and hdrs.get("ETag") != read_etag, f"concurrentChange: nickName now {after['nickName']!r}, roles untouched")
    _, log, _ = c.call("GET", "/_standin/log")
    puts = [e for e in log if e["method"] == "PUT" and e["path"] == path]
    check(len(puts) == 1 and puts[0]["status"] == 412 and puts[0]["concurrentChange"]["status"] in (200, 204)
          and puts[0]["concurrentChange"]["attribute"] == "nickName",
          "concurrentChange: the PUT's log entry notes the change")
    check(puts[0]["ifMatch"] == read_etag, "the log keeps the If-Match header as sent")
    check(all(e["ifMatch"] is None for e in log if e["method"] == "GET"),
          "the log notes no If-Match when none was sent")
    check(not any(e["method"] == "PATCH" for e in log), "concurrentChange: the change is not a logged request")
    status, done, _ = c.call("PUT", path, put_body(after, [{"value": "B"}]), {"If-Match": hdrs.get("ETag")})
    check(status == 200 and done["roles"] == [{"value": "B"}] and done["nickName"] == after["nickName"],
          "read again and PUT: 200, the concurrent change kept")
    status, _, _ = c.call("PUT", path, put_body(done, [{"value": "A"}]), {"If-Match": done["meta"]["version"]})
    check(status == 200, "the fault is used up after one PUT")

    # --- a chosen attribute and value, several times, on PATCH ---
    c.call("POST", "/_standin/faults", {"kind": "concurrentChange", "method": "PATCH", "count": 2,
                                        "attribute": "title", "value": "Moved"})
    _, now, hdrs = c.call("GET", path)
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "roles", "value": [{"value": "B"}]}]}
    status, _, _ = c.call("PATCH", path, patch, {"If-Match": hdrs.get("ETag")})
    _, moved, _ = c.call("GET", path)
    check(status == 412 and moved["title"] == "Moved", "concurrentChange on PATCH, with attribute and value")
    c.call("DELETE", "/_standin/faults")
    status, _, _ = c.call("PATCH", path, patch, {"If-Match": moved["meta"]["version"]})
    check(status in (200, 204), f"DELETE /_standin/faults removes the rest ({status})")


def cxone_user(user_name, **extra):
    return {"schemas": [USER_SCHEMA], "userName": user_name, "externalId": f"ext-{user_name}",
            "name": {"givenName": "Jane", "familyName": "Doe"}, "emails": [{"value": user_name, "type": "work"}],
            "active": True, **extra}


def patch(*ops):
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


def search(c, filter_):
    return c.call("GET", "/scim/v2/Users?" + urllib.parse.urlencode({"filter": filter_}))


def run_cxone(c):
    # --- the profile shows, tokens come from the access key only ---
    _, stats, _ = c.call("GET", "/_standin/stats")
    _, config, _ = c.call("GET", "/_standin/config")
    check(stats["profile"] == "cxone" and config["roles"][0] == "Agent" and config["teams"]["t-200"] == "Sales",
          "stats and config show the cxone profile, its roles and teams")
    status, _, _ = c.call("POST", "/oauth/token", raw=OAUTH_FORM,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(status == 404, "the access-key token works, /oauth/token is 404")

    # --- create: required attributes, default role, team by id ---
    status, doc, _ = c.call("POST", "/scim/v2/Users", cxone_user("nofamily@example.com", name={"givenName": "N"}))
    check(status == 400 and doc["scimType"] == "invalidValue" and "familyName" in doc["detail"],
          f"create without name.familyName: 400 invalidValue ({doc['detail']})")
    status, doc, _ = c.call("POST", "/scim/v2/Users", cxone_user("nomail@example.com", emails=[{"type": "work"}]))
    check(status == 400 and doc["scimType"] == "invalidValue", "create without an email value: 400 invalidValue")
    status, jane, _ = c.call("POST", "/scim/v2/Users",
                             cxone_user("Jane.Doe@Example.com", **{NICE_USER: {"team": {"value": "t-200"}}}))
    check(status == 201 and jane["roles"] == [{"value": "Agent", "display": "Agent", "primary": True}],
          "create without roles: CXone's default role, Agent, primary")
    check(jane[NICE_USER]["team"] == {"value": "t-200", "display": "Sales"} and NICE_USER in jane["schemas"]
          and jane["externalId"] == "ext-Jane.Doe@Example.com",
          "create with a team id: the team comes back with its name, the extension in schemas, externalId kept")
    status, doc, _ = c.call("POST", "/scim/v2/Users", cxone_user("boss@example.com", roles=[{"value": "Boss"}]))
    check(status == 400 and doc["scimType"] == "invalidValue", "create with an unknown role: 400 invalidValue")
    status, doc, _ = c.call("POST", "/scim/v2/Users",
                            cxone_user("lost@example.com", **{NICE_USER: {"team": {"value": "t-999"}}}))
    check(status == 400 and doc["scimType"] == "invalidValue", "create with an unknown team: 400 invalidValue")
    status, bob, _ = c.call("POST", "/scim/v2/Users", cxone_user("bob@example.com", roles=[{"value": "Supervisor"}]))
    check(status == 201 and bob["roles"] == [{"value": "Supervisor", "display": "Supervisor"}]
          and NICE_USER not in bob, "create with a role: kept, with its display; no team given, none set")

    # --- search: userName eq only ---
    status, doc, _ = c.call("GET", "/scim/v2/Users")
    check(status == 400 and doc["scimType"] == "invalidFilter", "list without a filter: 400 invalidFilter")
    status, doc, _ = search(c, 'externalId eq "ext-bob@example.com"')
    check(status == 400 and doc["scimType"] == "invalidFilter", "externalId eq: 400 invalidFilter")
    status, doc, _ = search(c, 'userName eq "bob@example.com" and active eq true')
    check(status == 400, "userName eq with more to it: 400")
    status, doc, _ = search(c, 'USERNAME EQ "jane.doe@EXAMPLE.com"')
    found = doc["Resources"] if status == 200 else []
    check(len(found) == 1 and found[0]["id"] == jane["id"], "userName eq finds the user whatever the case")
    check(found[0][NICE_USER]["team"]["display"] == "Sales" and found[0]["roles"][0]["display"] == "Agent",
          "list answers carry the role and team displays")
    status, doc, _ = search(c, r'userName eq "odd\"name"')
    check(status == 200 and doc["totalResults"] == 0, "a value with an escaped quote is a valid filter")

    # --- PATCH: roles and team ---
    path = f"/scim/v2/Users/{jane['id']}"
    status, doc, _ = c.call("PATCH", path, patch({"op": "replace", "path": f"{NICE_USER}:team.value",
                                                  "value": "t-300"}))
    check(status == 200 and doc[NICE_USER]["team"] == {"value": "t-300", "display": "Support"},
          "PATCH team.value: 200 with the user, the new team with its name")
    status, doc, _ = c.call("PATCH", path, patch({"op": "replace", "value": {NICE_USER: {"team": {"value": "t-100"}}}}))
    check(status == 200 and doc[NICE_USER]["team"]["display"] == "Default Team", "path-less PATCH of the team")
    status, doc, _ = c.call("PATCH", path, patch({"op": "replace", "path": f"{NICE_USER}:team",
                                                  "value": {"value": "t-999"}}))
    check(status == 400 and doc["scimType"] == "invalidValue", "PATCH to an unknown team: 400 invalidValue")
    status, doc, _ = c.call("PATCH", path, patch({"op": "add", "path": "roles", "value": [{"value": "Root"}]}))
    check(status == 400 and doc["scimType"] == "invalidValue", "PATCH adding an unknown role: 400 invalidValue")
    status, doc, _ = c.call("PATCH", path, patch({"op": "add", "path": "roles", "value": [{"value": "Manager"}]}))
    check(status == 200 and {"value": "Manager", "display": "Manager"} in doc["roles"], "PATCH adding a known role")

    # --- PUT: the full resource, required attributes ---
    _, current, _ = c.call("GET", path)
    body = {k: v for k, v in current.items() if k not in ("meta", "groups")}
    status, doc, _ = c.call("PUT", path, dict(body, emails=[]))
    check(status == 400 and doc["scimType"] == "invalidValue", "PUT without emails: 400 invalidValue")
    status, doc, _ = c.call("PUT", path, dict(body, roles=[{"value": "Nobody"}]))
    check(status == 400 and doc["scimType"] == "invalidValue", "PUT with an unknown role: 400 invalidValue")
    status, doc, _ = c.call("PUT", path, dict(body, **{NICE_USER: {"team": {"value": "t-200"}}}))
    check(status == 200 and doc[NICE_USER]["team"]["display"] == "Sales", "PUT with a team id")

    # --- what CXone does not offer ---
    for method, what in (("POST", "/scim/v2/Bulk"), ("GET", "/scim/v2/ServiceProviderConfig"),
                         ("GET", "/scim/v2/ResourceTypes"), ("GET", "/scim/v2/Groups")):
        status, doc, _ = c.call(method, what, {"schemas": [], "Operations": []} if method == "POST" else None)
        check(status == 404 and doc["status"] == "404", f"{method} {what}: 404 SCIM error")
    _, before, _ = c.call("GET", path)
    status, doc, _ = c.call("DELETE", path)
    _, after, _ = c.call("GET", path)
    check(status == 404 and doc["status"] == "404" and after == before and after["active"] is True,
          "DELETE: 404, the user stays as it was, active")

    # --- /Schemas: the core User and NICE's extension ---
    status, doc, _ = c.call("GET", "/scim/v2/Schemas")
    by_id = {s["id"]: s for s in doc["Resources"]} if status == 200 else {}
    check(set(by_id) == {USER_SCHEMA, NICE_USER}
          and "roles" in {a["name"] for a in by_id[USER_SCHEMA]["attributes"]}
          and {a["name"] for a in by_id[NICE_USER]["attributes"]} == {"team", "loginAuthenticator"},
          "/Schemas: the User schema with roles, and NICE's extension with team and loginAuthenticator")

    # --- faults and rate limiting work as in the default profile ---
    c.call("POST", "/_standin/faults", {"status": 503, "count": 1, "method": "GET", "path": "/scim/v2/Users"})
    status, _, _ = c.call("GET", path)
    check(status == 503, "an injected fault answers first")
    c.call("POST", "/_standin/config", {"rateLimit": 1, "burst": 1})
    statuses = [c.call("GET", path)[0] for _ in range(2)]
    c.call("POST", "/_standin/config", {"rateLimit": 0})
    check(statuses == [200, 429], f"rate limiting: {statuses}")


def agents_search(c, **query):
    """GET <Admin API>/agents with this query: (status, document, headers)."""
    return c.call("GET", f"{ADMIN}/agents?" + urllib.parse.urlencode(query))


def standin_agent(c, user_name):
    _, agents, _ = c.call("GET", "/_standin/agents")
    return next(a for a in agents if a["userName"] == user_name)


def run_admin(c, tag, team=None):
    """NICE's Admin API over the SCIM users: search, logout, an agent's dependencies. `tag` keeps
    the userNames apart from other runs; `team`: (SCIM team id, its name) in the cxone profile."""
    def create(local, given, family, email=None, **extra):
        user_name = f"{local}.{tag}@admin.example"
        body = {"schemas": [USER_SCHEMA], "userName": user_name, "name": {"givenName": given, "familyName": family},
                "emails": [{"value": email or user_name, "type": "work", "primary": True}], **extra}
        status, user, _ = c.call("POST", "/scim/v2/Users", body)
        check(status == 201, f"Admin API: SCIM user {user_name} created")
        return user

    ada = create("ada", "Ada", "Lovelace")
    adam = create("adam", "Adam", "Smith")
    grace = create("grace", "Grace", "Hopper", email=f"g.hopper.{tag}@mail.example",
                   **({NICE_USER: {"team": {"value": team[0]}}} if team else {}))

    # --- the token is checked as on /scim/v2 ---
    status, doc, _ = c.call("GET", f"{ADMIN}/agents?searchString=ada", auth=False)
    check(status == 401 and doc["error"], "Admin API without a token: 401 with an error body")
    status, _, _ = c.call("GET", f"{ADMIN}/agents?searchString=ada", headers={"Authorization": "Bearer nope"},
                          auth=False)
    check(status == 401, "Admin API with a token the stand-in did not issue: 401")

    # --- search: contains, any case, over userName, names and email ---
    status, doc, _ = agents_search(c, searchString="ADA")
    found = {a["userName"]: a for a in (doc or {}).get("agents", [])}
    check(status == 200 and set(found) == {ada["userName"], adam["userName"]},
          f"searchString=ADA finds ada.{tag} and adam.{tag}: a contains-search in any case, not an exact match")
    check({"businessUnitId", "_links", "lastPollTime", "totalRecords", "agents"} <= set(doc)
          and doc["totalRecords"] == 2,
          "the search answers in NICE's shape (businessUnitId, _links, lastPollTime, totalRecords, agents)")
    agent = found[ada["userName"]]
    check(isinstance(agent["agentId"], int) and agent["agentId"] >= 1001 and agent["userID"] == ada["id"]
          and agent["firstName"] == "Ada" and agent["lastName"] == "Lovelace"
          and agent["emailAddress"] == ada["userName"] and agent["isActive"] is True,
          f"an agent: agentId {agent['agentId']} (a number), userID the SCIM id, names, email, isActive")
    status, doc, _ = agents_search(c, searchString="lovelace")
    check(status == 200 and [a["userID"] for a in doc["agents"]] == [ada["id"]], "search by last name")
    status, doc, _ = agents_search(c, searchString=f"G.HOPPER.{tag}")
    check(status == 200 and [a["userID"] for a in doc["agents"]] == [grace["id"]], "search by email address")
    g = doc["agents"][0]
    if team:
        check(g["teamId"] == int("".join(ch for ch in team[0] if ch.isdigit())) and g["teamName"] == team[1],
              f"the agent's team from the NICE extension: teamId {g['teamId']}, teamName {g['teamName']!r}")
    else:
        check(g["teamId"] is None and g["teamName"] is None, "no team: teamId and teamName null")
    status, doc, hdrs = agents_search(c, searchString=f"nobody-{tag}")
    check(status == 204 and doc is None and not hdrs.get("Content-Type"), "no agent matches: 204, no body")
    status, doc, _ = agents_search(c, searchString="ada", isActive="maybe")
    check(status == 400 and doc["error"] and doc["error_description"], "isActive=maybe: 400 with an error body")

    # --- deactivating the SCIM user deactivates the agent; isActive filters ---
    status, _, _ = c.call("PATCH", f"/scim/v2/Users/{adam['id']}",
                          patch({"op": "replace", "path": "active", "value": False}))
    check(status in (200, 204), "SCIM PATCH active false")
    _, doc, _ = agents_search(c, searchString="ADA", isActive="true")
    check([a["userID"] for a in doc["agents"]] == [ada["id"]], "isActive=true leaves the deactivated agent out")
    _, doc, _ = agents_search(c, searchString="ADA", isActive="false")
    check([a["userID"] for a in doc["agents"]] == [adam["id"]] and doc["agents"][0]["isActive"] is False,
          "the deactivated SCIM user is an inactive agent (isActive=false finds it)")

    # --- skip and top page in agentId order ---
    _, doc, _ = agents_search(c, searchString=f".{tag}@", top=2)
    ids = [a["agentId"] for a in doc["agents"]]
    check(doc["totalRecords"] == 3 and len(ids) == 2 and ids == sorted(ids) and "skip=2" in doc["_links"]["next"],
          "top=2: two agents in agentId order, totalRecords 3, a next link")
    _, doc, _ = agents_search(c, searchString=f".{tag}@", top=2, skip=2)
    check(len(doc["agents"]) == 1 and doc["agents"][0]["agentId"] > ids[-1] and doc["_links"]["previous"]
          and doc["_links"]["next"] is None, "skip=2: the last agent, a previous link, no next")
    status, _, _ = agents_search(c, searchString=f".{tag}@", skip=3)
    check(status == 204, "skip past the end: 204")

    # --- login, logout ---
    ada_id = agent["agentId"]
    status, doc, _ = c.call("POST", "/_standin/agents/login", {"userName": ada["userName"].upper()})
    check(status == 200 and doc["loggedIn"] is True and doc["agentId"] == ada_id, "control: the agent logs in")
    status, doc, _ = c.call("POST", "/_standin/agents/login", {"userName": f"ghost.{tag}@admin.example"})
    check(status == 404, "control: logging in an unknown user is a 404")
    status, doc, hdrs = c.call("POST", f"{ADMIN}/agents/{ada_id}/logout")
    check(status == 202 and doc is None and not hdrs.get("Content-Type"), "logout: 202, no body")
    check(standin_agent(c, ada["userName"])["loggedIn"] is False, "after logout the agent is not logged in")
    status, doc, _ = c.call("POST", f"{ADMIN}/agents/{ada_id}/logout")
    check(status == 202 and doc is None, "logout of an agent not logged in: 202 the same")
    status, doc, _ = c.call("POST", f"{ADMIN}/agents/999999/logout")
    check(status == 404 and doc["error"] and doc["error_description"], "logout of an unknown agentId: 404, JSON error")
    status, _, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/logout")
    check(status == 404, "GET on the logout path: 404")

    # --- dependencies: none, then seeded ---
    for kind in ("skills", "groups", "scheduled-callbacks"):
        status, doc, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/{kind}")
        check(status == 204 and doc is None, f"{kind} of an agent without any: 204, no body")
    status, doc, _ = c.call("POST", "/_standin/agents/dependencies", {"userName": ada["userName"], "skills": "Sales"})
    check(status == 400, "control: skills must be a list of names")
    status, doc, _ = c.call("POST", "/_standin/agents/dependencies",
                            {"userName": ada["userName"], "skills": ["Sales EN", "Chat Support EN"],
                             "groups": ["Tier 2"], "callbacks": 2})
    check(status == 200 and doc["skills"] == ["Sales EN", "Chat Support EN"] and doc["groups"] == ["Tier 2"]
          and doc["callbacks"] == 2, "control: the agent's skills, groups and callbacks set")
    status, doc, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/skills")
    skills = doc["agentSkillAssignments"] if status == 200 else []
    check([s["skillName"] for s in skills] == ["Sales EN", "Chat Support EN"]
          and all(isinstance(s["skillId"], int) and s["isActive"] is True and s["agentId"] == ada_id for s in skills)
          and doc["totalRecords"] == 2 and "businessUnitId" in doc,
          "skills: 200 {totalRecords, businessUnitId, agentSkillAssignments [{skillId, skillName, isActive}]}")
    status, doc, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/groups")
    check(status == 200 and [(type(g["groupId"]), g["groupName"]) for g in doc["agentGroups"]] == [(int, "Tier 2")],
          "groups: 200 {agentGroups [{groupId, groupName}]}")
    status, doc, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/scheduled-callbacks")
    callbacks = doc["callbacks"] if status == 200 else []
    check(len(callbacks) == 2 and len({cb["callbackId"] for cb in callbacks}) == 2
          and all(cb["agentId"] == ada_id and cb["skillId"] == skills[0]["skillId"] and cb["callbackTime"]
                  for cb in callbacks), "scheduled-callbacks: 200 {callbacks [{callbackId, agentId, skillId, ...}]}")
    c.call("POST", "/_standin/agents/dependencies", {"userName": ada["userName"], "callbacks": 0})
    status, _, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/scheduled-callbacks")
    _, skills_after, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/skills")
    check(status == 204 and len(skills_after["agentSkillAssignments"]) == 2,
          "callbacks set to 0: 204; the skills not given stay")
    status, doc, _ = c.call("GET", f"{ADMIN}/agents/999999/groups")
    check(status == 404 and doc["error"], "groups of an unknown agentId: 404")

    # --- a fault on the logout path; the log; DELETE /_standin/log keeps the agents ---
    c.call("POST", "/_standin/agents/login", {"userName": ada["userName"]})
    c.call("DELETE", "/_standin/log")
    logout = f"{ADMIN}/agents/{ada_id}/logout"
    c.call("POST", "/_standin/faults", {"status": 503, "count": 1, "method": "POST", "path": logout,
                                        "delayMs": 150, "retryAfter": "2"})
    status, _, _ = c.call("GET", f"{ADMIN}/agents/{ada_id}/skills")
    check(status == 200, "a POST fault leaves a GET alone")
    began = time.monotonic()
    status, doc, hdrs = c.call("POST", logout)
    waited = time.monotonic() - began
    check(status == 503 and hdrs.get("Retry-After") == "2" and doc["error"] and waited >= 0.15,
          f"an injected fault on logout: 503 with Retry-After and an error body after {waited:.2f}s")
    check(standin_agent(c, ada["userName"])["loggedIn"] is True, "the faulted logout did not end the session")
    status, _, _ = c.call("POST", logout)
    check(status == 202 and standin_agent(c, ada["userName"])["loggedIn"] is False,
          "the fault is used up: the next logout ends the session")
    _, log, _ = c.call("GET", "/_standin/log")
    logouts = [(e["status"], e.get("injected", False)) for e in log if e["path"] == logout]
    check(logouts == [(503, True), (202, False)], f"the log has both logouts: {logouts}")
    c.call("DELETE", "/_standin/log")
    kept = standin_agent(c, ada["userName"])
    check(kept["agentId"] == ada_id and kept["skills"] == ["Sales EN", "Chat Support EN"],
          "DELETE /_standin/log keeps the agents, their ids and their skills")

    # --- one quota with /scim/v2 ---
    c.call("POST", "/_standin/config", {"rateLimit": 1, "burst": 1})
    statuses = [c.call("GET", f"{ADMIN}/agents/{ada_id}/groups")[0] for _ in range(2)]
    c.call("POST", "/_standin/config", {"rateLimit": 0})
    check(statuses == [200, 429], f"rate limiting on the Admin API: {statuses}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=48790)
    args = ap.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="standin-selftest-") as tmp:
        proc = start_standin(args.port, CLIENT_ID, CLIENT_SECRET, Path(tmp) / "standin.log")
        try:
            client = Client(f"http://127.0.0.1:{args.port}")
            run(client)
            run_admin(client, "rfc")
        finally:
            stop_group(proc)
        proc = start_standin(args.port + 2, CLIENT_ID, CLIENT_SECRET, Path(tmp) / "standin-cxone.log", "cxone")
        try:
            client = Client(f"http://127.0.0.1:{args.port + 2}", access_key=True)
            run_cxone(client)
            run_admin(client, "cx", team=("t-300", "Support"))
        finally:
            stop_group(proc)
    print(f"stand-in selftest passed in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
