"""Microsoft Graph fixture: the parts of Graph and of the Microsoft identity platform that the
Worker's Entra ID sync uses, served locally from an in-memory directory that tests control.
Written from Microsoft's published documentation (tests/graphfix/README.md names the pages and
keeps the documented sample answers under samples/); nothing here is Graph's own code.

Identity platform
    POST /{tenant}/oauth2/v2.0/token  OAuth 2.0 client credentials, form body: client_id,
                                      client_secret, grant_type=client_credentials,
                                      scope=https://graph.microsoft.com/.default.
                                      200 {"token_type":"Bearer","expires_in":N,
                                      "ext_expires_in":N,"access_token":"..."}; errors in the
                                      identity platform's shape {"error","error_description",
                                      "error_codes","timestamp","trace_id","correlation_id"}:
                                      401 invalid_client (unknown client_id, wrong or missing
                                      secret), 400 invalid_request (missing grant_type, other
                                      tenant), 400 unsupported_grant_type, 400 invalid_scope

Microsoft Graph (every request needs a live issued token: 401 InvalidAuthenticationToken
otherwise; errors are {"error":{"code","message","innerError":{"date","request-id",
"client-request-id"}}}; answers carry request-id and client-request-id headers)
    GET    /v1.0/users/delta          delta query (also /users/microsoft.graph.delta).
                                      $select honoured (only those properties plus id; without
                                      it the default user properties); pages of
                                      Prefer: odata.maxpagesize=N (echoed in Preference-Applied)
                                      or the configured pageSize; every page but the last has
                                      an absolute @odata.nextLink ...?$skiptoken=..., the last an
                                      absolute @odata.deltaLink ...?$deltatoken=...; a page
                                      fetched again with the same link (and page size) answers
                                      the same.
                                      A deltaLink returns what changed after its token: a user
                                      created (or restored) since in full, a changed user with
                                      only its changed selected properties (configurable, and
                                      always with Prefer: return=minimal), a change to
                                      unselected properties not at all, a soft-deleted user as
                                      {"id":..,"@removed":{"reason":"changed"}}, a hard-deleted
                                      one with "deleted". $deltatoken=latest answers a deltaLink
                                      and no users; an empty $deltatoken starts over. An
                                      unknown (expired) deltatoken answers 410 syncStateNotFound
                                      with a Location of the initial query; an unknown skiptoken
                                      400 invalidRequest
    GET    /v1.0/users/{id|upn}       one user ($select honoured), 404 Request_ResourceNotFound
    GET    /v1.0/groups/{id}          one group ($select honoured)
    GET    /v1.0/users/{id|upn}/transitiveMemberOf[/microsoft.graph.group]
                                      the user's groups, direct and through nested groups
                                      (cycles are fine); $select honoured; $top (1-999) or the
                                      configured page size, further pages by absolute
                                      @odata.nextLink with $skiptoken and the other query
                                      parameters kept; @odata.count on the first page with
                                      $count=true and ConsistencyLevel: eventual. Without the
                                      cast each item carries "@odata.type":"#microsoft.graph.group"
    POST   /v1.0/subscriptions        {"changeType","notificationUrl","resource":"users"|"groups"
                                      (or users/{id}, groups/{id}),"expirationDateTime",
                                      "clientState",["lifecycleNotificationUrl"]}: validates
                                      notificationUrl (and lifecycleNotificationUrl) first, by
                                      the handshake below; 201 with the subscription, 400
                                      ValidationError when the handshake fails, 400
                                      invalidRequest for a bad body or an expirationDateTime in
                                      the past or more than 41760 minutes ahead (the documented
                                      maximum for users and groups)
    GET    /v1.0/subscriptions        {"value":[...]} this app's live subscriptions (clientState
                                      null, as documented); expired ones are gone
    GET    /v1.0/subscriptions/{id}   one subscription (clientState null too); 404 once expired
    PATCH  /v1.0/subscriptions/{id}   {"expirationDateTime"} (required; same limits) and
                                      optionally {"notificationUrl"} (validated again); 200
    DELETE /v1.0/subscriptions/{id}   204

    The validation handshake: POST {url}?validationToken={token, URL-encoded} with
    Content-Type: text/plain; charset=utf-8 and no body; it passes when the answer is 200,
    text/plain and exactly the decoded token, within 10 s. The token has spaces and colons,
    so an endpoint that answers it still encoded fails.

Control (loopback, JSON, no token)
    PUT    /_graph/users/{id}         create or replace a user: {"userPrincipalName","givenName",
                                      "surname","displayName","mail","accountEnabled",
                                      "department","jobTitle","employeeId",...} (any user
                                      properties; id from the path). Replacing counts the
                                      properties whose value changed (a property left out
                                      becomes null); putting a deleted user restores it (it
                                      comes back in full). 201 created / 200 replaced
    PATCH  /_graph/users/{id}         merge some properties; those whose value changed appear
                                      in the next delta (alone, by default). 404 if absent
    DELETE /_graph/users/{id}?hard=false|true
                                      soft delete (@removed changed; restorable with PUT) or
                                      hard delete (@removed deleted); hard after soft is fine
    GET    /_graph/users              {"users":[...],"removed":{id: reason},"seq":n}
    GET    /_graph/users/{id}         {"user":{...},"removed":null|reason}
    PUT    /_graph/groups/{id}        {"displayName","members":[user or group ids],...}
    DELETE /_graph/groups/{id}
    POST   /_graph/faults             {"kind":"gone"}    the next delta call with a deltatoken
                                                         answers 410 syncStateNotFound (the
                                                         token then stays expired)
                                      {"kind":"resync"}  the same with 410 resyncRequired
                                      {"kind":"throttle","retryAfter":2}
                                                         the next Graph call answers 429
                                                         TooManyRequests with Retry-After
                                      {"kind":"unavailable","retryAfter":1}
                                                         the next Graph call answers 503
                                                         serviceNotAvailable with Retry-After
                                      each with optional "count" (default 1), "path" (a
                                      /v1.0/... prefix) and "method"
    DELETE /_graph/faults             remove them all
    POST   /_graph/config             {"pageSize":100,"memberOfPageSize":null,"emptyPages":false,
                                      "changedOnly":true,"notifyTimeoutMs":3000}: pageSize is
                                      the page size without a Prefer (memberOfPageSize, when
                                      set, for transitiveMemberOf); emptyPages puts an empty
                                      page (value [] with a nextLink) before every page of
                                      users and before an empty last page; changedOnly false
                                      gives the documented default of a deltaLink round (every
                                      selected property of a changed user, changed or not)
    GET    /_graph/config
    POST   /_graph/notify             {"url","clientState","resource":"users"|"groups",
                                      "changeType":"updated","ids":[...]} or with
                                      "subscriptionId" of a live subscription instead of url and
                                      clientState: POSTs one change notification collection
                                      {"value":[{"subscriptionId","clientState","changeType",
                                      "resource":"Users/{id}","subscriptionExpirationDateTime",
                                      "resourceData":{"@odata.type":"#Microsoft.Graph.User",
                                      "@odata.id":"Users/{id}","id"},"tenantId"}, ...]} to it
                                      (3 s timeout, as Graph's) and answers {"status","body",
                                      "elapsedMs","error","payload"}
    POST   /_graph/validate           {"url"}: runs the validation handshake against it and
                                      answers {"ok","status","contentType","body","token",
                                      "elapsedMs","error","checks":{...}}
    GET    /_graph/subscriptions      every live subscription, clientState included
    POST   /_graph/revoke-tokens      every issued token stops working
    POST   /_graph/reset              forget users, groups, subscriptions, delta state, faults,
                                      the log, and restore the default config
    GET    /_graph/log                requests seen, oldest first (method, path, query, status;
                                      outbound validation and notification POSTs too, with
                                      "outbound")
    DELETE /_graph/log                forget them
    GET    /_graph/health             200 {"status":"ok","seq":n}

Usage: graphfix.py --port 8795 --client-id ID --client-secret SECRET [--tenant TENANT]
"""

import argparse
import base64
import datetime
import json
import os
import secrets
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DEFAULT_TENANT = "2f4a9a0e-7f3c-4f2b-9d3e-3c1d5b6a7e80"
# The properties a user read returns without $select (user: delta, example 1).
DEFAULT_USER_PROPERTIES = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                           "officeLocation", "preferredLanguage", "surname", "userPrincipalName"]
MAX_DIRECTORY_SUBSCRIPTION_MINUTES = 41760  # user, group, other directory resources
VALIDATION_TIMEOUT_S = 10
MAX_PAGE_SIZE = 999
GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
DEFAULT_CONFIG = {"pageSize": 100, "memberOfPageSize": None, "emptyPages": False, "changedOnly": True,
                  "notifyTimeoutMs": 3000}


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def graph_time(dt):
    """2016-11-20T18:23:45.9356913Z: seven fractional digits, as Graph writes them."""
    dt = dt.astimezone(datetime.timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}0Z"


def parse_time(text):
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    date, sep, rest = text.partition("T")
    if "." in rest:  # at most six fractional digits for fromisoformat
        clock, _, frac = rest.partition(".")
        digits = len(frac) - len(frac.lstrip("0123456789"))
        rest = clock + "." + frac[:min(digits, 6)] + frac[digits:]
    try:
        dt = datetime.datetime.fromisoformat(date + sep + rest)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def select_list(raw):
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return names or None


def pick(data, names):
    """The named properties that were ever set (case-insensitive names, stored spelling kept),
    id last as in the documented samples."""
    by_lower = {k.lower(): k for k in data}
    out = {}
    for name in names:
        key = by_lower.get(name.lower())
        if key is not None and key != "id":
            out[key] = data[key]
    out["id"] = data["id"]
    return out


def encode_offset(offset):
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_offset(token):
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(doc["o"])
        return offset if offset >= 0 else None
    except (ValueError, KeyError, TypeError):
        return None


class Round:
    """One round of delta pages: the items are fixed when the round starts."""

    def __init__(self, items, select, seq):
        self.items = items
        self.select = select
        self.seq = seq


class State:
    def __init__(self, client_id, client_secret, tenant, token_ttl):
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.token_ttl = token_ttl
        self.creator_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"graphfix:{client_id}"))
        self.tokens = {}  # token -> expiry (monotonic seconds)
        self.lock = threading.Lock()
        self.log = []
        self.reset()

    def reset(self):
        self.seq = 0
        # id -> {"data": {...}, "created": seq, "props": {name: seq}, "removed": None|reason,
        #        "removedAt": seq}
        self.users = {}
        self.groups = {}  # id -> {"id":..., "displayName":..., "members": [...], ...}
        self.skip_tokens = {}  # skiptoken -> (Round, offset, empty page already served)
        self.delta_tokens = {}  # deltatoken -> {"seq": n, "select": [...] | None}
        self.subscriptions = {}
        self.faults = []
        self.config = dict(DEFAULT_CONFIG)

    # --- tokens -------------------------------------------------------------------------------

    def issue_token(self):
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return token

    def token_problem(self, header):
        """None when the Authorization header carries a live token, else the reason."""
        if not header or not header.lower().startswith("bearer ") or not header[7:].strip():
            return "Access token is empty."
        with self.lock:
            expiry = self.tokens.get(header[7:].strip())
        if expiry is None:
            return "Access token validation failure."
        if expiry <= time.monotonic():
            return "Lifetime validation failed, the token is expired."
        return None

    # --- faults -------------------------------------------------------------------------------

    def take_fault(self, kinds, method, path):
        with self.lock:
            for fault in self.faults:
                if fault.get("kind") not in kinds:
                    continue
                if fault.get("method") and fault["method"].upper() != method:
                    continue
                if fault.get("path") and not path.startswith(fault["path"]):
                    continue
                fault["count"] = fault.get("count", 1) - 1
                if fault["count"] <= 0:
                    self.faults.remove(fault)
                return dict(fault)
        return None

    # --- the directory (lock held by the callers) ---------------------------------------------

    def _bump(self):
        self.seq += 1
        return self.seq

    def put_user(self, uid, body):
        data = {k: v for k, v in body.items() if k != "id"}
        data["id"] = uid
        rec = self.users.get(uid)
        if rec is None or rec["removed"] is not None:
            seq = self._bump()
            self.users[uid] = {"data": data, "created": seq, "props": {k: seq for k in data}, "removed": None,
                               "removedAt": None}
            return 201, sorted(data)
        old = rec["data"]
        for key in old:
            if key not in data and old[key] is not None:
                data[key] = None
        changed = sorted(k for k in data if k != "id" and (k not in old or old[k] != data[k]))
        if changed:
            seq = self._bump()
            for key in changed:
                rec["props"][key] = seq
        rec["data"] = data
        return 200, changed

    def patch_user(self, uid, body):
        rec = self.users.get(uid)
        if rec is None or rec["removed"] is not None:
            return None
        old = rec["data"]
        changed = sorted(k for k, v in body.items() if k != "id" and (k not in old or old[k] != v))
        if changed:
            seq = self._bump()
            for key in changed:
                old[key] = body[key]
                rec["props"][key] = seq
        return changed

    def delete_user(self, uid, hard):
        rec = self.users.get(uid)
        if rec is None or rec["removed"] == "deleted" or (rec["removed"] == "changed" and not hard):
            return None
        rec["removed"] = "deleted" if hard else "changed"
        rec["removedAt"] = self._bump()
        return rec["removed"]

    def live_user(self, key):
        """A user by id or userPrincipalName (case-insensitive), unless deleted."""
        rec = self.users.get(key)
        if rec is None:
            lowered = key.lower()
            for candidate in self.users.values():
                upn = candidate["data"].get("userPrincipalName")
                if isinstance(upn, str) and upn.lower() == lowered:
                    rec = candidate
                    break
        return rec if rec is not None and rec["removed"] is None else None

    def delta_items(self, since, select, minimal):
        """What a round starting now returns: the live users (since None), or the changes after
        `since`, oldest change first."""
        names = select or DEFAULT_USER_PROPERTIES
        wanted = {n.lower() for n in names}
        items = []

        def last_change(rec):
            return max([rec["created"], rec["removedAt"] or 0, *rec["props"].values()])

        for uid, rec in sorted(self.users.items(), key=lambda kv: (last_change(kv[1]), kv[0])):
            if since is None:
                if rec["removed"] is None:
                    items.append(pick(rec["data"], names))
                continue
            if last_change(rec) <= since:
                continue
            if rec["removed"] is not None:
                items.append({"id": uid, "@removed": {"reason": rec["removed"]}})
            elif rec["created"] > since:
                items.append(pick(rec["data"], names))
            else:
                changed = [k for k, s in rec["props"].items() if s > since and k.lower() in wanted]
                if not changed:
                    continue  # only unselected properties changed: not tracked
                items.append(pick(rec["data"], changed if minimal else names))
        return items

    def transitive_groups(self, uid):
        seen, frontier = set(), {uid}
        while frontier:
            parents = {gid for gid, group in self.groups.items()
                       if gid not in seen and any(m in frontier for m in group.get("members", []))}
            seen |= parents
            frontier = parents
        return sorted((self.groups[g] for g in seen), key=lambda g: (str(g.get("displayName", "")), g["id"]))

    def live_subscriptions(self):
        now = utcnow()
        for sid in [s for s, sub in self.subscriptions.items() if sub["_expires"] <= now]:
            del self.subscriptions[sid]
        return self.subscriptions

    def record(self, entry):
        with self.lock:
            self.log.append(entry)


def config_problem(doc):
    """Why a /_graph/config body is unusable, or None."""
    def count(v, nullable=False):
        return (v is None and nullable) or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)

    checks = {"pageSize": lambda v: count(v), "memberOfPageSize": lambda v: count(v, True),
              "emptyPages": lambda v: isinstance(v, bool), "changedOnly": lambda v: isinstance(v, bool),
              "notifyTimeoutMs": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0}
    bad = sorted(k for k, v in doc.items() if not checks[k](v))
    return f"bad values for {bad}" if bad else None


def public_subscription(sub, client_state=True):
    doc = {k: v for k, v in sub.items() if not k.startswith("_")}
    if not client_state:
        doc["clientState"] = None
    return doc


def http_post(url, body, content_type, timeout):
    """(status, headers, body text, elapsed ms, error): one POST, redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    began = time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as resp:
            raw = resp.read()
            status, headers = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        status, headers = err.code, dict(err.headers)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, {}, "", round((time.monotonic() - began) * 1000), str(getattr(exc, "reason", exc))
    return status, headers, raw.decode("utf-8", errors="replace"), round((time.monotonic() - began) * 1000), None


def validation_handshake(url):
    """Graph's notificationUrl validation: POST url?validationToken=... and check the answer."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    split = urllib.parse.urlsplit(url)
    query = (split.query + "&" if split.query else "") + "validationToken=" + urllib.parse.quote(token, safe="")
    target = urllib.parse.urlunsplit((split.scheme, split.netloc, split.path, query, split.fragment))
    status, headers, text, elapsed, error = http_post(target, b"", "text/plain; charset=utf-8",
                                                      VALIDATION_TIMEOUT_S)
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    checks = {"status200": status == 200,
              "textPlain": ctype.split(";")[0].strip().lower() == "text/plain",
              "bodyMatches": text == token,
              "within10s": error is None and elapsed <= VALIDATION_TIMEOUT_S * 1000}
    return {"ok": all(checks.values()), "status": status, "contentType": ctype, "body": text[:2000],
            "token": token, "elapsedMs": elapsed, "error": error, "checks": checks, "url": target}


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
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
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

        def _base(self):
            return f"http://{self.headers.get('Host', '')}"

        def _json(self, body):
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                return None
            return doc if isinstance(doc, dict) else None

        def _dispatch(self):
            url = urllib.parse.urlsplit(self.path)
            body = self._body()
            if url.path.startswith("/_graph/"):
                return self._control(url, body)
            parts = url.path.strip("/").split("/")
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and self.command == "POST":
                return self._token(parts[0], body)
            if url.path.startswith("/v1.0/"):
                return self._graph(url, body)
            self._send(404, {"error": "not_found"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        # --- identity platform ----------------------------------------------------------------

        def _token(self, tenant, body):
            form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
            field = lambda name: (form.get(name) or [""])[0]
            problem = None
            if tenant != state.tenant:
                problem = (400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
            elif not field("grant_type"):
                problem = (400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'grant_type'.")
            elif field("grant_type") != "client_credentials":
                problem = (400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type.")
            elif field("client_id") != state.client_id:
                problem = (401, "invalid_client", 700016,
                           f"Application with identifier '{field('client_id')}' was not found in the "
                           f"directory '{tenant}'.")
            elif not field("client_secret"):
                problem = (401, "invalid_client", 7000218,
                           "The request body must contain the following parameter: 'client_assertion' or "
                           "'client_secret'.")
            elif not secrets.compare_digest(field("client_secret"), state.client_secret):
                problem = (401, "invalid_client", 7000215, "Invalid client secret provided.")
            elif field("scope") != GRAPH_SCOPE:
                problem = (400, "invalid_scope", 1002012,
                           f"The provided value for scope {field('scope')} is not valid. Client credential "
                           f"flows must have a scope value with /.default suffixed to the resource "
                           f"identifier (application ID URI).")
            entry = {"method": "POST", "path": self.path.split("?")[0], "query": "",
                     "status": problem[0] if problem else 200}
            state.record(entry)
            if problem:
                status, error, code, text = problem
                trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
                stamp = f"{utcnow():%Y-%m-%d %H:%M:%S}Z"
                return self._send(status, {
                    "error": error,
                    "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}"
                                         f"\r\nTimestamp: {stamp}",
                    "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": corr},
                    content_type="application/json; charset=utf-8")
            self._send(200, {"token_type": "Bearer", "expires_in": state.token_ttl,
                             "ext_expires_in": state.token_ttl, "access_token": state.issue_token()},
                       content_type="application/json; charset=utf-8")

        # --- Graph ----------------------------------------------------------------------------

        def _error(self, status, code, message, headers=None, inner=None):
            doc = {"error": {"code": code, "message": message,
                             "innerError": {**(inner or {}), "date": f"{utcnow():%Y-%m-%dT%H:%M:%S}",
                                            "request-id": self.request_id,
                                            "client-request-id": self.client_request_id}}}
            return status, doc, headers or []

        def _graph(self, url, body):
            self.request_id = str(uuid.uuid4())
            self.client_request_id = self.headers.get("client-request-id") or self.request_id
            entry = {"method": self.command, "path": url.path, "query": url.query, "status": None}
            problem = state.token_problem(self.headers.get("Authorization"))
            if problem:
                status, doc, headers = self._error(401, "InvalidAuthenticationToken", problem, [
                    ("WWW-Authenticate", 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
                                         'common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"')])
            else:
                fault = state.take_fault(("throttle", "unavailable"), self.command, url.path)
                if fault and fault["kind"] == "throttle":
                    retry = str(fault.get("retryAfter", 1))
                    status, doc, headers = self._error(
                        429, "TooManyRequests", "Please retry again later.", [("Retry-After", retry)],
                        {"code": "429", "message": "Please retry after", "status": "429"})
                elif fault:
                    status, doc, headers = self._error(
                        503, "serviceNotAvailable", "The service is temporarily unavailable.",
                        [("Retry-After", str(fault.get("retryAfter", 1)))])
                else:
                    status, doc, headers = self._route(url, body)
            entry["status"] = status
            state.record(entry)
            headers = list(headers) + [("request-id", self.request_id),
                                       ("client-request-id", self.client_request_id), ("OData-Version", "4.0")]
            self._send(status, doc if doc is not None else b"", headers, GRAPH_JSON)

        def _route(self, url, body):
            segs = [urllib.parse.unquote(s) for s in url.path[len("/v1.0/"):].strip("/").split("/")]
            query = {k.lower(): v for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True)}
            head = segs[0].lower()
            method = self.command
            if head == "users" and len(segs) == 2 and method == "GET" and segs[1].lower() in (
                    "delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"):
                return self._delta(query)
            if head == "users" and len(segs) in (3, 4) and segs[2].lower() == "transitivememberof" \
                    and method == "GET":
                cast = segs[3].lower() if len(segs) == 4 else None
                if cast not in (None, "microsoft.graph.group"):
                    return self._error(400, "BadRequest", f"Resource not found for the segment '{segs[3]}'.")
                return self._member_of(url, segs[1], cast is not None, query)
            if head == "users" and len(segs) == 2 and method == "GET":
                return self._get_user(segs[1], query)
            if head == "groups" and len(segs) == 2 and method == "GET":
                return self._get_group(segs[1], query)
            if head == "subscriptions":
                return self._subscriptions(segs[1:], body)
            return self._error(400, "BadRequest", f"Resource not found for the segment '{segs[-1]}'.")

        def _not_found(self, key):
            return self._error(404, "Request_ResourceNotFound",
                               f"Resource '{key}' does not exist or one of its queried reference-property "
                               f"objects are not present.")

        def _prefer(self):
            prefs = {}
            for part in (self.headers.get_all("Prefer") or []):
                for item in part.split(","):
                    name, _, value = item.strip().partition("=")
                    if name:
                        prefs[name.strip().lower()] = value.strip().strip('"')
            return prefs

        def _delta(self, query):
            base = self._base()
            prefs = self._prefer()
            minimal = prefs.get("return") == "minimal"
            headers = []
            with state.lock:
                size = state.config["pageSize"]
                empty_pages = state.config["emptyPages"]
                minimal = minimal or state.config["changedOnly"]
            try:
                if "odata.maxpagesize" in prefs:
                    size = int(prefs["odata.maxpagesize"])
                    headers.append(("Preference-Applied", f"odata.maxpagesize={size}"))
            except ValueError:
                pass
            size = max(1, min(MAX_PAGE_SIZE, int(size)))
            select = select_list(query.get("$select"))
            if "$skiptoken" in query:
                with state.lock:
                    found = state.skip_tokens.get(query["$skiptoken"])
                if found is None:
                    return self._error(400, "invalidRequest", "The skip token is not valid.")
                rnd, offset, empty_done = found
                select = rnd.select  # the round's own selection; $select beside a skiptoken is ignored
            else:
                token = query.get("$deltatoken")
                since = None
                if token:
                    if token.lower() == "latest":
                        with state.lock:
                            delta = secrets.token_urlsafe(24)
                            state.delta_tokens[delta] = {"seq": state.seq, "select": select}
                        return 200, {"@odata.context": f"{base}/v1.0/$metadata#users",
                                     "@odata.deltaLink": f"{base}/v1.0/users/delta?$deltatoken={delta}",
                                     "value": []}, headers
                    fault = state.take_fault(("gone", "resync"), "GET", "/v1.0/users/delta")
                    with state.lock:
                        known = state.delta_tokens.get(token)
                        if fault:
                            state.delta_tokens.pop(token, None)
                    if fault or known is None:
                        sel = (known or {}).get("select") or select
                        again = f"{base}/v1.0/users/delta?" + (f"$select={','.join(sel)}&" if sel else "") + \
                            "$deltatoken="
                        if fault and fault["kind"] == "resync":
                            return self._error(410, "resyncRequired",
                                               "The delta token is no longer valid, and the app must reset "
                                               "the sync state.", [("Location", again)])
                        return self._error(410, "syncStateNotFound",
                                           "The sync state generation is not found. The delta token is expired "
                                           "and data must be synchronized again.", [("Location", again)])
                    since = known["seq"]
                    select = select or known["select"]
                with state.lock:
                    rnd = Round(state.delta_items(since, select, minimal and since is not None), select, state.seq)
                offset, empty_done = 0, False
            context = f"{base}/v1.0/$metadata#users" + (f"({','.join(select)})" if "$select" in query and select
                                                         else "")
            if empty_pages and not empty_done:
                # An empty page first; its nextLink gives what this one would have given.
                page, next_state, more = [], (rnd, offset, True), True
            else:
                page = rnd.items[offset:offset + size]
                next_state = (rnd, offset + len(page), False)
                more = next_state[1] < len(rnd.items)
            doc = {"@odata.context": context}
            with state.lock:
                if more:
                    skip = secrets.token_urlsafe(24)
                    state.skip_tokens[skip] = next_state
                    doc["@odata.nextLink"] = f"{base}/v1.0/users/delta?$skiptoken={skip}"
                else:
                    delta = secrets.token_urlsafe(24)
                    state.delta_tokens[delta] = {"seq": rnd.seq, "select": rnd.select}
                    doc["@odata.deltaLink"] = f"{base}/v1.0/users/delta?$deltatoken={delta}"
            doc["value"] = page
            return 200, doc, headers

        def _get_user(self, key, query):
            select = select_list(query.get("$select"))
            with state.lock:
                rec = state.live_user(key)
                data = dict(rec["data"]) if rec else None
            if data is None:
                return self._not_found(key)
            doc = {"@odata.context": f"{self._base()}/v1.0/$metadata#users" +
                                     (f"({','.join(select)})" if select else "") + "/$entity"}
            doc.update(pick(data, select or DEFAULT_USER_PROPERTIES))
            return 200, doc, []

        def _get_group(self, key, query):
            select = select_list(query.get("$select"))
            with state.lock:
                group = state.groups.get(key)
                group = dict(group) if group else None
            if group is None:
                return self._not_found(key)
            doc = {"@odata.context": f"{self._base()}/v1.0/$metadata#groups" +
                                     (f"({','.join(select)})" if select else "") + "/$entity"}
            doc.update(pick(group, select or [k for k in group if k != "members"]))
            return 200, doc, []

        def _member_of(self, url, key, cast, query):
            select = select_list(query.get("$select"))
            with state.lock:
                rec = state.live_user(key)
                groups = [dict(g) for g in state.transitive_groups(rec["data"]["id"])] if rec else None
                size = state.config["memberOfPageSize"] or state.config["pageSize"]
            if groups is None:
                return self._not_found(key)
            if "$top" in query:
                try:
                    size = int(query["$top"])
                except ValueError:
                    size = 0
                if not 1 <= size <= MAX_PAGE_SIZE:
                    return self._error(400, "Request_UnsupportedQuery",
                                       f"Invalid page size specified: '{query['$top']}'. Must be between 1 and "
                                       f"{MAX_PAGE_SIZE} inclusive.")
            offset = 0
            if "$skiptoken" in query:
                offset = decode_offset(query["$skiptoken"])
                if offset is None:
                    return self._error(400, "Request_BadRequest", "The skip token is not valid.")
            base = self._base()
            items = []
            for group in groups[offset:offset + size]:
                item = {} if cast else {"@odata.type": "#microsoft.graph.group"}
                item.update(pick(group, select or [k for k in group if k != "members"]))
                items.append(item)
            if cast:
                context = f"{base}/v1.0/$metadata#groups" + (f"({','.join(select)})" if select else "")
            else:
                context = f"{base}/v1.0/$metadata#directoryObjects"
            doc = {"@odata.context": context}
            counted = query.get("$count", "").lower() == "true" and \
                (self.headers.get("ConsistencyLevel") or "").lower() == "eventual"
            if counted and offset == 0:
                doc["@odata.count"] = len(groups)
            if offset + size < len(groups):
                kept = [p for p in url.query.split("&") if p and
                        urllib.parse.unquote(p.split("=")[0]).lower() != "$skiptoken"]
                kept.append(f"$skiptoken={encode_offset(offset + size)}")
                doc["@odata.nextLink"] = f"{base}{url.path}?{'&'.join(kept)}"
            doc["value"] = items
            return 200, doc, []

        # --- subscriptions --------------------------------------------------------------------

        def _expiry(self, raw):
            """(datetime, None) or (None, error tuple)."""
            when = parse_time(raw)
            if when is None:
                return None, self._error(400, "invalidRequest",
                                         "expirationDateTime is required and must be an ISO 8601 date and time.")
            now = utcnow()
            if when <= now:
                return None, self._error(400, "invalidRequest", "Subscription expiration must be in the future.")
            if when > now + datetime.timedelta(minutes=MAX_DIRECTORY_SUBSCRIPTION_MINUTES):
                return None, self._error(400, "invalidRequest",
                                         f"Subscription expiration can only be {MAX_DIRECTORY_SUBSCRIPTION_MINUTES} "
                                         f"minutes in the future.")
            return when, None

        def _validate(self, url, kind):
            result = validation_handshake(url)
            state.record({"method": "POST", "path": url, "query": "validationToken=...", "status": result["status"],
                          "outbound": kind})
            return result

        def _subscriptions(self, rest, body):
            base = self._base()
            method = self.command
            if not rest and method == "GET":
                with state.lock:
                    subs = [public_subscription(s, client_state=False)
                            for s in state.live_subscriptions().values()]
                return 200, {"@odata.context": f"{base}/v1.0/$metadata#subscriptions", "value": subs}, []
            if not rest and method == "POST":
                return self._create_subscription(body)
            if len(rest) != 1:
                return self._error(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.")
            sid = rest[0]
            with state.lock:
                sub = state.live_subscriptions().get(sid)
                sub = dict(sub) if sub else None
            if sub is None:
                return self._error(404, "ResourceNotFound", f"The object was not found: subscription '{sid}'.")
            if method == "GET":
                doc = {"@odata.context": f"{base}/v1.0/$metadata#subscriptions/$entity"}
                doc.update(public_subscription(sub, client_state=False))
                return 200, doc, []
            if method == "DELETE":
                with state.lock:
                    state.subscriptions.pop(sid, None)
                return 204, None, []
            if method == "PATCH":
                doc = self._json(body)
                if doc is None:
                    return self._error(400, "BadRequest", "The request body is not a JSON object.")
                when, problem = self._expiry(doc.get("expirationDateTime"))
                if problem:
                    return problem
                if doc.get("notificationUrl") and doc["notificationUrl"] != sub["notificationUrl"]:
                    result = self._validate(doc["notificationUrl"], "validation")
                    if not result["ok"]:
                        return self._validation_failed()
                    sub["notificationUrl"] = doc["notificationUrl"]
                sub["expirationDateTime"] = graph_time(when)
                sub["_expires"] = when
                with state.lock:
                    if sid in state.subscriptions:
                        state.subscriptions[sid] = sub
                out = {"@odata.context": f"{base}/v1.0/$metadata#subscriptions/$entity"}
                out.update(public_subscription(sub))
                return 200, out, []
            return self._error(405, "MethodNotAllowed", f"The HTTP method '{method}' is not allowed.")

        def _validation_failed(self):
            return self._error(400, "ValidationError",
                               "Subscription validation request failed. Notification endpoint must respond with "
                               "200 OK to validation request.")

        def _create_subscription(self, body):
            doc = self._json(body)
            if doc is None:
                return self._error(400, "BadRequest", "The request body is not a JSON object.")
            for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
                if not isinstance(doc.get(name), str) or not doc[name].strip():
                    return self._error(400, "invalidRequest", f"The property '{name}' is required.")
            resource = doc["resource"].strip().lstrip("/")
            parts = resource.split("/")
            if parts[0].lower() not in ("users", "groups") or len(parts) > 2:
                return self._error(400, "invalidRequest", f"Resource '{doc['resource']}' is not supported.")
            kinds = [c.strip() for c in doc["changeType"].split(",")]
            if not kinds or any(c not in ("created", "updated", "deleted") for c in kinds):
                return self._error(400, "invalidRequest", f"Invalid changeType '{doc['changeType']}'.")
            client_state = doc.get("clientState")
            if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
                return self._error(400, "invalidRequest", "clientState must be a string of at most 128 characters.")
            when, problem = self._expiry(doc["expirationDateTime"])
            if problem:
                return problem
            for name in ("notificationUrl", "lifecycleNotificationUrl"):
                if doc.get(name):
                    if not self._validate(doc[name], "validation")["ok"]:
                        return self._validation_failed()
            sid = str(uuid.uuid4())
            sub = {"id": sid, "resource": doc["resource"], "applicationId": state.client_id,
                   "changeType": doc["changeType"], "clientState": client_state,
                   "notificationUrl": doc["notificationUrl"], "notificationQueryOptions": None,
                   "lifecycleNotificationUrl": doc.get("lifecycleNotificationUrl"),
                   "expirationDateTime": graph_time(when), "creatorId": state.creator_id,
                   "includeResourceData": bool(doc.get("includeResourceData", False)),
                   "latestSupportedTlsVersion": doc.get("latestSupportedTlsVersion") or "v1_2",
                   "encryptionCertificate": doc.get("encryptionCertificate"),
                   "encryptionCertificateId": doc.get("encryptionCertificateId"),
                   "notificationUrlAppId": doc.get("notificationUrlAppId"),
                   "notificationContentType": "application/json", "_expires": when}
            with state.lock:
                state.subscriptions[sid] = sub
            out = {"@odata.context": f"{self._base()}/v1.0/$metadata#subscriptions/$entity"}
            out.update(public_subscription(sub))
            return 201, out, []

        # --- control --------------------------------------------------------------------------

        def _control(self, url, body):
            path, method = url.path, self.command
            parts = path.strip("/").split("/")
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            if path == "/_graph/validate" and method == "POST":
                doc = self._json(body)
                if not doc or not isinstance(doc.get("url"), str):
                    return self._send(400, {"error": "url expected"})
                return self._send(200, self._validate(doc["url"], "validation"))
            if path == "/_graph/notify" and method == "POST":
                return self._notify(self._json(body))
            if len(parts) == 3 and parts[1] == "users":
                answer = self._control_user(parts[2], method, body, query)
            else:
                with state.lock:
                    answer = self._control_state(path, parts, method, body)
            self._send(*answer)

        def _control_state(self, path, parts, method, body):
            """(status, body) of a control request that only reads or changes the state; the
            lock is held."""
            if path == "/_graph/health":
                return 200, {"status": "ok", "seq": state.seq}
            if path == "/_graph/log" and method == "GET":
                return 200, list(state.log)
            if path == "/_graph/log" and method == "DELETE":
                state.log.clear()
                return (204,)
            if path == "/_graph/users" and method == "GET":
                users = [dict(r["data"]) for r in state.users.values() if r["removed"] is None]
                removed = {u: r["removed"] for u, r in state.users.items() if r["removed"]}
                return 200, {"users": users, "removed": removed, "seq": state.seq}
            if len(parts) == 3 and parts[1] == "groups" and method == "DELETE":
                return (204 if state.groups.pop(parts[2], None) else 404,)
            if len(parts) == 3 and parts[1] == "groups" and method == "PUT":
                doc = self._json(body)
                if doc is None or not isinstance(doc.get("members", []), list):
                    return 400, {"error": "a JSON object with a members list expected"}
                group = {k: v for k, v in doc.items() if k != "id"}
                group["id"] = parts[2]
                group["members"] = [str(m) for m in doc.get("members", [])]
                existed = parts[2] in state.groups
                state.groups[parts[2]] = group
                return 200 if existed else 201, group
            if path == "/_graph/faults" and method == "POST":
                doc = self._json(body)
                if doc is None or doc.get("kind") not in ("gone", "resync", "throttle", "unavailable"):
                    return 400, {"error": "kind must be gone, resync, throttle or unavailable"}
                state.faults.append(doc)
                return (204,)
            if path == "/_graph/faults" and method == "DELETE":
                state.faults.clear()
                return (204,)
            if path == "/_graph/config" and method == "GET":
                return 200, dict(state.config)
            if path == "/_graph/config" and method == "POST":
                doc = self._json(body)
                unknown = sorted(set(doc) - set(DEFAULT_CONFIG)) if doc is not None else ["<not a JSON object>"]
                if unknown:
                    return 400, {"error": f"unknown config {unknown}"}
                problem = config_problem(doc)
                if problem:
                    return 400, {"error": problem}
                state.config.update(doc)
                return (204,)
            if path == "/_graph/revoke-tokens" and method == "POST":
                state.tokens.clear()
                return (204,)
            if path == "/_graph/reset" and method == "POST":
                state.reset()
                state.log.clear()
                return (204,)
            if path == "/_graph/subscriptions" and method == "GET":
                return 200, [public_subscription(s) for s in state.live_subscriptions().values()]
            return 404, {"error": "no such control"}

        def _control_user(self, uid, method, body, query):
            doc = self._json(body) if method in ("PUT", "PATCH") else {}
            if doc is None:
                return 400, {"error": "a JSON object expected"}
            with state.lock:
                if method == "PUT":
                    status, changed = state.put_user(uid, doc)
                    return status, {"user": dict(state.users[uid]["data"]), "changed": changed, "seq": state.seq}
                if method == "PATCH":
                    changed = state.patch_user(uid, doc)
                    if changed is None:
                        return 404, {"error": f"no user {uid}"}
                    return 200, {"user": dict(state.users[uid]["data"]), "changed": changed, "seq": state.seq}
                if method == "DELETE":
                    hard = query.get("hard", "false").lower() in ("1", "true", "yes")
                    reason = state.delete_user(uid, hard)
                    if reason is None:
                        return 404, {"error": f"no user {uid} to delete that way"}
                    return 200, {"removed": reason, "seq": state.seq}
                if method == "GET":
                    rec = state.users.get(uid)
                    if rec is None:
                        return 404, {"error": f"no user {uid}"}
                    return 200, {"user": dict(rec["data"]), "removed": rec["removed"]}
            return 405, {"error": "method not allowed"}

        def _notify(self, doc):
            if not doc or not isinstance(doc.get("ids"), list) or not doc["ids"]:
                return self._send(400, {"error": "ids (a non-empty list) expected"})
            resource = str(doc.get("resource", "users")).lower()
            if resource not in ("users", "groups"):
                return self._send(400, {"error": "resource must be users or groups"})
            sub = None
            if doc.get("subscriptionId"):
                with state.lock:
                    sub = state.live_subscriptions().get(doc["subscriptionId"])
                    sub = dict(sub) if sub else None
            url = doc.get("url") or (sub or {}).get("notificationUrl")
            if not url:
                return self._send(400, {"error": "url, or the subscriptionId of a live subscription, expected"})
            client_state = doc["clientState"] if "clientState" in doc else (sub or {}).get("clientState")
            sid = doc.get("subscriptionId") or str(uuid.uuid4())
            expires = (sub or {}).get("expirationDateTime") or graph_time(utcnow() + datetime.timedelta(days=1))
            kind, odata_type = ("Users", "#Microsoft.Graph.User") if resource == "users" else \
                ("Groups", "#Microsoft.Graph.Group")
            value = []
            for oid in doc["ids"]:
                item = {"subscriptionId": sid}
                if client_state is not None:
                    item["clientState"] = client_state
                item.update({"changeType": doc.get("changeType", "updated"), "resource": f"{kind}/{oid}",
                             "subscriptionExpirationDateTime": expires,
                             "resourceData": {"@odata.type": odata_type, "@odata.id": f"{kind}/{oid}", "id": oid},
                             "tenantId": doc.get("tenantId", state.tenant)})
                value.append(item)
            payload = {"value": value}
            with state.lock:
                timeout = state.config["notifyTimeoutMs"] / 1000
            status, _, text, elapsed, error = http_post(url, json.dumps(payload).encode(),
                                                        "application/json; charset=utf-8", timeout)
            state.record({"method": "POST", "path": url, "query": "", "status": status, "outbound": "notification"})
            self._send(200, {"status": status, "body": text[:2000], "elapsedMs": elapsed, "error": error,
                             "payload": payload})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--tenant", default=DEFAULT_TENANT)
    ap.add_argument("--token-ttl", type=int, default=3599)
    args = ap.parse_args()

    state = State(args.client_id, args.client_secret, args.tenant, args.token_ttl)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    print(f"Graph fixture on http://127.0.0.1:{args.port} (tenant {args.tenant})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
