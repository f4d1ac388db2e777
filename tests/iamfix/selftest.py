"""A quick check of the IAM notice receiver (about a second): signs notices here, as the Standard
Webhooks specification describes, posts them to a receiver started on a free port, and checks
what it recorded: verified when signed right, not verified when the body was changed after
signing, signed with another key, or sent too late. Run: python tests/iamfix/selftest.py"""

import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from harness import start_iamfix, stop_group  # noqa: E402

# The signing example of the Standard Webhooks reference library's tests
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py, test_sign_function).
VECTOR = {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
          "timestamp": 1614265330, "body": '{"test": 2432232314}',
          "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


def check(ok, what):
    if not ok:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(secret, msg_id, timestamp, body):
    """`webhook-signature` for a delivery: v1, then base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"
    keyed with the bytes of the secret's base64."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def call(method, url, body=None, headers=None):
    """(status, parsed body, headers); `body` bytes are sent as they are, anything else as JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw, status, got = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        raw, status, got = err.read(), err.code, err.headers
    return status, (json.loads(raw) if raw else None), got


def notice(seq):
    doc = {"type": "cxone.role.sync.succeeded", "timestamp": "2026-11-22T09:49:17.000Z",
           "data": {"who": {"userName": "a@x.io"}, "rolesBefore": ["Agent"], "rolesAfter": ["Supervisor"],
                    "trigger": "role_sync", "outcome": "success", "auditSeq": seq, "auditHash": "ab" * 32}}
    return json.dumps(doc, separators=(",", ":")).encode()


def deliver(base, body, msg_id, secret=None, timestamp=None, signature=None, drop=None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": signature or sign(secret, msg_id, timestamp, body)}
    if drop:
        del headers[drop]
    status, _, got = call("POST", f"{base}/notices", body, headers)
    _, received, _ = call("GET", f"{base}/_iam/received")
    return status, received[-1], got


def run(base, secret, rotated):
    status, doc, _ = call("GET", f"{base}/_iam/health")
    check(status == 200 and doc == {"status": "ok"}, "health")

    body = notice(1)
    status, got, _ = deliver(base, body, "msg_0001", secret)
    check(status == 200 and got["verified"] and got["reason"] is None, "a signed notice is recorded as verified")
    check(got["body"] == body.decode() and got["json"]["data"]["auditSeq"] == 1
          and got["headers"]["webhook-id"] == "msg_0001" and got["status"] == 200 and not got["duplicate"],
          "the delivery is kept: headers, body as sent, parsed JSON, status")

    ts = int(time.time())
    tampered = body.replace(b"Supervisor", b"Admin")
    status, got, _ = deliver(base, tampered, "msg_0002", signature=sign(secret, "msg_0002", ts, body), timestamp=ts)
    check(status == 200 and not got["verified"] and got["reason"] == "no v1 signature matches",
          "a notice changed after signing is recorded as not verified (and still answered 200)")
    _, got, _ = deliver(base, body, "msg_0003", rotated)
    check(got["verified"], "the second --secret verifies too (rotation)")
    _, got, _ = deliver(base, body, "msg_0004", new_secret())
    check(not got["verified"], "another key does not verify")
    ts = int(time.time())
    good = sign(secret, "msg_0005", ts, body)
    listed = f"v1a,{good[3:]} v1,{base64.b64encode(b'x' * 32).decode()} {good} v2,{good[3:]}"
    _, got, _ = deliver(base, body, "msg_0005", signature=listed, timestamp=ts)
    check(got["verified"], "one good v1 among several signatures verifies")
    _, got, _ = deliver(base, body, "msg_0006", signature=f"v1a,{good[3:]}", timestamp=ts)
    check(not got["verified"], "a signature of another version is not a v1 signature")
    _, got, _ = deliver(base, body, "msg_0007", secret, timestamp=int(time.time()) - 400)
    check(not got["verified"] and "off" in got["reason"], f"a stale timestamp does not verify ({got['reason']})")
    _, got, _ = deliver(base, body, "msg_0008", secret, drop="webhook-signature")
    check(not got["verified"] and got["reason"] == "missing webhook-signature header", "a missing header")
    _, got, _ = deliver(base, body, "msg_0001", secret)
    check(got["verified"] and got["duplicate"], "the same webhook-id again is marked duplicate")

    # --- down ---
    status, _, _ = call("POST", f"{base}/_iam/down", {"status": 503, "count": 2, "retryAfter": "2"})
    check(status == 204, "down: accepted")
    # The sender retries the same notice (same webhook-id) until it is taken.
    answers = [deliver(base, notice(9), "msg_retried", secret) for _ in range(4)]
    check([a[0] for a in answers] == [503, 503, 200, 200] and answers[0][2].get("Retry-After") == "2",
          "down with a count: that many answers of the status (Retry-After given), then 200 again")
    check([a[1]["status"] for a in answers] == [503, 503, 200, 200] and all(a[1]["verified"] for a in answers),
          "deliveries answered down are kept with their status")
    check([a[1]["duplicate"] for a in answers] == [False, False, False, True],
          "only a delivery after one answered 2xx is a duplicate")
    call("POST", f"{base}/_iam/down", {"status": 500})
    statuses = [deliver(base, body, f"msg_open{i}", secret)[0] for i in range(3)]
    call("DELETE", f"{base}/_iam/down")
    after = deliver(base, body, "msg_open9", secret)[0]
    check(statuses == [500, 500, 500] and after == 200, "down without a count: until DELETE /_iam/down")
    status, _, _ = call("POST", f"{base}/_iam/down", {"status": "soon"})
    check(status == 400, "down: a bad body is refused")

    status, _, _ = call("GET", f"{base}/notices")
    check(status == 405, "GET /notices is not a delivery")
    call("DELETE", f"{base}/_iam/received")
    _, received, _ = call("GET", f"{base}/_iam/received")
    check(received == [], "DELETE /_iam/received forgets them")


def main():
    began = time.monotonic()
    v = VECTOR
    check(sign(v["secret"], v["id"], v["timestamp"], v["body"].encode()) == v["signature"],
          "this selftest signs the reference library's example as published")
    secret, rotated = new_secret(), new_secret()
    with tempfile.TemporaryDirectory(prefix="iamfix-selftest-") as tmp:
        port = free_port()
        proc = start_iamfix(port, [secret, rotated], Path(tmp) / "iamfix.log")
        try:
            run(f"http://127.0.0.1:{port}", secret, rotated)
        finally:
            stop_group(proc)
        # The published example, timestamp and all: verified by a receiver that lets it be old.
        port = free_port()
        proc = start_iamfix(port, v["secret"], Path(tmp) / "iamfix.log", tolerance=10**10)
        try:
            base = f"http://127.0.0.1:{port}"
            _, got, _ = deliver(base, v["body"].encode(), v["id"], timestamp=v["timestamp"], signature=v["signature"])
            check(got["verified"], "the receiver verifies the reference library's example")
        finally:
            stop_group(proc)
    print(f"iamfix selftest passed in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
