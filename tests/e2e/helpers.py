"""Small HTTP helpers for the end-to-end tests. Webhooks are signed here with Python's own
hmac/base64 (an implementation independent of the Worker's) per Standard Webhooks."""

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def request(method, url, body=None, headers=None, timeout=600):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None), dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return err.code, parsed, dict(err.headers)


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Client:
    def __init__(self, url, secret, admin_token, log_path, restart=None):
        self.url = url
        self.restart = restart
        self.secret = secret
        self.admin_token = admin_token
        self.log_path = log_path

    def post_event(self, event, msg_id=None, timestamp=None, secret=None, signature=None, headers=None,
                   timeout=600):
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        timestamp = int(time.time()) if timestamp is None else timestamp
        h = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
             "webhook-signature": signature if signature is not None else sign(secret or self.secret, msg_id, timestamp, body)}
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        return request("POST", self.url + "/webhooks/lifecycle", body, h, timeout=timeout)

    def deliver(self, event, msg_id, tries=60, pause_s=0.25):
        """Posts like a sender that redelivers on 503 (same id and body, fresh timestamp and
        signature) until the answer is something else. Returns (status, body, headers, busy):
        busy lists the Retry-After header of every 503 seen."""
        busy = []
        for _ in range(tries):
            status, body, headers = self.post_event(event, msg_id=msg_id)
            if status != 503:
                return status, body, headers, busy
            busy.append(headers.get("Retry-After"))
            time.sleep(pause_s)
        raise AssertionError(f"{msg_id} still answered 503 after {tries} deliveries: {body}")

    def admin_post(self, path, body=None, token=None):
        return request("POST", self.url + path, body, {"Authorization": f"Bearer {token or self.admin_token}"})

    def admin_delete(self, path, token=None):
        return request("DELETE", self.url + path, headers={"Authorization": f"Bearer {token or self.admin_token}"})

    def admin_pages(self, path, key, limit=None, max_pages=200):
        """Every entry of a cursor-paged admin list (`{"count","<key>":[...],"cursor"?}`), and the
        pages as answered."""
        entries, pages, cursor = [], [], None
        for _ in range(max_pages):
            query = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
            status, body, _ = self.admin_get(path + ("?" + urllib.parse.urlencode(query) if query else ""))
            assert status == 200, body
            pages.append(body)
            entries += body[key]
            cursor = body.get("cursor")
            if not cursor:
                return entries, pages
        raise AssertionError(f"{path} still had a cursor after {max_pages} pages")

    def admin_get(self, path, token=None, timeout=600):
        return request("GET", self.url + path, headers={"Authorization": f"Bearer {token or self.admin_token}"},
                       timeout=timeout)

    def poll(self, path, tries=5, timeout=60):
        """GET `path` as a poll: a request `wrangler dev` leaves unanswered (it happens, rarely,
        to one request while a Durable Object is busy) is asked again instead of waited on."""
        for _ in range(tries - 1):
            try:
                return self.admin_get(path, timeout=timeout)
            except (TimeoutError, urllib.error.URLError) as e:
                if not isinstance(getattr(e, "reason", e), TimeoutError):
                    raise
        return self.admin_get(path, timeout=timeout)

    def log_lines(self):
        return self.log_path.read_text(errors="replace").splitlines()


class Standin:
    def __init__(self, url, client_id, client_secret, profile="rfc7644"):
        self.url = url
        self.client_id = client_id
        self.client_secret = client_secret
        self.profile = profile
        self._token = None

    def listing(self, query):
        """GET /Users?query as the test sees it: through SCIM, or on the CXone profile (which
        searches by userName alone) from scim2-server itself."""
        if self.profile == "cxone":
            return request("GET", self.url + "/_standin/users?" + query)
        return self.scim("GET", "/Users?" + query)

    def log(self):
        return request("GET", self.url + "/_standin/log")[1]

    def bodies_from_worker(self):
        """Every SCIM body sent since the stand-in started, except the tests' own."""
        entries = request("GET", self.url + "/_standin/bodies")[1]
        return [e for e in entries if not e["userAgent"].startswith("Python-urllib")]

    def scim_writes(self):
        return [e for e in self.log() if e["method"] in ("POST", "PUT", "PATCH", "DELETE")
                and e["path"].startswith("/scim/v2")]

    def clear_log(self):
        request("DELETE", self.url + "/_standin/log")

    def fault(self, **fault):
        request("POST", self.url + "/_standin/faults", fault)

    def clear_faults(self):
        request("DELETE", self.url + "/_standin/faults")

    def configure(self, **conf):
        request("POST", self.url + "/_standin/config", conf)

    def stats(self):
        return request("GET", self.url + "/_standin/stats")[1]

    def all_user_names(self):
        names, start = [], 1
        while True:
            status, body, _ = self.listing(f"startIndex={start}&count=500")
            assert status == 200, body
            page = body.get("Resources", [])
            names += [u["userName"] for u in page]
            start += len(page)
            if not page or start > body["totalResults"]:
                return names

    def revoke_tokens(self):
        request("POST", self.url + "/_standin/revoke-tokens")
        self._token = None

    def token(self):
        if self._token is None and self.profile == "cxone":
            status, body, _ = request("POST", self.url + "/authentication/v1/token/access-key",
                                      {"accessKeyId": self.client_id, "accessKeySecret": self.client_secret})
            assert status == 200, body
            self._token = body["access_token"]
        if self._token is None:
            form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.client_id,
                                           "client_secret": self.client_secret}).encode()
            status, body, _ = request("POST", self.url + "/oauth/token", form,
                                      {"Content-Type": "application/x-www-form-urlencoded"})
            assert status == 200, body
            self._token = body["access_token"]
        return self._token

    def scim(self, method, path, body=None):
        return request(method, self.url + "/scim/v2" + path, body,
                       {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/scim+json"})

    def find(self, attr, value):
        flt = urllib.parse.quote(f'{attr} eq "{value}"')
        status, body, _ = self.listing(f"filter={flt}")
        assert status == 200, body
        return body.get("Resources", [])

    def user(self, user_id):
        status, body, _ = self.scim("GET", f"/Users/{user_id}")
        assert status == 200, body
        return body

    def user_count(self):
        return self.listing("count=1")[1]["totalResults"]


class GraphFix:
    """The Graph fixture's control endpoints (tests/graphfix/graphfix.py documents them)."""

    def __init__(self, url):
        self.url = url

    def _call(self, method, path, body=None):
        status, answer, _ = request(method, self.url + path, body)
        assert status < 300, (method, path, status, answer)
        return answer

    def reset(self):
        self._call("POST", "/_graph/reset")

    def put_user(self, user_id, **props):
        return self._call("PUT", f"/_graph/users/{user_id}", props)

    def patch_user(self, user_id, **props):
        return self._call("PATCH", f"/_graph/users/{user_id}", props)

    def delete_user(self, user_id, hard=False):
        return self._call("DELETE", f"/_graph/users/{user_id}?hard={'true' if hard else 'false'}")

    def put_group(self, group_id, display_name, members):
        return self._call("PUT", f"/_graph/groups/{group_id}", {"displayName": display_name,
                                                                "members": list(members)})

    def fault(self, **fault):
        self._call("POST", "/_graph/faults", fault)

    def clear_faults(self):
        self._call("DELETE", "/_graph/faults")

    def configure(self, **conf):
        self._call("POST", "/_graph/config", conf)

    def log(self):
        return self._call("GET", "/_graph/log")

    def clear_log(self):
        self._call("DELETE", "/_graph/log")

    def subscriptions(self):
        return self._call("GET", "/_graph/subscriptions")

    def notify(self, **doc):
        """Has the fixture POST a change notification; its report of the answer it got."""
        return self._call("POST", "/_graph/notify", doc)

    def validate(self, url):
        return self._call("POST", "/_graph/validate", {"url": url})

    def users(self):
        """The live users (not deleted), as stored."""
        return self._call("GET", "/_graph/users")["users"]


class IamFix:
    """The IAM notice receiver's control endpoints (tests/iamfix/iamfix.py documents them)."""

    def __init__(self, url):
        self.url = url

    def _call(self, method, path, body=None):
        status, answer, _ = request(method, self.url + path, body)
        assert status < 300, (method, path, status, answer)
        return answer

    def received(self):
        """Every delivery, oldest first: headers (lowercased names), body (text as received),
        json, verified, reason, duplicate, status (what it was answered)."""
        return self._call("GET", "/_iam/received")

    def clear(self):
        self._call("DELETE", "/_iam/received")

    def down(self, status=503, count=None, retry_after=None):
        doc = {"status": status}
        if count is not None:
            doc["count"] = count
        if retry_after is not None:
            doc["retryAfter"] = retry_after
        self._call("POST", "/_iam/down", doc)

    def up(self):
        self._call("DELETE", "/_iam/down")
