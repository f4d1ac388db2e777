"""IAM notice receiver fixture: stands in for the IAM system's endpoint that cxone-scim posts its
signed role sync notices to. Checks each delivery's Standard Webhooks signature with the
secret(s) it was started with, keeps every delivery for the tests to read, and can be told to
fail. Stdlib only. The signature check follows the Standard Webhooks specification
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
"Signature scheme", "Webhook headers", "Verifying signatures"); nothing here is taken from
cxone-scim's own code.

Receiver
    POST   /notices              a notice: any body (JSON expected), with the headers
                                 webhook-id, webhook-timestamp (Unix seconds) and
                                 webhook-signature (a space-separated list of
                                 "<version>,<base64>"). It verifies when one "v1" signature
                                 equals base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
                                 compared in constant time, for the key of one --secret
                                 (the bytes of the base64 after "whsec_"), over the body exactly
                                 as received, and the timestamp is within --tolerance seconds
                                 of the fixture's clock. Answered 200 {"ok":true}, verified or
                                 not (unless /_iam/down says otherwise); every delivery is kept

Control (loopback, JSON)
    GET    /_iam/received        every delivery, oldest first: {"at" (ISO 8601 when received),
                                 "path", "headers" (names lowercased), "body" (the text as
                                 received), "json" (the body parsed, null when it is not JSON),
                                 "verified": bool, "reason" (why not verified, else null),
                                 "duplicate" (verified, and a verified delivery with this
                                 webhook-id was answered 2xx before), "status" (what it was
                                 answered)}
    DELETE /_iam/received        forget them (204)
    POST   /_iam/down            {"status":503,"count":N,"retryAfter":"2"}: answer the next N
                                 deliveries with that status (and Retry-After when given);
                                 without "count", every delivery until DELETE /_iam/down.
                                 Such deliveries are kept too, with their status (204)
    DELETE /_iam/down            answer 200 again (204)
    GET    /_iam/health          200 {"status":"ok"}

Usage: iamfix.py --port 8799 --secret whsec_... [--secret whsec_...] [--tolerance 300]
From Python: tests/harness.py start_iamfix(port, secret, log_path).
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PREFIX = "whsec_"


def decode_secret(text):
    """The HMAC key of a "whsec_<base64>" secret; ValueError when it is not one."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError('a secret starts with "whsec_"')
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX):], validate=True)
    except binascii.Error as err:
        raise ValueError(f"not base64 after whsec_: {err}") from None
    if not key:
        raise ValueError("empty key")
    return key


def expected_signature(key, msg_id, timestamp, body):
    """The v1 signature of a delivery: base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}"."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(keys, headers, body, now, tolerance):
    """(verified, reason): reason says why not, None when verified."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", timestamp),
                        ("webhook-signature", signatures)):
        if not value:
            return False, f"missing {name} header"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False, "webhook-timestamp is not an integer"
    if abs(now - sent_at) > tolerance:
        return False, f"webhook-timestamp is {now - sent_at} s off (tolerance {tolerance} s)"
    matched = False
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1" or not signature:
            continue
        for key in keys:
            # Every comparison is made, so that the time taken does not tell which one matched.
            if hmac.compare_digest(expected_signature(key, msg_id, timestamp, body).encode(), signature.encode()):
                matched = True
    if not matched:
        return False, "no v1 signature matches"
    return True, None


class State:
    def __init__(self, keys, tolerance):
        self.keys = keys
        self.tolerance = tolerance
        self.received = []
        self.seen_ids = set()
        self.down = None  # {"status", "count" (None: until cleared), "retryAfter"}
        self.lock = threading.Lock()

    def answer_for_next(self):
        """(status, headers) for the next delivery."""
        with self.lock:
            down = self.down
            if down is None:
                return 200, []
            if down["count"] is not None:
                down["count"] -= 1
                if down["count"] <= 0:
                    self.down = None
        headers = [("Retry-After", str(down["retryAfter"]))] if down.get("retryAfter") is not None else []
        return down["status"], headers


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # keep the test output quiet
            pass

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status, doc=None, headers=()):
            body = json.dumps(doc).encode() if doc is not None else b""
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _dispatch(self):
            path = urllib.parse.urlsplit(self.path).path
            body = self._body()
            if path == "/notices":
                if self.command != "POST":
                    return self._send(405, {"error": "POST only"}, [("Allow", "POST")])
                return self._notice(path, body)
            if path.startswith("/_iam/"):
                return self._control(path, body)
            self._send(404, {"error": "not_found"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def _notice(self, path, body):
            headers = {name.lower(): value for name, value in self.headers.items()}
            verified, reason = verify(state.keys, headers, body, int(time.time()), state.tolerance)
            status, extra = state.answer_for_next()
            try:
                text = body.decode()
            except UnicodeDecodeError:
                text = body.decode("latin-1")
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            with state.lock:
                msg_id = headers.get("webhook-id")
                duplicate = verified and msg_id in state.seen_ids
                if verified and status < 300:
                    state.seen_ids.add(msg_id)
                state.received.append({
                    "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                    "path": path, "headers": headers, "body": text, "json": parsed,
                    "verified": verified, "reason": reason, "duplicate": duplicate, "status": status,
                })
            if status < 300:
                return self._send(status, {"ok": True}, extra)
            self._send(status, {"error": "receiver down"}, extra)

        def _control(self, path, body):
            if path == "/_iam/received" and self.command == "GET":
                with state.lock:
                    return self._send(200, list(state.received))
            if path == "/_iam/received" and self.command == "DELETE":
                with state.lock:
                    state.received.clear()
                    state.seen_ids.clear()
                return self._send(204)
            if path == "/_iam/down" and self.command == "POST":
                try:
                    conf = json.loads(body or b"{}")
                    status = int(conf.get("status", 503))
                    count = conf.get("count")
                    count = None if count is None else int(count)
                except (ValueError, TypeError, AttributeError):
                    return self._send(400, {"error": "expected {\"status\":503,\"count\":N}"})
                if not 100 <= status <= 599 or (count is not None and count < 1):
                    return self._send(400, {"error": "status 100-599, count at least 1"})
                with state.lock:
                    state.down = {"status": status, "count": count, "retryAfter": conf.get("retryAfter")}
                return self._send(204)
            if path == "/_iam/down" and self.command == "DELETE":
                with state.lock:
                    state.down = None
                return self._send(204)
            if path == "/_iam/health" and self.command == "GET":
                return self._send(200, {"status": "ok"})
            self._send(404, {"error": "no such control"})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", action="append", required=True,
                    help="whsec_<base64> key the notices are signed with (repeat during a rotation)")
    ap.add_argument("--tolerance", type=int, default=300, help="seconds webhook-timestamp may be off")
    args = ap.parse_args()
    try:
        keys = [decode_secret(s) for s in args.secret]
    except ValueError as err:
        print(f"--secret: {err}", file=sys.stderr)
        sys.exit(2)

    state = State(keys, args.tolerance)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    print(f"IAM notice receiver on http://127.0.0.1:{args.port}/notices", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
