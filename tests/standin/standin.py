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
                                     /scim/v2 (429 + Retry-After beyond it); R 0 turns it off;
                                     with it, every /scim/v2 answer (401, 429, injected faults
                                     and forwarded answers alike) tells the quota in the style
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

Usage: standin.py --port 8790 --scim-port 8791 --client-id ID --client-secret SECRET
                  [--profile rfc7644|cxone] [--roles A,B] [--teams id=name,id=name]
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


class State:
    def __init__(self, client_id, client_secret, token_ttl, scim_url, scim_token, profile):
        self.profile = profile
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
            if entry.get("body") is not None:
                self.bodies.append(entry)


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
            if body or status not in (204, 304):
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
            if path == "/_standin/health":
                try:
                    forward(state, "GET", "/scim/v2/ServiceProviderConfig", "", b"", {})
                    return self._send(200, {"status": "ok"})
                except OSError as exc:
                    return self._send(503, {"status": str(exc)})
            self._send(404, {"error": "no such control"})

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
            elif fault:
                if not self._delay(fault.get("delayMs", 0) / 1000):
                    state.bulk_answered(bulk_ids, "dropped")
                    self.close_connection = True
                    return None
                if fault.get("status"):
                    entry["status"] = fault["status"]
                    entry["injected"] = True
                    state.record(entry)
                    state.bulk_answered(bulk_ids, str(fault["status"]))
                    return self._fault_answer(fault, quota)
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

        def _fault_answer(self, fault, quota):
            status = fault["status"]
            headers = [("Retry-After", str(fault["retryAfter"]))] if "retryAfter" in fault else []
            headers += quota
            if "location" in fault:
                headers.append(("Location", fault["location"]))
            if "body" in fault:
                return self._send(status, json.dumps(fault["body"]).encode(), headers, "application/scim+json")
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
    args = ap.parse_args()
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
    state = State(args.client_id, args.client_secret, args.token_ttl, scim_url, scim_token, profile)
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
