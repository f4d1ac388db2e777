"""A quick check of the Graph fixture (a few seconds): starts it on a free port beside a small
notification receiver, drives every endpoint the Worker will use and compares the answers with
the documented samples in samples/. Run: python tests/graphfix/selftest.py"""

import datetime
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from harness import start_graphfix, stop_group  # noqa: E402

CLIENT_ID = "graphfix-selftest"
CLIENT_SECRET = "selftest-secret"
TENANT = "2f4a9a0e-7f3c-4f2b-9d3e-3c1d5b6a7e80"
SCOPE = "https://graph.microsoft.com/.default"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(method, url, body=None, headers=None, form=False):
    """(status, parsed body, headers)."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            raw, status, got = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        raw, status, got = err.read(), err.code, err.headers
    return status, (json.loads(raw) if raw else None), got


def sample(name):
    return json.loads((HERE / "samples" / name).read_text())


class Receiver:
    """A notification endpoint: answers Graph's validation handshake (decoded token, text/plain)
    on /ok, answers it still URL-encoded on /encoded, and keeps every notification it gets."""

    def __init__(self):
        self.notifications = []
        self.validations = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                raw_token = [p.split("=", 1)[1] for p in url.query.split("&") if p.startswith("validationToken=")]
                if raw_token:
                    receiver.validations.append({"path": url.path, "contentType": self.headers.get("Content-Type")})
                    token = raw_token[0] if url.path == "/encoded" else urllib.parse.unquote(raw_token[0])
                    out = token.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                else:
                    receiver.notifications.append({"path": url.path, "body": json.loads(body),
                                                   "contentType": self.headers.get("Content-Type")})
                    out = b""
                    self.send_response(202)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok  {what}")


def run(base, receiver):
    token_url = f"{base}/{TENANT}/oauth2/v2.0/token"
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials",
             "scope": SCOPE}

    # --- identity platform ---
    status, doc, _ = call("POST", token_url, {**creds, "client_secret": "wrong"}, form=True)
    check(status == 401 and doc["error"] == "invalid_client" and doc["error_codes"] == [7000215],
          "token: a wrong secret is 401 invalid_client")
    status, doc, _ = call("POST", token_url, {**creds, "scope": "User.Read.All"}, form=True)
    check(status == 400 and doc["error"] == "invalid_scope", "token: a scope without /.default is 400 invalid_scope")
    check(set(doc) == set(sample("token_error.json")), "token: error shape as the documented one")
    status, doc, _ = call("POST", f"{base}/other-tenant/oauth2/v2.0/token", creds, form=True)
    check(status == 400, "token: another tenant is refused")
    status, doc, _ = call("POST", token_url, creds, form=True)
    check(status == 200 and doc["token_type"] == "Bearer" and doc["expires_in"] > 0,
          "token: client credentials grant issues a bearer token")
    check(set(doc) == set(sample("token_response.json")), "token: answer shape as the documented one")
    auth = {"Authorization": f"Bearer {doc['access_token']}"}

    status, doc, _ = call("GET", f"{base}/v1.0/users/delta")
    check(status == 401 and doc["error"]["code"] == "InvalidAuthenticationToken"
          and {"date", "request-id", "client-request-id"} <= set(doc["error"]["innerError"]),
          "graph: no token is 401 InvalidAuthenticationToken in Graph's error shape")
    check(set(doc) == set(sample("error_response.json")) and
          set(doc["error"]) == set(sample("error_response.json")["error"]), "graph: error shape as documented")

    # --- a directory: five users, nested groups ---
    people = {f"u{i}": {"userPrincipalName": f"user{i}@contoso.example", "givenName": f"Given{i}",
                        "surname": f"Sur{i}", "displayName": f"Given{i} Sur{i}", "mail": f"user{i}@contoso.example",
                        "accountEnabled": True, "department": "Sales", "jobTitle": "Agent",
                        "employeeId": f"E{i:03}"} for i in range(1, 6)}
    for uid, props in people.items():
        status, _, _ = call("PUT", f"{base}/_graph/users/{uid}", props)
        check(status == 201, f"control: user {uid} created")
    groups = {"g-inner": ["u1", "u2"], "g-outer": ["g-inner", "u3"], "g-top": ["g-outer"],
              "g-a": ["g-b", "u5"], "g-b": ["g-a"], "g-other": ["u4"]}
    for gid, members in groups.items():
        status, _, _ = call("PUT", f"{base}/_graph/groups/{gid}", {"displayName": gid.upper(), "members": members})
        check(status == 201, f"control: group {gid} created")

    # --- initial round, two a page ---
    select = "displayName,givenName,surname,mail,accountEnabled,employeeId"
    url = f"{base}/v1.0/users/delta?$select={select}"
    pages, seen = [], []
    while True:
        status, doc, headers = call("GET", url, headers={**auth, "Prefer": "odata.maxpagesize=2"})
        check(status == 200 and headers.get("Preference-Applied") == "odata.maxpagesize=2",
              f"delta: page {len(pages) + 1} answered, maxpagesize applied")
        pages.append(doc)
        seen += doc["value"]
        if "@odata.nextLink" in doc:
            url = doc["@odata.nextLink"]
            check(url.startswith(f"{base}/v1.0/users/delta?$skiptoken="), "delta: nextLink is absolute with $skiptoken")
            continue
        delta_link = doc["@odata.deltaLink"]
        check(delta_link.startswith(f"{base}/v1.0/users/delta?$deltatoken="),
              "delta: deltaLink is absolute with $deltatoken")
        break
    check([len(p["value"]) for p in pages] == [2, 2, 1], "delta: 5 users in pages of 2, 2, 1")
    check(sorted(u["id"] for u in seen) == sorted(people), "delta: every user once")
    check(all(set(u) == set(select.split(",")) | {"id"} for u in seen), "delta: only the selected properties and id")
    check(pages[0]["@odata.context"] == f"{base}/v1.0/$metadata#users({select})",
          "delta: first page context names the selection")
    for page, name in ((pages[0], "users_delta_initial.json"), (pages[1], "users_delta_next.json"),
                       (pages[-1], "users_delta_final.json")):
        check(set(page) == set(sample(name)), f"delta: page keys as in {name}")
    status, again, _ = call("GET", pages[0]["@odata.nextLink"], headers={**auth, "Prefer": "odata.maxpagesize=2"})
    check(again["value"] == pages[1]["value"], "delta: a nextLink fetched again answers the same page")

    # --- changes ---
    call("PATCH", f"{base}/_graph/users/u1", {"displayName": "Renamed One", "jobTitle": "Lead"})
    call("PATCH", f"{base}/_graph/users/u2", {"department": "Support"})  # not selected: not tracked
    call("DELETE", f"{base}/_graph/users/u3?hard=false")
    call("DELETE", f"{base}/_graph/users/u4?hard=true")
    status, doc, _ = call("GET", delta_link, headers=auth)
    by_id = {u["id"]: u for u in doc["value"]}
    check(status == 200 and sorted(by_id) == ["u1", "u3", "u4"], "deltaLink: only the changed users")
    check(by_id["u1"] == {"displayName": "Renamed One", "id": "u1"}, "deltaLink: a patched user with only its changes")
    check(by_id["u3"] == {"id": "u3", "@removed": {"reason": "changed"}}, "deltaLink: soft delete is @removed changed")
    check(by_id["u4"] == {"id": "u4", "@removed": {"reason": "deleted"}}, "deltaLink: hard delete is @removed deleted")
    check(set(doc) == set(sample("users_delta_changes.json")), "deltaLink: keys as in users_delta_changes.json")
    for item in sample("users_delta_changes.json")["value"] + sample("users_delta_initial.json")["value"]:
        if "@removed" in item:
            check(set(item) == set(by_id["u3"]) and set(item["@removed"]) == {"reason"},
                  "deltaLink: @removed entry shaped as documented")
            break
    next_delta = doc["@odata.deltaLink"]
    status, doc, _ = call("GET", next_delta, headers=auth)
    check(doc["value"] == [] and "@odata.deltaLink" in doc, "deltaLink: nothing changed, empty value and a deltaLink")
    check(set(doc) == set(sample("users_delta_empty.json")), "deltaLink: keys as in users_delta_empty.json")
    quiet_delta = doc["@odata.deltaLink"]

    # documented default (every selected property) and Prefer: return=minimal
    call("POST", f"{base}/_graph/config", {"changedOnly": False})
    call("PATCH", f"{base}/_graph/users/u5", {"mail": "five@contoso.example"})
    status, doc, _ = call("GET", quiet_delta, headers=auth)
    check(set(doc["value"][0]) == set(select.split(",")) | {"id"}, "changedOnly false: every selected property")
    status, doc, _ = call("GET", quiet_delta, headers={**auth, "Prefer": "return=minimal"})
    check(doc["value"] == [{"mail": "five@contoso.example", "id": "u5"}], "Prefer return=minimal: only the change")
    call("POST", f"{base}/_graph/config", {"changedOnly": True})
    current = doc["@odata.deltaLink"]

    # restore a soft-deleted user: back in full
    call("PUT", f"{base}/_graph/users/u3", people["u3"])
    status, doc, _ = call("GET", current, headers=auth)
    check(doc["value"] == [{**{k: people["u3"][k] for k in select.split(",")}, "id": "u3"}],
          "deltaLink: a restored user comes back in full")
    current = doc["@odata.deltaLink"]

    # empty pages
    call("POST", f"{base}/_graph/config", {"emptyPages": True, "pageSize": 2})
    url, sizes = f"{base}/v1.0/users/delta?$select=displayName", []
    while url:
        status, doc, _ = call("GET", url, headers=auth)
        sizes.append(len(doc["value"]))
        url = doc.get("@odata.nextLink")
    check(sizes == [0, 2, 0, 2], "emptyPages: an empty page (with a nextLink) before each page of users")
    call("POST", f"{base}/_graph/config", {"emptyPages": False, "pageSize": 100})
    status, doc, _ = call("GET", f"{base}/v1.0/users/delta?$deltatoken=latest", headers=auth)
    check(doc["value"] == [] and "@odata.deltaLink" in doc, "delta: $deltatoken=latest gives a deltaLink only")

    # --- faults ---
    call("POST", f"{base}/_graph/faults", {"kind": "gone"})
    status, doc, headers = call("GET", current, headers=auth)
    check(status == 410 and doc["error"]["code"] == "syncStateNotFound", "fault gone: 410 syncStateNotFound")
    location = headers.get("Location")
    check(location and location.endswith("$deltatoken="), "fault gone: Location of the initial query")
    status, doc, _ = call("GET", current, headers=auth)
    check(status == 410, "fault gone: the token stays expired")
    status, doc, _ = call("GET", location, headers=auth)
    check(status == 200 and len(doc["value"]) == 4, "fault gone: the Location starts a full round again")
    call("POST", f"{base}/_graph/faults", {"kind": "resync"})
    status, doc, _ = call("GET", doc["@odata.deltaLink"], headers=auth)
    check(status == 410 and doc["error"]["code"] == "resyncRequired", "fault resync: 410 resyncRequired")
    call("POST", f"{base}/_graph/faults", {"kind": "throttle", "retryAfter": 2})
    status, doc, headers = call("GET", f"{base}/v1.0/users/delta", headers=auth)
    check(status == 429 and headers.get("Retry-After") == "2" and doc["error"]["code"] == "TooManyRequests",
          "fault throttle: 429 TooManyRequests with Retry-After 2")
    status, doc, _ = call("GET", f"{base}/v1.0/users/delta", headers=auth)
    check(status == 200, "fault throttle: once only")

    # --- transitiveMemberOf ---
    call("POST", f"{base}/_graph/config", {"pageSize": 2})
    url, names = f"{base}/v1.0/users/u1/transitiveMemberOf/microsoft.graph.group?$select=id,displayName", []
    first = None
    while url:
        status, doc, _ = call("GET", url, headers=auth)
        first = first or doc
        check(status == 200 and all(set(g) == {"id", "displayName"} for g in doc["value"]),
              "memberOf: a page of groups with the selected properties")
        names += [g["id"] for g in doc["value"]]
        url = doc.get("@odata.nextLink")
        if url:
            check(url.startswith(f"{base}/v1.0/users/u1/transitiveMemberOf/microsoft.graph.group?")
                  and "$select=id,displayName" in url and "$skiptoken=" in url,
                  "memberOf: nextLink absolute, keeps $select, adds $skiptoken")
    check(sorted(names) == ["g-inner", "g-outer", "g-top"], "memberOf: direct and nested groups")
    check(first["@odata.context"] == f"{base}/v1.0/$metadata#groups(id,displayName)", "memberOf: cast context")
    check(set(first) - {"@odata.nextLink"} <= set(sample("transitive_member_of.json")),
          "memberOf: keys as in transitive_member_of.json")
    status, doc, _ = call("GET", f"{base}/v1.0/users/u5/transitiveMemberOf?$count=true&$top=10",
                          headers={**auth, "ConsistencyLevel": "eventual"})
    check(sorted(g["id"] for g in doc["value"]) == ["g-a", "g-b"] and doc["@odata.count"] == 2
          and all(g["@odata.type"] == "#microsoft.graph.group" for g in doc["value"]),
          "memberOf: a membership cycle ends, $count counts, uncast items are typed")
    status, doc, _ = call("GET", f"{base}/v1.0/users/u4/transitiveMemberOf", headers=auth)
    check(status == 404 and doc["error"]["code"] == "Request_ResourceNotFound", "memberOf: a deleted user is 404")
    status, doc, _ = call("GET", f"{base}/v1.0/users/user1@contoso.example?$select=displayName", headers=auth)
    check(status == 200 and doc["displayName"] == "Renamed One" and doc["id"] == "u1", "users: one by UPN")
    call("POST", f"{base}/_graph/config", {"pageSize": 100})

    # --- subscriptions and notifications ---
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    sub_body = {"changeType": "updated,deleted", "notificationUrl": f"{receiver.url}/ok", "resource": "users",
                "expirationDateTime": soon.isoformat().replace("+00:00", "Z"), "clientState": "s3cret"}
    status, doc, _ = call("POST", f"{base}/v1.0/subscriptions", {**sub_body, "notificationUrl": f"{receiver.url}/encoded"},
                          headers=auth)
    check(status == 400 and doc["error"]["code"] == "ValidationError",
          "subscription: an endpoint answering the token still encoded fails validation")
    far = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=41760, seconds=30)
    status, doc, _ = call("POST", f"{base}/v1.0/subscriptions",
                          {**sub_body, "expirationDateTime": far.isoformat()}, headers=auth)
    check(status == 400, "subscription: more than 41760 minutes ahead is refused")
    began = len(receiver.validations)
    status, sub, _ = call("POST", f"{base}/v1.0/subscriptions", sub_body, headers=auth)
    check(status == 201 and sub["clientState"] == "s3cret" and sub["applicationId"] == CLIENT_ID,
          "subscription: created after the handshake")
    check(receiver.validations[began:] == [{"path": "/ok", "contentType": "text/plain; charset=utf-8"}],
          "subscription: the handshake was a text/plain POST to the notificationUrl")
    check(set(sample("subscription_created.json")) <= set(sub), "subscription: has every documented property")
    later = soon + datetime.timedelta(days=2)
    status, doc, _ = call("PATCH", f"{base}/v1.0/subscriptions/{sub['id']}",
                          {"expirationDateTime": later.isoformat()}, headers=auth)
    check(status == 200 and doc["expirationDateTime"].startswith(f"{later:%Y-%m-%dT%H:%M:%S}"),
          "subscription: renewed by PATCH")
    status, doc, _ = call("GET", f"{base}/v1.0/subscriptions", headers=auth)
    check([s["id"] for s in doc["value"]] == [sub["id"]] and doc["value"][0]["clientState"] is None,
          "subscription: listed, clientState withheld")
    check(set(doc) == set(sample("subscriptions_list.json")), "subscription: list keys as documented")

    status, doc, _ = call("POST", f"{base}/_graph/notify", {"subscriptionId": sub["id"], "ids": ["u1", "u2"]})
    check(status == 200 and doc["status"] == 202, "notify: posted, the receiver answered 202")
    got = receiver.notifications[-1]
    check(got["contentType"].startswith("application/json") and len(got["body"]["value"]) == 2,
          "notify: one collection with both changes")
    item = got["body"]["value"][0]
    check(list(item) == ["subscriptionId", "clientState", "changeType", "resource", "subscriptionExpirationDateTime",
                         "resourceData", "tenantId"]
          and item["resourceData"] == {"@odata.type": "#Microsoft.Graph.User", "@odata.id": "Users/u1", "id": "u1"}
          and item["clientState"] == "s3cret" and item["subscriptionId"] == sub["id"] and item["tenantId"] == TENANT,
          "notify: the documented change notification shape")
    documented = sample("change_notification.json")["value"][0]
    check(set(item) <= set(documented) and set(item["resourceData"]) <= set(documented["resourceData"]),
          "notify: every property is one of the documented ones")
    status, doc, _ = call("POST", f"{base}/_graph/notify",
                          {"url": f"{receiver.url}/hook", "clientState": "x", "resource": "groups",
                           "changeType": "updated", "ids": ["g-top"]})
    check(receiver.notifications[-1]["body"]["value"][0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Group",
          "notify: groups too, to any url")
    status, doc, _ = call("POST", f"{base}/_graph/validate", {"url": f"{receiver.url}/ok"})
    check(doc["ok"] and all(doc["checks"].values()), "validate: a correct endpoint passes")
    status, doc, _ = call("POST", f"{base}/_graph/validate", {"url": f"{receiver.url}/encoded"})
    check(not doc["ok"] and not doc["checks"]["bodyMatches"], "validate: an encoded echo fails")
    status, _, _ = call("DELETE", f"{base}/v1.0/subscriptions/{sub['id']}", headers=auth)
    check(status == 204, "subscription: deleted")
    status, doc, _ = call("GET", f"{base}/v1.0/subscriptions/{sub['id']}", headers=auth)
    check(status == 404, "subscription: gone after delete")

    # --- the log, revocation ---
    status, log, _ = call("GET", f"{base}/_graph/log")
    check(any(e["path"] == "/v1.0/users/delta" and e["status"] == 429 for e in log)
          and any(e.get("outbound") == "notification" for e in log), "log: requests and outbound POSTs recorded")
    call("POST", f"{base}/_graph/revoke-tokens")
    status, doc, _ = call("GET", f"{base}/v1.0/users/delta", headers=auth)
    check(status == 401, "revoke-tokens: issued tokens stop working")


def main():
    began = time.monotonic()
    port = free_port()
    receiver = Receiver()
    with tempfile.TemporaryDirectory(prefix="graphfix-selftest-") as tmp:
        proc = start_graphfix(port, CLIENT_ID, CLIENT_SECRET, Path(tmp) / "graphfix.log", tenant=TENANT)
        try:
            run(f"http://127.0.0.1:{port}", receiver)
        finally:
            stop_group(proc)
            receiver.stop()
    print(f"graphfix selftest passed in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
