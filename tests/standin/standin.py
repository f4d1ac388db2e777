"""CXone stand-in: the real scim2-server behind a thin front that adds what it lacks.

Two profiles (`--profile`):
- `rfc7644` (the default): a generic SCIM 2.0 service provider, everything scim2-server does,
  as described below.
- `cxone`: the front behaves as NICE publishes CXone's UserHub SCIM, after NICE's UserHub SCIM
  OpenAPI on developer.niceincontact.com (as mirrored by clients generated from it, e.g. the npm
  package @calljacob/nice-cxone-api, src/services/userhub/CxoneScimService.ts), the CXone help
  page "Provision employee accounts with SCIM" (help.nicecxone.com) and NICE's access-key
  authentication for back-end applications (developer.niceincontact.com). See
  ../shared/notes/cxone-published.md. In that profile:
    tokens     only POST /authentication/v1/token/access-key; /oauth/token answers 404.
    routes     only what the OpenAPI lists: GET|POST /scim/v2/Users, GET|PUT|PATCH
               /scim/v2/Users/{id}, GET /scim/v2/Schemas. Anything else under /scim/v2 (Bulk,
               ServiceProviderConfig, ResourceTypes, Groups, DELETE of a user, ...) is a 404
               SCIM error and changes nothing: CXone cannot delete accounts, only deactivate
               them (active false). /basic-auth/scim/v2 is not served.
    search     GET /scim/v2/Users needs a filter, exactly `userName eq "<JSON string>"`
               (attribute name and operator in any case); none or any other filter is a 400
               invalidFilter. scim2-server compares the userName without regard to case.
    schema     scim2-server serves RFC 7643's User schema with what CXone requires marked
               required (userName, name.givenName, name.familyName, an emails value), so a
               POST or PUT without one of them gets scim2-server's own 400 invalidValue naming
               it, and NICE's extension urn:ietf:params:scim:schemas:extension:nice:2.0:User
               (team and loginAuthenticator, each {value, display}). GET /scim/v2/Schemas lists
               these two; other extensions (the enterprise one too) are refused with
               scim2-server's 400 invalidSyntax, as NICE publishes none.
    roles      a fixed tenant list (--roles, default Agent,Supervisor,Administrator,Manager).
               A POST without roles gets the first of the list, primary (CXone's default role,
               Agent unless the tenant chose another). A POST, PUT or PATCH that sets a role
               value not in the list is a 400 invalidValue.
    teams      a fixed list of teams by id (--teams id=name,...; default t-100=Default Team,
               t-200=Sales, t-300=Support). A team is set by id in the NICE extension, on POST
               or PUT as {"team": {"value": "<id>"}}, on PATCH with the path
               <extension urn>:team, <extension urn>:team.value or <extension urn>, or path-less
               with the extension (or <extension urn>:team) as a key of the value. An unknown
               id is a 400 invalidValue. A new user without a team has none.
               The team is stored by scim2-server itself, as an attribute of the extension.
    answers    every User answer (GET, POST, PUT, PATCH, list) carries each role's display (its
               value) and the team's display (its name), filled in by the front from the lists
               above whatever the client sent; scim2-server lists the extension urn in
               `schemas` whenever the user has it. A PATCH answers 200 with the user, as the
               OpenAPI has it (scim2-server would answer 204). externalId is accepted and
               returned. The request log and /_standin/bodies keep the bodies as sent (a POST
               given the default role is logged without it).
    Rate limiting, faults, the request log, stats and revoke-tokens work as in rfc7644; an
    injected fault answers before any of the above.

- `POST /oauth/token`: OAuth 2.0 client credentials (client_secret_post); issues bearer tokens
  that the front accepts on `/scim/v2/*` (the internal scim2-server token is never handed out).
- `POST /authentication/v1/token/access-key`: CXone's access-key exchange as NICE documents it,
  JSON `{"accessKeyId","accessKeySecret"}` (the stand-in's client id and secret) →
  `access_token`, `token_type`, `expires_in`, `refresh_token`, `id_token`,
  `resource_server_base_uri`; the same tokens as above.
- `/scim/v2/*`: checked for a live issued token, optionally faulted, then (in rfc7644) forwarded
  unchanged to scim2-server (which does all the SCIM work: filters, PATCH, ETags, Bulk). `If-Match` and
  `If-None-Match` go through, and scim2-server's `ETag` comes back: a PUT, PATCH or DELETE
  whose If-Match is not the resource's version gets scim2-server's 412.
- `/incontactapi/services/v31.0/*` (`--admin-prefix`), in both profiles: the part of NICE's CXone
  Admin API that concerns an agent's session and what hangs on it, after NICE's Admin API
  OpenAPI on developer.niceincontact.com (as mirrored by the client generated from it in the npm
  package @calljacob/nice-cxone-api, src/services/admin/AdminAgentsService.ts and
  AdminCommitmentsService.ts). ../adminfix/README.md has the sources, sample answers and what is
  assumed. Checked for a live issued token (401 otherwise), rate-limited with /scim/v2 (one quota
  for the tenant), optionally faulted (method and path as for /scim/v2; status, count, share,
  delayMs, retryAfter, body), and logged in /_standin/log like /scim/v2 (not in /_standin/bodies).
  Errors are JSON {"error", "error_description"}, the Admin API's shape.
  Each SCIM user scim2-server holds is one agent, as in CXone, where both are the same user:
    agentId      a number per SCIM id, given on first sight from 1001 up (kept in memory); a
                 search asks scim2-server for the users whose userName contains the text
                 (a `userName co` filter) rather than reading every user, and a call by agentId reads the
                 user it was given to by id
    userName     the SCIM userName; userID the SCIM id (a string); firstName, middleName and
                 lastName from name; emailAddress the primary email, else the first
    isActive     the SCIM active (true when absent): deactivating the user deactivates the agent
    teamId       the number in the NICE extension's team id (t-200 -> 200), teamName the team's
                 name (cxone profile); both null for a user without a team
  GET  <prefix>/agents?searchString=&isActive=&skip=&top=
                 agents whose userName contains searchString, in any case, or when none does,
                 those whose firstName, lastName or emailAddress does (a search, as NICE's is: a
                 client looking for one user must match exactly itself; NICE does not say which
                 fields it searches); isActive=true|false filters; skip and top page, in
                 agentId order. 200 {businessUnitId, _links {self, next, previous}, lastPollTime,
                 totalRecords (before paging), hiddenAgents, agents [...]}; nothing on the page:
                 204, no body. An isActive, skip or top that is not one → 400
  POST <prefix>/agents/{agentId}/logout
                 ends the agent's session (see /_standin/agents/login): 202, no body, whether it
                 was logged in or not
  GET  <prefix>/agents/{agentId}/skills
                 200 {totalRecords, _links, lastPollTime, businessUnitId, agentSkillAssignments
                 [{agentId, userId, firstName, lastName, skillId, skillName, isActive,
                 isSkillActive, agentProficiencyValue, agentProficiencyName, mediaTypeId,
                 mediaTypeName, isOutbound, teamId, teamName, lastUpdateTime}]}
  GET  <prefix>/agents/{agentId}/groups
                 200 {agentGroups [{groupId, groupName, isActive, notes, lastUpdated}]}
  GET  <prefix>/agents/{agentId}/scheduled-callbacks
                 200 {callbacks [{callbackId, target, agentId, skillId, dialNumber, origNumber,
                 firstName, lastName, notes, callbackTime}]}
                 The three answer what /_standin/agents/dependencies set; none: 204, no body.
  An agentId that is no agent's (or not a number) → 404; any other path or method under the
  prefix → 404. NICE documents neither the empty answers nor the errors of these calls: the
  Admin API answers 204 for empty lists elsewhere, and 202 for logout is what a public test suite
  of the inContact APIs expects of it (see ../adminfix/README.md).
- `/_standin/*` (test control, loopback only):
    GET    /_standin/log             requests seen, oldest first (method, path, query, status, body,
                                     userAgent, and on /scim/v2 "ifMatch": the If-Match header
                                     as sent, null without one, and "receivedAt"/"answeredAt":
                                     Unix times in seconds, for timelines)
    DELETE /_standin/log             forget them (and the bulkOps of /_standin/stats)
    GET    /_standin/bodies          every SCIM request body since start, with its sender (never cleared)
    POST   /_standin/faults          {"status":503,"count":2,"method":"POST","path":"/scim/v2/Users",
                                      "retryAfter":"1","delayMs":0}  (status 0 = delay only)
                                     or with "share":0.1 instead of "count": that share of the
                                     matching requests, drawn from a seeded generator.
                                     The answer is a SCIM error; "scimType" and "detail" set its
                                     fields, "body" (any JSON) replaces it whole, and "location"
                                     adds a Location header (e.g. "status":307 for a redirect)
                                     {"kind":"concurrentChange","id":"<user id>","count":1,
                                      "attribute":"nickName","value":"..."}: someone else changes
                                     the user just before the request lands. On the next PUT of
                                     /scim/v2/Users/<id> (of any user without "id"; another
                                     "method", e.g. "PATCH", instead of PUT), the stand-in first
                                     changes that user in scim2-server itself, a PATCH replace
                                     of "attribute" (default nickName) with "value" (default a
                                     text new each time, so that the version always moves on),
                                     then forwards the request unchanged: an If-Match with the
                                     version read before gets scim2-server's own 412. "count"
                                     and "share" work as for the other faults, "status" and
                                     "delayMs" are not used. The request's log entry notes the
                                     change as "concurrentChange": {"attribute", "value",
                                     "status"} (status: scim2-server's answer to the change:
                                     204 or 200 when it was made); the change itself is not a
                                     request of its own in the log, nor in /_standin/bodies.
                                     tests/standin/selftest.py shows it at work
    POST   /_standin/config          {"bulkStatus":207}: answer Bulk with this HTTP status;
                                     {"rateLimit":R,"burst":B}: a token bucket of R requests/s on
                                     /scim/v2 and the Admin API, one quota for both (429 +
                                     Retry-After beyond it); R 0 turns it off; with it, every
                                     answer of either (401, 429, injected faults and forwarded
                                     answers alike) tells the quota in the style
                                     of "rateLimitHeaders" (sent with rateLimit it sets the
                                     style, else "ietf"; sent alone it changes the style):
                                       "ietf"   RateLimit-Policy: "default";q=Q;w=W
                                                RateLimit: "default";r=R;t=T
                                                (draft-ietf-httpapi-ratelimit-headers, 08 on)
                                       "legacy" RateLimit-Limit: Q, RateLimit-Remaining: R,
                                                RateLimit-Reset: T (its drafts up to 06)
                                       "x"      X-RateLimit-Limit: Q, X-RateLimit-Remaining: R,
                                                X-RateLimit-Reset: now + T as Unix seconds
                                                (GitHub's style)
                                       "none"   no quota headers
                                     where Q = burst, W = burst/rate seconds (rounded up),
                                     R = whole tokens left after this request and T = seconds
                                     until the next token (rounded up; 0 with a full bucket);
                                     on a 429, R = 0 and T matches Retry-After;
                                     {"ignoreFilter":true}: GET /scim/v2/Users drops its filter
                                     before forwarding, so every user is listed whatever was
                                     asked (a server that ignores filters); false turns it off;
                                     {"bulkIdOnlyForPost":true}: Bulk answers keep bulkId only
                                     on POST results (all RFC 7644 §3.7.3 requires);
                                     {"bulkShuffle":true}: Bulk results come back in another
                                     order than the operations (a fixed permutation per result
                                     count in which no result keeps its place; counted from
                                     the request order). Both reshape scim2-server's
                                     own answer and nothing else; false turns them off, and so
                                     does DELETE /_standin/faults
    GET    /_standin/config          {"profile": "rfc7644"|"cxone"}, and in cxone "roles": [...],
                                     "teams": {id: name}
    GET    /_standin/stats           {"profile": "rfc7644"|"cxone", "rateLimited": n, "requests": n,
                                      "delaying": n,
                                      "bulkOps": {bulkId: {"received": n, "answers": [...]}}}
                                     (delaying: requests held by a delay fault right now;
                                     bulkOps: per bulkId, how many Bulk requests carried an
                                     operation with it, and what each of them answered for it,
                                     in order: the result's status ("201", "412", ...), or the
                                     whole request's HTTP status when it had no results ("401",
                                     "429", an injected "503", a refused "413"), "missing" when
                                     the results left it out, "dropped" when the request was
                                     dropped unanswered. Cleared with DELETE /_standin/log)
    DELETE /_standin/faults          remove every fault and turn bulkStatus, bulkIdOnlyForPost
                                     and bulkShuffle off; requests still held by a delay are
                                     dropped (never forwarded, not logged, connection closed)
    POST   /_standin/revoke-tokens   every issued token stops working (CXone rotated keys)
    GET    /_standin/users?…         scim2-server's own GET /Users with the same query, whatever
                                     the profile allows (any filter, paging): what tests check
    GET    /_standin/health          200 when scim2-server answers
    GET    /_standin/agents          every agent (one per SCIM user, see the Admin API above):
                                     [{"agentId", "userName", "userID", "isActive", "loggedIn",
                                       "skills": [names], "groups": [names], "callbacks": n}];
                                     ?userName=… lists that one (any case)
    POST   /_standin/agents/login    {"userName": "..."} (any case): the agent logs in, as from
                                     an agent application; 200 with the agent as listed above,
                                     404 when no SCIM user has that userName
    POST   /_standin/agents/dependencies
                                     {"userName": "...", "skills": ["Sales EN", ...], "groups":
                                      ["Tier 2", ...], "callbacks": 2}: sets, of the three, those
                                     given: the agent's skills and groups (ids by name, the same
                                     name the same id for every agent) and that many scheduled
                                     callbacks; 200 with the agent, 404 as above, 400 for a
                                     value of the wrong type
                                     Agents, sessions and dependencies last as long as the
                                     stand-in (DELETE /_standin/log keeps them)

Usage: standin.py --port 8790 --scim-port 8791 --client-id ID --client-secret SECRET
                  [--profile rfc7644|cxone] [--roles A,B] [--teams id=name,id=name]
                  [--admin-prefix /incontactapi/services/v31.0]
"""

import argparse
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scim2_server.utils import load_json_resource

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
NICE_USER = "urn:ietf:params:scim:schemas:extension:nice:2.0:User"
DEFAULT_ROLES = "Agent,Supervisor,Administrator,Manager"
DEFAULT_TEAMS = "t-100=Default Team,t-200=Sales,t-300=Support"
# The one search NICE's OpenAPI offers; the value must be a JSON string (checked apart).
USERNAME_EQ = re.compile(r'\s*userName\s+eq\s+("(?:[^"\\]|\\.)*")\s*', re.IGNORECASE)
DEFAULT_ADMIN_PREFIX = "/incontactapi/services/v31.0"
BUSINESS_UNIT_ID = 4598712  # the stand-in tenant's business unit, as the Admin API reports it
FIRST_AGENT_ID = 1001
# What GET <prefix>/agents?searchString= looks in (NICE does not say; see ../adminfix/README.md).
SEARCHED = ("userName", "firstName", "lastName", "emailAddress")
ADMIN_AGENT_CALL = re.compile(r"/agents/([^/]+)/(logout|skills|groups|scheduled-callbacks)")
ADMIN_AGENT_METHODS = {"logout": "POST", "skills": "GET", "groups": "GET", "scheduled-callbacks": "GET"}
# The people scheduled callbacks are for: first name, last name, number to dial.
CALLBACK_PEOPLE = [("Priya", "Natarajan", "8045550143"), ("Tom", "Becker", "5125550178"),
                   ("Ana", "Souza", "3055550112"), ("Kenji", "Mori", "2065550190")]


class Rfc7644Profile:
    """A generic SCIM service provider: every request goes to scim2-server as sent."""

    name = "rfc7644"
    client_credentials = True  # POST /oauth/token

    def scim2_server_args(self, workdir):
        return []

    def describe(self):
        return {"profile": self.name}

    def refusal(self, method, path, query, doc):
        return None

    def prepare(self, method, path, query, body, doc):
        return query, body

    def present(self, path, status, body):
        return body


class CxoneProfile:
    """CXone's UserHub SCIM as NICE publishes it (see the module docstring)."""

    name = "cxone"
    client_credentials = False  # NICE documents only the access-key exchange

    def __init__(self, roles, teams):
        self.roles = roles  # the first one is the default role
        self.teams = teams  # id -> name

    def scim2_server_args(self, workdir):
        # scim2-server reads its schemas and resource types at start; it then stores, patches
        # and answers the NICE extension like any other.
        schemas, resource_types = os.path.join(workdir, "schemas.json"), os.path.join(workdir, "types.json")
        with open(schemas, "w") as f:
            json.dump(cxone_schemas(), f)
        with open(resource_types, "w") as f:
            json.dump(cxone_resource_types(), f)
        return ["--schema", schemas, "--resource-type", resource_types]

    def describe(self):
        return {"profile": self.name, "roles": list(self.roles), "teams": dict(self.teams)}

    def refusal(self, method, path, query, doc):
        """(status, scimType, detail) when CXone would refuse the request, else None."""
        route = cxone_route(method, path)
        if route is None:
            if method == "DELETE" and cxone_route("GET", path) == "user":
                return 404, None, "employee accounts cannot be deleted from CXone; deactivate them instead"
            return 404, None, f"CXone's SCIM has no {method} {path}"
        if route == "search":
            return username_filter_refusal(query)
        if method in ("POST", "PUT"):
            return self._values_refusal(doc.items() if isinstance(doc, dict) else [])
        if method == "PATCH":
            return self._values_refusal(patch_targets(doc))
        return None

    def _values_refusal(self, targets):
        for path, value in targets:
            for role in roles_set(path, value):
                if role not in self.roles:
                    return 400, "invalidValue", f"role {role!r} is not one of the tenant's roles {self.roles}"
            for team in teams_set(path, value):
                if team not in self.teams:
                    return 400, "invalidValue", f"team {team!r} is not one of the tenant's teams {sorted(self.teams)}"
        return None

    def prepare(self, method, path, query, body, doc):
        """The request as scim2-server gets it: a new user without roles gets the default one,
        and a PATCH asks for the user back (scim2-server answers a PATCH with the resource only
        when attributes are named; password is never returned, so excluding it changes nothing)."""
        route = cxone_route(method, path)
        if route == "users" and isinstance(doc, dict) and not doc.get("roles"):
            doc = dict(doc, roles=[{"value": self.roles[0], "primary": True}])
            body = json.dumps(doc).encode()
        if method == "PATCH" and not any(k.lower() in ("attributes", "excludedattributes")
                                         for k, _ in urllib.parse.parse_qsl(query)):
            query = "&".join(q for q in (query, "excludedAttributes=password") if q)
        return query, body

    def present(self, path, status, body):
        """scim2-server's answer with the displays of roles and team filled in."""
        if not 200 <= status < 300 or not path.startswith("/scim/v2/Users"):
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        users = doc.get("Resources") if isinstance(doc, dict) and "Resources" in doc else [doc]
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict):
                self._fill_displays(user)
        return json.dumps(doc).encode()

    def _fill_displays(self, user):
        for role in user.get("roles") or []:
            if isinstance(role, dict) and role.get("value") in self.roles:
                role["display"] = role["value"]
        team = (user.get(NICE_USER) or {}).get("team")
        if isinstance(team, dict) and team.get("value") in self.teams:
            team["display"] = self.teams[team["value"]]


def cxone_route(method, path):
    """Which of the operations NICE's OpenAPI lists this is ("search", "users", "user",
    "schemas"), or None."""
    rest = path.rstrip("/")[len("/scim/v2"):]
    if rest == "/Users":
        return {"GET": "search", "POST": "users"}.get(method)
    if re.fullmatch(r"/Users/[^/]+", rest):
        return "user" if method in ("GET", "PUT", "PATCH") else None
    if rest == "/Schemas" and method == "GET":
        return "schemas"
    return None


def username_filter_refusal(query):
    filters = [v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k.lower() == "filter"]
    if not filters:
        return 400, "invalidFilter", 'a filter is required: userName eq "<user name>"'
    match = USERNAME_EQ.fullmatch(filters[0]) if len(filters) == 1 else None
    try:
        if match and isinstance(json.loads(match.group(1)), str):
            return None
    except ValueError:
        pass
    return 400, "invalidFilter", f'only userName eq "<user name>" is supported, not {filters}'


def patch_targets(doc):
    """(path, value) for each attribute a PATCH request adds or replaces; a path-less operation
    gives one pair per key of its value, as a POST body does."""
    ops = doc.get("Operations") if isinstance(doc, dict) else None
    for op in ops if isinstance(ops, list) else []:
        if not isinstance(op, dict) or str(op.get("op", "")).lower() == "remove":
            continue
        if op.get("path"):
            yield op["path"], op.get("value")
        elif isinstance(op.get("value"), dict):
            yield from op["value"].items()


def roles_set(path, value):
    """The role values that setting `path` to `value` gives the user."""
    path = path.lower().removeprefix(CORE_USER.lower() + ":")
    if not re.match(r"roles(\[|\.|$)", path):
        return []
    if isinstance(value, str):
        return [value] if path.endswith(".value") else []
    items = value if isinstance(value, list) else [value]
    return [item.get("value") for item in items if isinstance(item, dict)]


def teams_set(path, value):
    """The team ids that setting `path` to `value` gives the user (a team without a value
    counts as the id None, which no tenant has)."""
    path = path.lower()
    if path == NICE_USER.lower() + ":team.value":
        return [value]
    if path == NICE_USER.lower():
        value = value.get("team") if isinstance(value, dict) else None
    elif path != NICE_USER.lower() + ":team":
        return []
    return [value.get("value")] if isinstance(value, dict) else []


def cxone_schemas():
    """RFC 7643's User schema with what CXone requires marked required, so that scim2-server
    refuses a user without it; and NICE's extension."""
    user = next(s for s in load_json_resource("default-schemas.json") if s["id"] == CORE_USER)
    required = {"name": {"givenName", "familyName"}, "emails": {"value"}}
    for attribute in user["attributes"]:
        if attribute["name"] in required:
            attribute["required"] = True
            for sub in attribute["subAttributes"]:
                if sub["name"] in required[attribute["name"]]:
                    sub["required"] = True

    def reference(name, description):
        sub = {"type": "string", "multiValued": False, "required": False, "caseExact": False,
               "mutability": "readWrite", "returned": "default", "uniqueness": "none"}
        return {"name": name, "type": "complex", "multiValued": False, "description": description,
                "required": False, "mutability": "readWrite", "returned": "default",
                "subAttributes": [dict(sub, name="value"), dict(sub, name="display")]}

    nice = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": NICE_USER, "name": "User",
            "description": "NICE CXone user extension",
            "attributes": [reference("team", "The user's team: its id as value, its name as display."),
                           reference("loginAuthenticator", "The user's login authenticator.")]}
    return [user, nice]


def cxone_resource_types():
    return [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User", "name": "User",
             "endpoint": "/Users", "description": "User Account", "schema": CORE_USER,
             "schemaExtensions": [{"schema": NICE_USER, "required": False}]}]


def admin_time(seconds):
    """A Unix time as the Admin API writes times: ISO 8601, milliseconds, Z."""
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


def team_number(value):
    """The Admin API's numeric teamId for a SCIM team id: the number in it (t-200 -> 200); an id
    without digits as it is."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", str(value))
    return int(digits) if digits else value


def agent_record(agent_id, user, teams):
    """The Admin API's agent for a SCIM user (scim2-server's JSON)."""
    name = user.get("name") if isinstance(user.get("name"), dict) else {}
    emails = [e for e in user.get("emails") or [] if isinstance(e, dict)]
    email = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    team = (user.get(NICE_USER) or {}).get("team") if isinstance(user.get(NICE_USER), dict) else None
    team = team if isinstance(team, dict) else {}
    active = user.get("active")
    return {"agentId": agent_id, "userName": user.get("userName", ""), "firstName": name.get("givenName", ""),
            "middleName": name.get("middleName", ""), "lastName": name.get("familyName", ""),
            "userID": user["id"], "emailAddress": email.get("value", ""),
            "isActive": active if isinstance(active, bool) else True,
            "teamId": team_number(team.get("value")),
            "teamName": teams.get(team.get("value"), team.get("display")) if team.get("value") is not None else None}


class Agents:
    """The agents the Admin API answers about, one per SCIM user, and what tests gave them: a
    session, skills, groups, scheduled callbacks. Every method runs under the state's lock."""

    def __init__(self):
        self.ids = {}  # SCIM id -> agentId
        self.next_id = FIRST_AGENT_ID
        self.logged_in = set()  # agentIds
        self.skills = {}  # agentId -> [{"skillId", "skillName", "set"}]
        self.groups = {}  # agentId -> [{"groupId", "groupName", "set"}]
        self.callbacks = {}  # agentId -> [{"callbackId", "callbackTime"}]
        self.skill_ids = {}  # skill name -> id, the same for every agent
        self.group_ids = {}  # group name -> id
        self.next_callback_id = 1254001

    def sync(self, users, teams):
        """The agents of these SCIM users, in agentId order; a user seen for the first time gets
        the next agentId (several at once in order of creation)."""
        users = [u for u in users if isinstance(u, dict) and u.get("id")]
        new = [u for u in users if u["id"] not in self.ids]
        for user in sorted(new, key=lambda u: (str((u.get("meta") or {}).get("created", "")), u["id"])):
            self.ids[user["id"]] = self.next_id
            self.next_id += 1
        return sorted((agent_record(self.ids[u["id"]], u, teams) for u in users), key=lambda a: a["agentId"])

    def summary(self, agent):
        n = agent["agentId"]
        return {"agentId": n, "userName": agent["userName"], "userID": agent["userID"],
                "isActive": agent["isActive"], "loggedIn": n in self.logged_in,
                "skills": [s["skillName"] for s in self.skills.get(n, [])],
                "groups": [g["groupName"] for g in self.groups.get(n, [])],
                "callbacks": len(self.callbacks.get(n, []))}

    def set_dependencies(self, agent_id, doc):
        """Sets what `doc` gives of skills, groups and callbacks; an error text when a value is
        of the wrong type (nothing is set then)."""
        names = lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v)
        if "skills" in doc and not names(doc["skills"]):
            return "skills: a list of skill names"
        if "groups" in doc and not names(doc["groups"]):
            return "groups: a list of group names"
        count = doc.get("callbacks", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return "callbacks: a number of scheduled callbacks, 0 or more"
        now = time.time()
        if "skills" in doc:
            self.skills[agent_id] = [{"skillId": self.skill_ids.setdefault(name, 11290001 + len(self.skill_ids)),
                                      "skillName": name, "set": now} for name in dict.fromkeys(doc["skills"])]
        if "groups" in doc:
            self.groups[agent_id] = [{"groupId": self.group_ids.setdefault(name, 4401 + len(self.group_ids)),
                                      "groupName": name, "set": now} for name in dict.fromkeys(doc["groups"])]
        if "callbacks" in doc:
            callbacks = []
            for i in range(count):
                callbacks.append({"callbackId": self.next_callback_id, "callbackTime": now + 86400 * (i + 1)})
                self.next_callback_id += 1
            self.callbacks[agent_id] = callbacks
        return None

    def dependencies(self, kind, agent):
        """The answer of GET <prefix>/agents/{agentId}/<kind> without its envelope: the list, or
        [] for none."""
        n = agent["agentId"]
        if kind == "skills":
            return [{"agentId": n, "userId": agent["userID"], "firstName": agent["firstName"],
                     "lastName": agent["lastName"], "skillId": s["skillId"], "skillName": s["skillName"],
                     "isActive": True, "isSkillActive": True, "agentProficiencyValue": 1,
                     "agentProficiencyName": "1 - High", "mediaTypeId": 4, "mediaTypeName": "Phone Call",
                     "isOutbound": False, "teamId": agent["teamId"], "teamName": agent["teamName"],
                     "lastUpdateTime": admin_time(s["set"])} for s in self.skills.get(n, [])]
        if kind == "groups":
            return [{"groupId": g["groupId"], "groupName": g["groupName"], "isActive": True, "notes": "",
                     "lastUpdated": admin_time(g["set"])} for g in self.groups.get(n, [])]
        skills = self.skills.get(n) or [{"skillId": None}]
        out = []
        for i, callback in enumerate(self.callbacks.get(n, [])):
            first, last, number = CALLBACK_PEOPLE[i % len(CALLBACK_PEOPLE)]
            out.append({"callbackId": callback["callbackId"], "target": "Agent", "agentId": n,
                        "skillId": skills[0]["skillId"], "dialNumber": number, "origNumber": number,
                        "firstName": first, "lastName": last, "notes": "",
                        "callbackTime": admin_time(callback["callbackTime"])})
        return out


def scim_users(state, scim_filter=None):
    """Every user scim2-server holds (those `scim_filter` matches, when given), page by page."""
    users, start = [], 1
    narrow = f"&filter={urllib.parse.quote(scim_filter)}" if scim_filter else ""
    while True:
        status, _, body = forward(state, "GET", "/scim/v2/Users", f"startIndex={start}&count=200{narrow}", b"", {})
        if status != 200:
            raise RuntimeError(f"scim2-server answered {status} to the listing of its users")
        doc = json.loads(body or b"{}")
        page = doc.get("Resources") or []
        users += page
        if not page or len(users) >= int(doc.get("totalResults") or 0):
            return users
        start += len(page)


class State:
    def __init__(self, client_id, client_secret, token_ttl, scim_url, scim_token, profile,
                 admin_prefix=DEFAULT_ADMIN_PREFIX):
        self.profile = profile
        self.admin_prefix = admin_prefix
        self.agents = Agents()
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.scim_url = scim_url
        self.scim_token = scim_token
        self.tokens = {}  # token -> expiry (monotonic seconds)
        self.faults = []
        self.random = random.Random(7)
        self.bulk_status = None
        self.bulk_id_only_for_post = False
        self.bulk_shuffle = False
        self.ignore_filter = False
        self.cleared = threading.Event()  # set (and replaced) when the faults are cleared
        self.delaying = 0
        self.rate = 0.0
        self.burst = 0.0
        self.bucket = 0.0
        self.refilled = time.monotonic()
        self.rate_headers = "ietf"
        self.rate_limited = 0
        self.requests = 0
        self.concurrent_changes = 0
        self.bulk_ops = {}  # bulkId -> {"received": n, "answers": [...]}
        self.log = []
        self.bodies = []
        self.lock = threading.Lock()

    def issue_token(self):
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return token

    def token_ok(self, header):
        if not header or not header.lower().startswith("bearer "):
            return False
        token = header[7:].strip()
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def take_fault(self, method, path):
        with self.lock:
            for fault in self.faults:
                if fault.get("method") and fault["method"].upper() != method:
                    continue
                if fault.get("path") and not path.startswith(fault["path"]):
                    continue
                if fault.get("id") and path.rstrip("/") != f"/scim/v2/Users/{fault['id']}":
                    continue
                if fault.get("kind") == "concurrentChange" and not path.startswith("/scim/v2"):
                    continue  # it changes a SCIM user: nothing to do elsewhere
                if "share" in fault:
                    if self.random.random() < fault["share"]:
                        return dict(fault)
                    continue
                if fault.get("count", 1) <= 0:
                    continue
                fault["count"] = fault.get("count", 1) - 1
                return dict(fault)
        return None

    def take_token(self):
        """(wait, headers): wait is None when the request may pass, else the seconds until a
        token is available; headers tell the quota left (see _quota_headers)."""
        with self.lock:
            self.requests += 1
            if self.rate <= 0:
                return None, []
            self._refill()
            if self.bucket >= 1:
                self.bucket -= 1
                return None, self._quota_headers()
            self.rate_limited += 1
            return (1 - self.bucket) / self.rate, self._quota_headers()

    def peek_quota_headers(self):
        """The quota headers for an answer that takes no token (a 401)."""
        with self.lock:
            if self.rate <= 0:
                return []
            self._refill()
            return self._quota_headers()

    def _refill(self):
        now = time.monotonic()
        self.bucket = min(self.burst, self.bucket + (now - self.refilled) * self.rate)
        self.refilled = now

    def _quota_headers(self):
        """The token bucket as quota headers in the configured style (lock held, bucket just
        refilled and charged): quota = burst, window = burst/rate s, remaining = whole tokens
        left, reset = s until the next token (0 when the bucket is full)."""
        if self.rate_headers == "none":
            return []
        eps = 1e-9  # float residue: 0.9999999999 tokens is one token
        quota = int(self.burst + eps)
        window = max(1, math.ceil(self.burst / self.rate - eps))
        remaining = max(0, math.floor(self.bucket + eps))
        if self.bucket >= self.burst - eps:
            until = 0.0
        else:
            until = (remaining + 1 - self.bucket) / self.rate
        reset = max(0 if remaining else 1, math.ceil(until - eps))
        if self.rate_headers == "legacy":
            return [("RateLimit-Limit", str(quota)), ("RateLimit-Remaining", str(remaining)),
                    ("RateLimit-Reset", str(reset))]
        if self.rate_headers == "x":
            return [("X-RateLimit-Limit", str(quota)), ("X-RateLimit-Remaining", str(remaining)),
                    ("X-RateLimit-Reset", str(math.ceil(time.time() + until)))]
        return [("RateLimit-Policy", f'"default";q={quota};w={window}'),
                ("RateLimit", f'"default";r={remaining};t={reset}')]

    def bulk_received(self, body):
        """Counts the bulkIds of a Bulk request; returns them, in request order."""
        ops = body.get("Operations") if isinstance(body, dict) else None
        ids = [op.get("bulkId") for op in ops if isinstance(op, dict)] if isinstance(ops, list) else []
        ids = [i for i in ids if isinstance(i, str)]
        with self.lock:
            for bulk_id in ids:
                self.bulk_ops.setdefault(bulk_id, {"received": 0, "answers": []})["received"] += 1
        return ids

    def bulk_answered(self, ids, answers):
        """answers: bulkId -> what it was answered, or one value for all of them."""
        with self.lock:
            for bulk_id in ids:
                answer = answers if isinstance(answers, str) else answers.get(bulk_id, "missing")
                self.bulk_ops.setdefault(bulk_id, {"received": 0, "answers": []})["answers"].append(answer)

    def record(self, entry):
        with self.lock:
            self.log.append(entry)
            if entry.get("body") is not None and entry.get("path", "").startswith("/scim/"):
                self.bodies.append(entry)

    def sync_agents(self, scim_filter=None):
        """The agents of the SCIM users scim2-server holds now (see Agents.sync); of those
        `scim_filter` matches when given (scim2-server filters: a search does not read every user)."""
        users = scim_users(self, scim_filter)
        with self.lock:
            return self.agents.sync(users, getattr(self.profile, "teams", {}))

    def agents_named(self, text):
        """The agents whose userName contains `text`; when none does, those whose given name,
        family name or an email does (scim2-server reads one attribute of every user several
        times faster than four, and a client looks for a userName)."""
        quoted = json.dumps(text)
        by_name = self.sync_agents(f"userName co {quoted}")
        if by_name:
            return by_name
        return self.sync_agents(" or ".join(f"{attr} co {quoted}" for attr in
                                            ("name.givenName", "name.familyName", "emails.value")))

    def agent_by_id(self, agent_id):
        """The agent `agent_id` (text), read by its user's id when it was seen before; else every
        user is listed once to find it."""
        with self.lock:
            scim_id = next((i for i, n in self.agents.ids.items() if str(n) == agent_id), None)
        if scim_id is None:
            return next((a for a in self.sync_agents() if str(a["agentId"]) == agent_id), None)
        status, _, body = forward(self, "GET", f"/scim/v2/Users/{urllib.parse.quote(scim_id)}", "", b"", {})
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"scim2-server answered {status} to the read of user {scim_id}")
        with self.lock:
            return self.agents.sync([json.loads(body)], getattr(self.profile, "teams", {}))[0]


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, sent at once: with headers and body in two small writes, a
        # keep-alive client's delayed ACK holds the body back ~40 ms (Nagle's algorithm).
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, fmt, *args):  # keep the test output quiet
            pass

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status, body=b"", headers=None, content_type="application/json"):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or []):
                self.send_header(name, value)
            if body or status not in (202, 204, 304):
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _scim_error(self, status, detail, scim_type=None, headers=None):
            doc = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status),
                   "detail": detail}
            if scim_type:
                doc["scimType"] = scim_type
            self._send(status, doc, headers, "application/scim+json")

        def _dispatch(self):
            url = urllib.parse.urlsplit(self.path)
            body = self._body()
            if url.path.startswith("/_standin/"):
                return self._control(url.path, body, url.query)
            if url.path == "/oauth/token" and self.command == "POST" and state.profile.client_credentials:
                return self._token(body)
            if url.path == "/authentication/v1/token/access-key" and self.command == "POST":
                return self._access_key_token(body)
            if url.path.startswith("/scim/v2"):
                return self._scim(url, body)
            if url.path == state.admin_prefix or url.path.startswith(state.admin_prefix + "/"):
                return self._admin(url, body)
            self._send(404, {"error": "not_found"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def _control(self, path, body, query=""):
            if path == "/_standin/log" and self.command == "GET":
                with state.lock:
                    return self._send(200, list(state.log))
            if path == "/_standin/bodies" and self.command == "GET":
                with state.lock:
                    return self._send(200, list(state.bodies))
            if path == "/_standin/log" and self.command == "DELETE":
                with state.lock:
                    state.log.clear()
                    state.bulk_ops.clear()
                return self._send(204)
            if path == "/_standin/faults" and self.command == "POST":
                fault = json.loads(body or b"{}")
                kind = fault.get("kind")
                if kind not in (None, "concurrentChange"):
                    return self._send(400, {"error": f"kind: unknown fault kind {kind!r}"})
                if kind == "concurrentChange":
                    fault.setdefault("method", "PUT")
                    fault.setdefault("path", "/scim/v2/Users/")
                    fault.pop("status", None)
                    fault.pop("delayMs", None)
                with state.lock:
                    state.faults.append(fault)
                return self._send(204)
            if path == "/_standin/faults" and self.command == "DELETE":
                with state.lock:
                    state.faults.clear()
                    state.bulk_status = None
                    state.bulk_id_only_for_post = False
                    state.bulk_shuffle = False
                    state.cleared.set()
                    state.cleared = threading.Event()
                return self._send(204)
            if path == "/_standin/config" and self.command == "POST":
                conf = json.loads(body or b"{}")
                style = conf.get("rateLimitHeaders", "ietf" if "rateLimit" in conf else None)
                if style is not None and style not in ("ietf", "legacy", "x", "none"):
                    return self._send(400, {"error": f"rateLimitHeaders: unknown style {style!r}"})
                with state.lock:
                    if "bulkStatus" in conf:
                        state.bulk_status = conf["bulkStatus"]
                    if "ignoreFilter" in conf:
                        state.ignore_filter = bool(conf["ignoreFilter"])
                    if "bulkIdOnlyForPost" in conf:
                        state.bulk_id_only_for_post = bool(conf["bulkIdOnlyForPost"])
                    if "bulkShuffle" in conf:
                        state.bulk_shuffle = bool(conf["bulkShuffle"])
                    if style is not None:
                        state.rate_headers = style
                    if "rateLimit" in conf:
                        state.rate = float(conf["rateLimit"])
                        state.burst = float(conf.get("burst", max(1.0, state.rate)))
                        state.bucket = state.burst
                        state.refilled = time.monotonic()
                        state.rate_limited = 0
                return self._send(204)
            if path == "/_standin/config" and self.command == "GET":
                return self._send(200, state.profile.describe())
            if path == "/_standin/stats":
                with state.lock:
                    return self._send(200, {"profile": state.profile.name,
                                            "rateLimited": state.rate_limited, "requests": state.requests,
                                            "delaying": state.delaying,
                                            "bulkOps": json.loads(json.dumps(state.bulk_ops))})
            if path == "/_standin/revoke-tokens" and self.command == "POST":
                with state.lock:
                    state.tokens.clear()
                return self._send(204)
            if path == "/_standin/users" and self.command == "GET":
                # scim2-server's own listing, whatever the profile allows (for checks in tests).
                status, _, answer = forward(state, "GET", "/scim/v2/Users", query, b"", {})
                return self._send(status, json.loads(answer or b"{}"))
            if path.startswith("/_standin/agents"):
                return self._agents_control(path, body, query)
            if path == "/_standin/health":
                try:
                    forward(state, "GET", "/scim/v2/ServiceProviderConfig", "", b"", {})
                    return self._send(200, {"status": "ok"})
                except OSError as exc:
                    return self._send(503, {"status": str(exc)})
            self._send(404, {"error": "no such control"})

        def _agents_control(self, path, body, query=""):
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = None
            named = doc.get("userName") if isinstance(doc, dict) else None
            if path == "/_standin/agents" and self.command == "GET":
                named = dict(urllib.parse.parse_qsl(query)).get("userName")
            try:
                agents = state.sync_agents(f"userName eq {json.dumps(named)}" if isinstance(named, str) else None)
            except (OSError, RuntimeError) as exc:
                return self._send(502, {"error": str(exc)})
            if path == "/_standin/agents" and self.command == "GET":
                with state.lock:
                    return self._send(200, [state.agents.summary(a) for a in agents])
            if path not in ("/_standin/agents/login", "/_standin/agents/dependencies") or self.command != "POST":
                return self._send(404, {"error": "no such control"})
            if not isinstance(doc, dict) or not isinstance(doc.get("userName"), str):
                return self._send(400, {"error": "a JSON object with userName"})
            wanted = doc["userName"].lower()
            agent = next((a for a in agents if str(a["userName"]).lower() == wanted), None)
            if agent is None:
                return self._send(404, {"error": f"no user {doc['userName']!r}"})
            with state.lock:
                if path == "/_standin/agents/login":
                    state.agents.logged_in.add(agent["agentId"])
                else:
                    problem = state.agents.set_dependencies(agent["agentId"], doc)
                    if problem:
                        return self._send(400, {"error": problem})
                return self._send(200, state.agents.summary(agent))

        def _admin_error(self, status, error, description, headers=None):
            self._send(status, {"error": error, "error_description": description}, headers)

        def _admin(self, url, body):
            """NICE's Admin API, as far as the module docstring says."""
            try:
                doc = json.loads(body) if body else None
            except ValueError:
                doc = body.decode(errors="replace")
            entry = {"method": self.command, "path": url.path, "query": url.query, "status": None, "body": doc,
                     "userAgent": self.headers.get("User-Agent", ""), "receivedAt": time.time()}
            if not state.token_ok(self.headers.get("Authorization")):
                entry["status"] = 401
                state.record(entry)
                return self._admin_error(401, "invalid_token", "invalid or expired bearer token",
                                         state.peek_quota_headers())
            wait, quota = state.take_token()
            if wait is not None:
                entry["status"] = 429
                entry["rateLimited"] = True
                state.record(entry)
                return self._admin_error(429, "TooManyRequests", "rate limit",
                                         [("Retry-After", str(max(1, math.ceil(wait))))] + quota)
            fault = state.take_fault(self.command, url.path)
            if fault and self._injected(fault, entry, quota, admin=True):
                return None
            try:
                status, answer = self._admin_answer(url)
            except (OSError, RuntimeError) as exc:  # scim2-server did not list its users
                status, answer = 502, {"error": "BadGateway", "error_description": str(exc)}
            entry["status"] = status
            entry["answeredAt"] = time.time()
            state.record(entry)
            self._send(status, answer if answer is not None else b"", quota)

        def _admin_answer(self, url):
            """(status, JSON document or None for no body)."""
            rest = url.path[len(state.admin_prefix):].rstrip("/")
            if rest == "/agents" and self.command == "GET":
                return self._agents_search(url)
            call = ADMIN_AGENT_CALL.fullmatch(rest)
            if not call or ADMIN_AGENT_METHODS[call.group(2)] != self.command:
                return 404, {"error": "NotFound", "error_description": f"no {self.command} {rest} in this API"}
            wanted, kind = call.group(1), call.group(2)
            agent = state.agent_by_id(wanted)
            if agent is None:
                return 404, {"error": "InvalidAgentId",
                             "error_description": f"Agent {wanted} was not found in this business unit."}
            with state.lock:
                if kind == "logout":
                    state.agents.logged_in.discard(agent["agentId"])
                    return 202, None
                items = state.agents.dependencies(kind, agent)
            if not items:
                return 204, None
            if kind == "groups":
                return 200, {"agentGroups": items}
            if kind == "scheduled-callbacks":
                return 200, {"callbacks": items}
            return 200, {"totalRecords": len(items),
                         "_links": {"self": self._link(url), "next": None, "previous": None},
                         "lastPollTime": admin_time(time.time()), "businessUnitId": BUSINESS_UNIT_ID,
                         "agentSkillAssignments": items}

        def _link(self, url, **changes):
            """This request's URL at the front, with query parameters changed (by name, any case)."""
            pairs = [(k, v) for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True)
                     if k.lower() not in {c.lower() for c in changes}]
            pairs += [(k, str(v)) for k, v in changes.items()]
            query = urllib.parse.urlencode(pairs)
            return f"http://{self.headers.get('Host', '')}{url.path}" + (f"?{query}" if query else "")

        def _agents_search(self, url):
            params = {k.lower(): v for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True)}
            text = params.get("searchstring", "").lower()
            active = params.get("isactive", "").lower()
            if active not in ("", "true", "false"):
                return 400, {"error": "InvalidParameter", "error_description": "isActive must be true or false"}
            numbers = {}
            for name in ("skip", "top"):
                value = params.get(name, "")
                if value and not (value.isdigit() and (name == "skip" or int(value) > 0)):
                    least = "1 or more" if name == "top" else "0 or more"
                    return 400, {"error": "InvalidParameter",
                                 "error_description": f"{name} must be a whole number, {least}"}
                numbers[name] = int(value) if value else None
            skip, top = numbers["skip"] or 0, numbers["top"]
            candidates = state.agents_named(text) if text else state.sync_agents()
            found = [a for a in candidates
                     if (not text or any(text in str(a[f] or "").lower() for f in SEARCHED))
                     and (not active or a["isActive"] == (active == "true"))]
            page = found[skip:None if top is None else skip + top]
            if not page:
                return 204, None
            links = {"self": self._link(url), "next": None, "previous": None}
            if skip + len(page) < len(found):
                links["next"] = self._link(url, skip=skip + len(page))
            if skip > 0:
                links["previous"] = self._link(url, skip=max(0, skip - (top or skip)))
            return 200, {"businessUnitId": BUSINESS_UNIT_ID, "_links": links, "lastPollTime": admin_time(time.time()),
                         "totalRecords": len(found), "hiddenAgents": 0, "agents": page}

        def _token(self, body):
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            field = lambda name: (form.get(name) or [""])[0]
            ok = (field("grant_type") == "client_credentials" and field("client_id") == state.client_id
                  and secrets.compare_digest(field("client_secret"), state.client_secret))
            state.record({"method": "POST", "path": "/oauth/token", "query": "", "status": 200 if ok else 401,
                          "body": None})
            if not ok:
                return self._send(401, {"error": "invalid_client"})
            self._send(200, {"access_token": state.issue_token(), "token_type": "Bearer",
                             "expires_in": state.token_ttl})

        def _access_key_token(self, body):
            # CXone's access-key exchange as NICE documents it: a JSON body in, the token and
            # the API host out. The stand-in's one key is its client id and secret.
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = None
            doc = doc if isinstance(doc, dict) else {}
            ok = (self.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"
                  and doc.get("accessKeyId") == state.client_id
                  and secrets.compare_digest(str(doc.get("accessKeySecret", "")), state.client_secret))
            state.record({"method": "POST", "path": "/authentication/v1/token/access-key", "query": "",
                          "status": 200 if ok else 401, "body": None})
            if not ok:
                return self._send(401, {"error": "invalid_client"})
            host = f"http://{self.headers.get('Host', '127.0.0.1')}/"
            self._send(200, {"access_token": state.issue_token(), "token_type": "bearer",
                             "expires_in": state.token_ttl, "refresh_token": secrets.token_urlsafe(24),
                             "id_token": secrets.token_urlsafe(24), "resource_server_base_uri": host})

        def _scim(self, url, body):
            entry = {"method": self.command, "path": url.path, "query": url.query, "status": None,
                     "body": json.loads(body) if body else None,
                     "userAgent": self.headers.get("User-Agent", ""),
                     "ifMatch": self.headers.get("If-Match"), "receivedAt": time.time()}
            is_bulk = self.command == "POST" and url.path.rstrip("/") == "/scim/v2/Bulk"
            bulk_ids = state.bulk_received(entry["body"]) if is_bulk else []
            if not state.token_ok(self.headers.get("Authorization")):
                entry["status"] = 401
                state.record(entry)
                state.bulk_answered(bulk_ids, "401")
                return self._scim_error(401, "invalid or expired bearer token", headers=state.peek_quota_headers())
            wait, quota = state.take_token()
            if wait is not None:
                entry["status"] = 429
                entry["rateLimited"] = True
                state.record(entry)
                state.bulk_answered(bulk_ids, "429")
                return self._scim_error(429, "rate limit",
                                        headers=[("Retry-After", str(max(1, math.ceil(wait))))] + quota)
            fault = state.take_fault(self.command, url.path)
            if fault and fault.get("kind") == "concurrentChange":
                entry["concurrentChange"] = self._concurrent_change(fault, url.path)
            elif fault and self._injected(fault, entry, quota, bulk_ids):
                return None
            refused = state.profile.refusal(self.command, url.path, url.query, entry["body"])
            if refused:
                status, scim_type, detail = refused
                entry["status"] = status
                state.record(entry)
                state.bulk_answered(bulk_ids, str(status))
                return self._scim_error(status, detail, scim_type, quota)
            query, body = state.profile.prepare(self.command, url.path, url.query, body, entry["body"])
            if state.ignore_filter and self.command == "GET" and url.path.rstrip("/") == "/scim/v2/Users":
                query = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
                                                if k.lower() != "filter"])
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept",
                                                                                   "if-match", "if-none-match")}
            status, resp_headers, resp_body = forward(state, self.command, url.path, query, body, headers)
            resp_body = state.profile.present(url.path, status, resp_body)
            if is_bulk:
                resp_body = self._bulk_answer(entry["body"], bulk_ids, status, resp_body)
            if url.path == "/scim/v2/Bulk" and status == 200 and state.bulk_status:
                status = state.bulk_status
            entry["status"] = status
            entry["answeredAt"] = time.time()
            state.record(entry)
            front = f"http://{self.headers.get('Host', '')}"
            out = []
            for name, value in resp_headers:
                if name.lower() in HOP_BY_HOP or name.lower() == "content-type":
                    continue
                out.append((name, value.replace(state.scim_url, front)))
            resp_body = resp_body.replace(state.scim_url.encode(), front.encode())
            ctype = dict((k.lower(), v) for k, v in resp_headers).get("content-type", "application/scim+json")
            self._send(status, resp_body, out + quota, ctype)

        def _bulk_answer(self, request, bulk_ids, status, resp_body):
            """Notes what each bulkId was answered; reshapes the results as configured."""
            try:
                doc = json.loads(resp_body)
            except ValueError:
                doc = None
            results = doc.get("Operations") if isinstance(doc, dict) else None
            if status != 200 or not isinstance(results, list):
                state.bulk_answered(bulk_ids, str(status))
                return resp_body
            state.bulk_answered(bulk_ids, {r.get("bulkId"): str(r.get("status")) for r in results
                                           if isinstance(r, dict) and isinstance(r.get("bulkId"), str)})
            with state.lock:
                only_post, shuffle = state.bulk_id_only_for_post, state.bulk_shuffle
            if not (only_post or shuffle):
                return resp_body
            if shuffle:
                # From request order (scim2-server may answer in another), then permuted.
                position = {}
                for i, bulk_id in enumerate(bulk_ids):
                    position.setdefault(bulk_id, i)

                def rank(item):
                    index, result = item
                    bulk_id = result.get("bulkId") if isinstance(result, dict) else None
                    return position.get(bulk_id, len(bulk_ids)), index

                results = doc["Operations"] = shuffled([r for _, r in sorted(enumerate(results), key=rank)])
            if only_post:
                ops = request.get("Operations") if isinstance(request, dict) else None
                sent = {op.get("bulkId"): op.get("method") for op in (ops if isinstance(ops, list) else [])
                        if isinstance(op, dict)}
                for result in results:
                    if not isinstance(result, dict):
                        continue
                    method = result.get("method") or sent.get(result.get("bulkId")) or ""
                    if str(method).upper() != "POST":
                        result.pop("bulkId", None)
            return json.dumps(doc).encode()

        def _concurrent_change(self, fault, path):
            """Changes the user at `path` in scim2-server, as another client would."""
            with state.lock:
                state.concurrent_changes += 1
                n = state.concurrent_changes
            attribute = fault.get("attribute", "nickName")
            value = fault.get("value", f"changed concurrently ({n})")
            patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "replace", "path": attribute, "value": value}]}
            status, _, _ = forward(state, "PATCH", path.rstrip("/"), "", json.dumps(patch).encode(),
                                   {"Content-Type": "application/scim+json", "Accept": "application/scim+json"})
            return {"attribute": attribute, "value": value, "status": status}

        def _delay(self, seconds):
            """Holds the request; False when the faults were cleared meanwhile (drop it)."""
            if seconds <= 0:
                return True
            with state.lock:
                cleared = state.cleared
                state.delaying += 1
            try:
                return not cleared.wait(seconds)
            finally:
                with state.lock:
                    state.delaying -= 1

        def _injected(self, fault, entry, quota, bulk_ids=(), admin=False):
            """Applies an injected fault to the request `entry` logs: its delay, then its answer
            when it has a status. True when that ends the request (answered, or dropped during
            the delay); False when the request goes on."""
            if not self._delay(fault.get("delayMs", 0) / 1000):
                state.bulk_answered(bulk_ids, "dropped")
                self.close_connection = True
                return True
            if not fault.get("status"):
                return False
            entry["status"] = fault["status"]
            entry["injected"] = True
            state.record(entry)
            state.bulk_answered(bulk_ids, str(fault["status"]))
            self._fault_answer(fault, quota, admin=admin)
            return True

        def _fault_answer(self, fault, quota, admin=False):
            """An injected fault's answer: a SCIM error, or on the Admin API one in its shape."""
            status = fault["status"]
            headers = [("Retry-After", str(fault["retryAfter"]))] if "retryAfter" in fault else []
            headers += quota
            if "location" in fault:
                headers.append(("Location", fault["location"]))
            ctype = "application/json" if admin else "application/scim+json"
            if "body" in fault:
                return self._send(status, json.dumps(fault["body"]).encode(), headers, ctype)
            if admin:
                return self._admin_error(status, "InjectedFault", fault.get("detail", "injected fault"), headers)
            return self._scim_error(status, fault.get("detail", "injected fault"), fault.get("scimType"), headers)

    return Handler


def shuffled(items):
    """A fixed permutation for each length in which, from 2 items on, no item keeps its place."""
    order, draw = list(range(len(items))), random.Random(len(items))
    while len(order) > 1 and any(i == at for at, i in enumerate(order)):
        draw.shuffle(order)
    return [items[i] for i in order]


def forward(state, method, path, query, body, headers):
    url = state.scim_url + path + (("?" + query) if query else "")
    req = urllib.request.Request(url, data=body or None, method=method, headers=dict(headers))
    req.add_header("Authorization", f"Bearer {state.scim_token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, list(resp.getheaders()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, list(err.headers.items()), err.read()


def wait_ready(url, token, deadline):
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url + "/scim/v2/ServiceProviderConfig",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--scim-port", type=int, required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--token-ttl", type=int, default=3600)
    ap.add_argument("--profile", choices=("rfc7644", "cxone"), default="rfc7644")
    ap.add_argument("--roles", default=DEFAULT_ROLES, help="cxone: the tenant's roles, the default one first")
    ap.add_argument("--teams", default=DEFAULT_TEAMS, help="cxone: the tenant's teams, id=name,...")
    ap.add_argument("--admin-prefix", default=DEFAULT_ADMIN_PREFIX,
                    help="where NICE's Admin API is served (both profiles)")
    args = ap.parse_args()
    admin_prefix = "/" + args.admin_prefix.strip("/")
    profile = Rfc7644Profile()
    if args.profile == "cxone":
        teams = dict(pair.split("=", 1) for pair in args.teams.split(",") if pair)
        profile = CxoneProfile([r for r in args.roles.split(",") if r], teams)

    scim_token = secrets.token_urlsafe(24)
    scim_bin = os.path.join(os.path.dirname(sys.executable), "scim2-server")
    workdir = tempfile.mkdtemp(prefix="standin-")
    # scim2-server's own messages, kept to say why it did not start (its request lines are many).
    errors_path = os.path.join(workdir, "scim2-server.err")
    child = subprocess.Popen([scim_bin, "--hostname", "127.0.0.1", "--port", str(args.scim_port),
                              "--tenant", "scim", "--bearer-token", scim_token,
                              *profile.scim2_server_args(workdir)],
                             stdout=subprocess.DEVNULL, stderr=open(errors_path, "w"))
    scim_url = f"http://127.0.0.1:{args.scim_port}"

    def stop(*_):
        shutil.rmtree(workdir, ignore_errors=True)
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not wait_ready(scim_url, scim_token, time.monotonic() + 60):
        with open(errors_path, errors="replace") as errors:
            last = errors.readlines()[-20:]
        print(f"scim2-server did not start (exit status {child.poll()}):\n{''.join(last)}", file=sys.stderr,
              flush=True)
        stop()
    state = State(args.client_id, args.client_secret, args.token_ttl, scim_url, scim_token, profile, admin_prefix)
    try:
        # Inside the try: a port already taken must not leave scim2-server running.
        server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
        server.daemon_threads = True
        print(f"CXone stand-in on http://127.0.0.1:{args.port} (scim2-server on {scim_url})", flush=True)
        server.serve_forever()
    finally:
        stop()


if __name__ == "__main__":
    main()
