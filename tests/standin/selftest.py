"""A quick check of the stand-in's versioning (a few seconds): starts it (scim2-server behind
standin.py) and checks that ETags and If-Match go through, and that the concurrentChange fault
makes an If-Match PUT meet scim2-server's own 412.

Run with the venv's Python (scim2-server sits beside it):
    ~/.cache/cxone-scim/py-*/bin/python tests/standin/selftest.py [--port 48790]
(the stand-in on PORT, scim2-server on PORT + 1)."""

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


def check(ok, what):
    if not ok:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


class Client:
    def __init__(self, base):
        self.base = base
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                       "client_secret": CLIENT_SECRET}).encode()
        _, doc, _ = self.call("POST", "/oauth/token", raw=form,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.token = doc["access_token"]

    def call(self, method, path, body=None, headers=None, raw=None):
        """(status, parsed body, headers)."""
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/scim+json")
        if getattr(self, "token", None) and path.startswith("/scim/"):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=48790)
    args = ap.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="standin-selftest-") as tmp:
        proc = start_standin(args.port, CLIENT_ID, CLIENT_SECRET, Path(tmp) / "standin.log")
        try:
            run(Client(f"http://127.0.0.1:{args.port}"))
        finally:
            stop_group(proc)
    print(f"stand-in selftest passed in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
