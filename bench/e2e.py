"""End-to-end measurements for `make bench`: the real Worker under `wrangler dev` and the CXone
stand-in (scim2-server), on loopback. Writes one JSON file of figures; bench/report.py turns it
into BENCHMARKS.md. Not a test: it asserts nothing about speed (only that the work measured was
done, e.g. that a Graph pass created every user).
Usage: e2e.py OUT.json [--quick] [--latency-only | --bulk-only | --graph-only | --cxone-only | --floor-only
                        | --leavers-only]"""

import concurrent.futures as futures
import datetime
import gzip
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/e2e"))
from harness import ROOT, WranglerDev, start_graphfix, start_standin, stop_group, write_env_file  # noqa: E402
from helpers import Client, Standin, request  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/graphfix"))
from graphfix import DEFAULT_TENANT  # noqa: E402

STANDIN_PORT, WORKER_PORT, INSPECTOR_PORT, GRAPH_PORT = 38790, 38787, 39229, 38795
CLIENT_ID, CLIENT_SECRET = "cxone-scim-bench", "bench-client-secret"
GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET = "cxone-scim-bench-graph", "bench-graph-client-secret"
GRAPH_CLIENT_STATE = "bench-graph-client-state"
SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXM="
ADMIN = "bench-admin-token-0123456789abcdefg"
CLI = ROOT / "target/release/cxone-scim"
POLICY = ROOT / "core/tests/fixtures/role_policy.json"
QUICK = "--quick" in sys.argv
LATENCY_ONLY = "--latency-only" in sys.argv
BULK_ONLY = "--bulk-only" in sys.argv
GRAPH_ONLY = "--graph-only" in sys.argv
CXONE_ONLY = "--cxone-only" in sys.argv
FLOOR_ONLY = "--floor-only" in sys.argv
LEAVERS_ONLY = "--leavers-only" in sys.argv
FORWARD_PORT, FORWARD_INSPECTOR_PORT = 38788, 39230
# Single-user requests a bulk run sends at once where the server has no Bulk (BulkConfig::lanes).
CXONE_LANES = 6


def users(n, tag):
    return [{"userName": f"b.{tag}.{i}@example.com", "externalId": f"b-{tag}-{i}", "firstName": "Bench",
             "lastName": f"U{i}", "groups": [{"displayName": "cxone-agent"}]} for i in range(n)]


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def load(fn, items, concurrency):
    """Runs fn over items with fixed concurrency; returns per-call latencies (s) and wall time."""
    started = time.perf_counter()
    with futures.ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(fn, items))
    return latencies, time.perf_counter() - started


class Stack:
    def __init__(self, workdir):
        self.workdir = workdir
        self.standin_proc = None
        self.standin = Standin(f"http://127.0.0.1:{STANDIN_PORT}", CLIENT_ID, CLIENT_SECRET)
        self.dev = None
        self.graphfix_proc = None
        self.graph_url = f"http://127.0.0.1:{GRAPH_PORT}"

    def fresh_standin(self, profile="rfc7644"):
        """A new, empty scim2-server (its store lives in memory), the front in `profile`."""
        stop_group(self.standin_proc)
        self.standin_proc = start_standin(STANDIN_PORT, CLIENT_ID, CLIENT_SECRET, self.workdir / "standin.log",
                                          profile=profile)
        self.standin = Standin(f"http://127.0.0.1:{STANDIN_PORT}", CLIENT_ID, CLIENT_SECRET, profile=profile)

    def fresh_graphfix(self):
        """A new, empty Microsoft Graph fixture (tests/graphfix, in memory, default config)."""
        stop_group(self.graphfix_proc)
        self.graphfix_proc = start_graphfix(GRAPH_PORT, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET,
                                            self.workdir / "graphfix.log")

    def fresh_worker(self, profile="rfc7644", **env):
        """The Worker with none of its local state (KV, Durable Objects) kept from before."""
        if self.dev:
            self.dev.stop()
            self.dev = None
        shutil.rmtree(self.workdir / "state", ignore_errors=True)
        return self.worker(profile, **env)

    def worker(self, profile="rfc7644", **env):
        """The Worker set up for a stand-in in `profile`."""
        if self.dev:
            self.dev.stop()
        env_file = self.workdir / "bench.vars"
        write_env_file(env_file, self.standin.url, CLIENT_ID, CLIENT_SECRET, SECRET, ADMIN,
                       [f"{k}={v}" for k, v in env.items()], profile=profile)
        self.dev = WranglerDev(self.workdir, env_file, WORKER_PORT, INSPECTOR_PORT)
        self.dev.start()
        return Client(f"http://127.0.0.1:{WORKER_PORT}", SECRET, ADMIN, self.dev.log_path)

    def close(self):
        if self.dev:
            self.dev.stop()
        stop_group(self.standin_proc)
        stop_group(self.graphfix_proc)


def timed_webhook(client):
    def call(event):
        t = time.perf_counter()
        status, body, _ = client.post_event(event)
        assert status == 200, body
        return time.perf_counter() - t
    return call


class ForwardDev(WranglerDev):
    """bench/forward/worker.js under its own `wrangler dev`: a Worker that only forwards to the
    stand-in, the floor a webhook is measured against."""

    def __init__(self, workdir, target):
        super().__init__(workdir, None, FORWARD_PORT, FORWARD_INSPECTOR_PORT)
        self.target = target
        self.log_path = self.workdir / "forward.log"

    def config(self):
        compat = next(line for line in (ROOT / "wrangler.toml").read_text().splitlines()
                      if line.startswith("compatibility_date"))
        path = self.workdir / "wrangler.forward.toml"
        path.write_text(f'name = "cxone-scim-forward"\nmain = "{ROOT / "bench/forward/worker.js"}"\n{compat}\n'
                        f'[vars]\nTARGET = "{self.target}"\n')
        return path

    def start(self):
        env_file = self.workdir / "forward.vars"
        env_file.write_text("")
        self.env_file = env_file
        super().start()


def timed_direct_post(standin):
    def call(event):
        t = time.perf_counter()
        status, body, _ = standin.scim("POST", "/Users", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": event["userName"],
            "externalId": event["externalId"], "name": {"givenName": event["firstName"], "familyName": event["lastName"]},
            "emails": [{"value": event["userName"], "type": "work", "primary": True}], "active": True,
            "roles": [{"value": "Agent", "display": "Agent"}]})
        assert status == 201, body
        return time.perf_counter() - t
    return call


def wait_run(client, run_id, timeout=3600):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status, body, _ = client.admin_get(f"/provision/bulk/{run_id}?limit=0")
        if status == 200 and body["finished"]:
            return body
        time.sleep(0.25)
    raise RuntimeError(f"bulk run {run_id} did not finish")


def worker_bulk(client, batch):
    """Seconds from the POST until the client saw the run finished (it polls every 0.25 s), and
    the report; the report's `updatedAt` is when the run itself finished (see `run_seconds`)."""
    run_id = "bench-" + uuid.uuid4().hex[:8]
    started = time.perf_counter()
    status, body, _ = client.admin_post("/provision/bulk", {"users": batch, "runId": run_id})
    assert status in (200, 202), body
    report = body if status == 200 and body.get("finished") else wait_run(client, run_id)
    return time.perf_counter() - started, report


def run_seconds(report, posted_at):
    """Seconds from `posted_at` (Unix time, taken just before the POST) until the run finished by
    its own clock (same machine): what the run took, without the client's polling interval."""
    finished = datetime.datetime.fromisoformat(report["updatedAt"].replace("Z", "+00:00")).timestamp()
    return finished - posted_at


def process_cpu_s(name=None, session=None):
    """CPU seconds used so far by the live processes whose command line contains `name` (bytes)
    and, when `session` is given, that belong to that session (a process started with
    start_new_session=True and everything it started)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if name is not None and name not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if session is not None and int(fields[3]) != session:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def workerd_cpu_s(session=None):
    """CPU seconds used so far by the workerd processes (the Worker and its Durable Objects);
    with `session`, only those of that `wrangler dev` (other checkouts may run their own)."""
    return process_cpu_s(b"workerd", session)


def run_state_bytes(workdir):
    """Bytes the BulkRunner Durable Objects keep on disk (their SQLite files)."""
    return sum(f.stat().st_size for f in (workdir / "state").rglob("*") if f.is_file() and "BulkRunner" in str(f))


def direct_bulk(standin, batch):
    """The stand-in's own ceiling: Bulk POSTs of 50 creates sent straight to it, no Worker. Each
    create carries what the Worker's does for these users (displayName, the policy's role), so
    both sides ask the stand-in for the same work."""
    started = time.perf_counter()
    for start in range(0, len(batch), 50):
        ops = [{"method": "POST", "path": "/Users", "bulkId": f"d-{start + i}", "data": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": u["userName"],
            "externalId": u["externalId"], "name": {"givenName": u["firstName"], "familyName": u["lastName"]},
            "displayName": f"{u['firstName']} {u['lastName']}",
            "emails": [{"value": u["userName"], "type": "work", "primary": True}], "active": True,
            "roles": [{"value": "Agent", "display": "Agent"}]}}
               for i, u in enumerate(batch[start:start + 50])]
        status, body, _ = standin.scim("POST", "/Bulk", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
        assert status == 200, body
    return time.perf_counter() - started


def create_body(u):
    """The POST /Users body the Worker sends for input user `u` (the policy's Agent role)."""
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": u["userName"],
            "externalId": u["externalId"], "name": {"givenName": u["firstName"], "familyName": u["lastName"]},
            "displayName": f"{u['firstName']} {u['lastName']}",
            "emails": [{"value": u["userName"], "type": "work", "primary": True}], "active": True,
            "roles": [{"value": "Agent", "display": "Agent"}]}


def direct_posts(standin, batch, concurrency):
    """The stand-in's own ceiling without Bulk: one POST /Users per user, `concurrency` in flight,
    sent straight to it from Python with the Worker's bodies."""
    standin.token()

    def post(u):
        status, body, _ = standin.scim("POST", "/Users", create_body(u))
        assert status == 201, body
    started = time.perf_counter()
    with futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, batch))
    return time.perf_counter() - started


def main():
    out_path = Path(sys.argv[1])
    results = {"quick": QUICK}
    wasm = ROOT / "edge/build/index_bg.wasm"
    results["wasmRawBytes"] = wasm.stat().st_size
    results["wasmGzipBytes"] = len(gzip.compress(wasm.read_bytes(), 9))
    with tempfile.TemporaryDirectory(prefix="cxone-scim-bench-") as d:
        stack = Stack(Path(d))
        try:
            run(stack, results)
        finally:
            stack.close()
    out_path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def run_bulk(stack, results):
    # 3. Bulk on the Free-plan budget (50 subrequests per invocation) against the stand-in's own
    #    Bulk ceiling, a fresh store each; one webhook per user for comparison at 1,000.
    client = stack.worker()
    results["throughput"] = []
    # A small run first, not counted: the first size should not carry the objects' start-up
    # (their process compiles the Worker's wasm on first use), which is no cost per user.
    stack.fresh_standin()
    worker_bulk(client, users(60, "warm"))
    for size in ((1000, 10000) if QUICK else (1000, 10000, 50000)):
        row = {"users": size}
        stack.fresh_standin()
        row["standinBulkDirectPerS"] = size / direct_bulk(stack.standin, users(size, "ceil"))
        stack.fresh_standin()
        state_before, cpu_before = run_state_bytes(stack.workdir), workerd_cpu_s()
        posted_at = time.time()
        seen, report = worker_bulk(client, users(size, "wb"))
        assert report["counts"]["created"] == size, report["counts"]
        row["workerBulkPerS"] = size / run_seconds(report, posted_at)
        row["workerBulkSeenPerS"] = size / seen
        row["workerBulkRequests"] = report["bulkRequests"]
        row["workerBulkLookups"] = report["lookups"]
        row["stateBytesPerUser"] = (run_state_bytes(stack.workdir) - state_before) / size
        row["workerdCpuMsPer1000"] = (workerd_cpu_s() - cpu_before) * 1000 / size * 1000
        if size == 1000:
            stack.fresh_standin()
            _, wall = load(timed_webhook(client), [dict(u, operation="create") for u in users(size, "wh")], 8)
            row["workerWebhookPerS"] = size / wall
        results["throughput"].append(row)
    results["workerWasmBytesAfterBulk"] = client.admin_get("/metrics")[1]["wasmMemoryBytes"]

    # 4. Bulk against a rate limit (token bucket R req/s, announced in RateLimit headers): achieved
    #    users/s vs R x 50, on the Free-plan budget.
    stack.fresh_standin()
    rate, size = 2, 2000
    request("POST", stack.standin.url + "/_standin/config",
            {"rateLimit": rate, "burst": rate, "rateLimitHeaders": "ietf"})
    took, report = worker_bulk(client, users(size, "rl"))
    stats = request("GET", stack.standin.url + "/_standin/stats")[1]
    request("POST", stack.standin.url + "/_standin/config", {"rateLimit": 0})
    present = [n for n in stack.standin.all_user_names() if ".rl." in n]
    # The best a client can do: the burst at once, then R requests per second (the token read
    # and the ServiceProviderConfig read count too).
    requests_needed = report["bulkRequests"] + report["lookups"] + 2
    ideal_s = max(requests_needed - rate, 0) / rate
    results["rateLimit"] = {
        "requestsPerS": rate, "users": size, "seconds": took, "achievedUsersPerS": size / took,
        "ceilingUsersPerS": rate * 50, "share": ideal_s / took if took else 0.0,
        "responses429": stats["rateLimited"], "requests": requests_needed,
        "usersLost": size - len(set(present)), "reportFailed": report["counts"]["failed"]}


def graph_id(tag, i):
    """A Graph object id (a GUID, as Entra gives), distinct per tag and index."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cxone-scim-bench/{tag}/{i}"))


def graph_user(gid, tag, i):
    return {"userPrincipalName": f"g.{tag}.{i}@example.com", "mail": f"g.{tag}.{i}@example.com",
            "givenName": "Graph", "surname": f"U{i}", "displayName": f"Graph U{i}", "accountEnabled": True,
            "jobTitle": "Agent", "department": "Bench", "employeeId": f"E{i:06d}"}


def fixture_call(method, url, body=None, tries=5):
    """A control request to a local fixture, sent again if the connection was refused or reset
    (its listen backlog is Python's default of 5); only for idempotent requests."""
    for attempt in range(tries):
        try:
            return request(method, url, body)
        except ConnectionError:
            if attempt == tries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def graph_directory(graph_url, size, tag):
    """`size` users in the Graph fixture (concurrent PUTs), all direct members of cxone-agent."""
    ids = [graph_id(tag, i) for i in range(size)]

    def put(item):
        i, gid = item
        status, body, _ = fixture_call("PUT", f"{graph_url}/_graph/users/{gid}", graph_user(gid, tag, i))
        assert status in (200, 201), body  # 200: a retry of a PUT that had been applied
    with futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(put, enumerate(ids)))
    status, body, _ = request("PUT", f"{graph_url}/_graph/groups/bench-agents",
                              {"displayName": "cxone-agent", "members": ids})
    assert status == 201, body
    return ids


def sync_status(client):
    status, body, _ = client.admin_get("/sync/status")
    assert status == 200, body
    return body


def last_pass_id(client):
    return (sync_status(client).get("lastPass") or {}).get("passId")


def wait_pass(client, before, timeout):
    """The summary of the first pass finished after `before` (a passId, or None). Polls every
    0.2 s for 10 s, then every second: each poll is work for the Worker and its sync object too."""
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        body = sync_status(client)
        last = body.get("lastPass") or {}
        if body.get("running") is None and last.get("passId") not in (None, before) and last.get("finishedAt"):
            return last
        time.sleep(0.2 if time.monotonic() - started < 10 else 1.0)
    raise RuntimeError(f"no Graph pass finished within {timeout} s")


def sync_pass(client, timeout):
    """POST /sync/run, then wait for that pass: (wall seconds from the POST to the pass seen
    finished, its summary)."""
    before = last_pass_id(client)
    started = time.perf_counter()
    status, body, _ = client.admin_post("/sync/run")
    assert status == 202, body
    summary = wait_pass(client, before, timeout)
    return time.perf_counter() - started, summary


def log_size(client):
    return client.log_path.stat().st_size


def pass_log(client, offset):
    """What `wrangler dev`'s log says about the work since `offset`: uncaught errors (a slice
    that failed; its alarm is retried, and the sync object's watchdog alarm resumes the pass),
    the first one's cause, and the longest pause between two changes the pass applied (from
    the Worker's audit lines)."""
    with open(client.log_path, "rb") as f:
        f.seek(offset)
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read().decode(errors="replace"))
    errors = text.count("Uncaught Error")
    cause = None
    if errors:
        tail = text[text.index("Uncaught Error"):]
        cause = " ".join(line.strip() for line in tail.splitlines()[:4] if line.strip())[:300]
    times = []
    for line in text.splitlines():
        if line.startswith("{") and '"route":"/sync/pass"' in line:
            try:
                at = json.loads(line)["at"]
            except (ValueError, KeyError):
                continue
            times.append(datetime.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
    gap = max((b - a for a, b in zip(times, times[1:])), default=None)
    return {"workerErrors": errors, "workerErrorCause": cause, "longestPauseS": gap}


def graph_worker(stack, profile="rfc7644"):
    """A fresh Worker (no local state) syncing from the Graph fixture on the Free-plan budget."""
    return stack.fresh_worker(
        profile, SUBREQUEST_BUDGET="50", GRAPH_BASE_URL=f"{stack.graph_url}/v1.0",
        GRAPH_TOKEN_URL=f"{stack.graph_url}/{DEFAULT_TENANT}/oauth2/v2.0/token",
        GRAPH_CLIENT_ID=GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET=GRAPH_CLIENT_SECRET,
        GRAPH_CLIENT_STATE=GRAPH_CLIENT_STATE,
        GRAPH_NOTIFICATION_URL=f"http://127.0.0.1:{WORKER_PORT}/graph/notifications")


def run_graph(stack, results):
    # 8. Microsoft Graph sync on the Free-plan budget (50 subrequests per invocation), against the
    #    Graph fixture (tests/graphfix, delta pages of its default 100 users) and the stand-in,
    #    each size on a fresh fixture, stand-in and Worker state. A first pass that creates every
    #    user; a second after 1 % of them changed jobTitle; then change notifications one at a
    #    time, to the new title in CXone.
    graph = {"quick": QUICK, "subrequestBudget": 50, "passes": []}
    results["graph"] = graph
    sizes = (200, 1000) if QUICK else (1000, 10000)
    for size in sizes:
        stack.fresh_standin()
        stack.fresh_graphfix()
        graph["pageSize"] = request("GET", f"{stack.graph_url}/_graph/config")[1]["pageSize"]
        setup_started = time.perf_counter()
        ids = graph_directory(stack.graph_url, size, f"s{size}")
        row = {"users": size, "setupS": time.perf_counter() - setup_started}
        client = graph_worker(stack)
        session = stack.dev.proc.pid
        timeout = max(600, size * 0.5)

        def cpu_now():
            return (workerd_cpu_s(session), process_cpu_s(session=session),
                    process_cpu_s(session=stack.graphfix_proc.pid), process_cpu_s(session=stack.standin_proc.pid))

        # First pass: every user is new.
        cpu, offset = cpu_now(), log_size(client)
        wall, first = sync_pass(client, timeout)
        cpu = [after - before for after, before in zip(cpu_now(), cpu)]
        # Every user exactly once in CXone (one created, or one found already there because an
        # invocation ended between a create and its record), else the figure means nothing.
        counts = first["counts"]
        assert counts.get("created", 0) + counts.get("unchanged", 0) == size, first
        assert stack.standin.user_count() == size, first
        row["first"] = {
            "wallS": wall, "passMs": first["durationMs"], "usersPerS": size / wall,
            "usersPerPassS": size / max(first["durationMs"], 1) * 1000,
            "pages": first["pages"], "changes": first["changes"], "counts": first["counts"],
            "slices": first["slices"], "membershipRequests": first["membershipRequests"],
            "membershipRequestsPerChange": first["membershipRequests"] / first["changes"],
            "workerdCpuS": cpu[0], "workerdCpuMsPer1000": cpu[0] * 1000 / size * 1000,
            "workerdCpuMsPerPage": cpu[0] * 1000 / first["pages"],
            "wranglerNodeCpuS": cpu[1] - cpu[0], "graphfixCpuS": cpu[2], "standinCpuS": cpu[3],
            **pass_log(client, offset)}
        row["inScope"] = sync_status(client)["inScope"]

        # Second pass: 1 % of the users changed their jobTitle in Entra.
        changed = ids[:max(1, size // 100)]

        def patch(gid):
            status, body, _ = fixture_call("PATCH", f"{stack.graph_url}/_graph/users/{gid}",
                                           {"jobTitle": "Supervisor"})
            assert status == 200 and body["user"]["jobTitle"] == "Supervisor", body
        with futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(patch, changed))
        stack.standin.clear_log()
        cpu_before, offset = workerd_cpu_s(session), log_size(client)
        wall, second = sync_pass(client, timeout)
        cpu_s = workerd_cpu_s(session) - cpu_before
        log = [e for e in stack.standin.log() if e["path"].startswith("/scim/v2")]
        assert second["counts"].get("updated") == len(changed), second
        row["second"] = {
            "changedUsers": len(changed), "wallS": wall, "passMs": second["durationMs"],
            "changesPerS": len(changed) / wall, "changesPerPassS": len(changed) / max(second["durationMs"], 1) * 1000,
            "pages": second["pages"], "changes": second["changes"],
            "counts": second["counts"], "slices": second["slices"],
            "membershipRequests": second["membershipRequests"],
            "membershipRequestsPerChange": second["membershipRequests"] / max(1, second["changes"]),
            "standinPatches": sum(e["method"] == "PATCH" for e in log),
            "standinGets": sum(e["method"] == "GET" for e in log),
            "standinScimRequests": len(log), "workerdCpuS": cpu_s, **pass_log(client, offset)}
        graph["passes"].append(row)

    # Notification → CXone, one at a time, on the last (largest) directory: PATCH a user's
    # jobTitle in the fixture, have it POST a change notification for that user to the Worker,
    # and time from that POST until the stand-in answers with the new title.
    samples, answers, offset = [], [], log_size(client)
    notify_url = f"http://127.0.0.1:{WORKER_PORT}/graph/notifications"
    for j, gid in enumerate(ids[-20:]):
        title = f"Latency {j}"
        status, body, _ = request("PATCH", f"{stack.graph_url}/_graph/users/{gid}", {"jobTitle": title})
        assert status == 200, body
        before = last_pass_id(client)
        started = time.perf_counter()
        status, body, _ = request("POST", f"{stack.graph_url}/_graph/notify", {
            "url": notify_url, "clientState": GRAPH_CLIENT_STATE, "resource": "users",
            "changeType": "updated", "ids": [gid]})
        assert status == 200 and body["status"] == 202, body
        answers.append(body["elapsedMs"])
        end = time.monotonic() + 60
        while True:
            found = stack.standin.find("externalId", gid)
            if found and found[0].get("title") == title:
                samples.append(time.perf_counter() - started)
                break
            assert time.monotonic() < end, f"{gid}: no new title in CXone after 60 s"
            time.sleep(0.02)
        # The next sample starts once this pass is over.
        wait_pass(client, before, 120)
    graph["notification"] = {
        "samples": len(samples), "directoryUsers": sizes[-1],
        "p50Ms": percentile(samples, 50) * 1000, "p95Ms": percentile(samples, 95) * 1000,
        "maxMs": max(samples) * 1000, "workerAnswerP50Ms": percentile(answers, 50),
        "workerErrors": pass_log(client, offset)["workerErrors"]}


def run(stack, results):
    # 1. Cold start of `wrangler dev` with a prebuilt Worker.
    stack.fresh_standin()
    client = stack.worker(SUBREQUEST_BUDGET="1000")
    results["wranglerColdStartS"] = stack.dev.started_in
    if BULK_ONLY:
        run_bulk(stack, results)
        return
    if GRAPH_ONLY:
        run_graph(stack, results)
        return
    if CXONE_ONLY:
        run_cxone(stack, results)
        return
    if FLOOR_ONLY:
        run_floor(stack, client, results)
        return
    if LEAVERS_ONLY:
        run_leavers(stack, results)
        return

    # 2. Webhook round trip vs a direct SCIM POST, one at a time and at concurrency 4, and the
    #    isolate's memory over the webhooks.
    n = 200 if QUICK else 1000
    warm = users(100, "warm")
    load(timed_webhook(client), [dict(u, operation="create") for u in warm], 4)
    mem_before = client.admin_get("/metrics")[1]["wasmMemoryBytes"]
    results["latency"] = []
    for conc in (1, 4):
        events = [dict(u, operation="create") for u in users(n, f"lat{conc}")]
        hook, hook_wall = load(timed_webhook(client), events, conc)
        direct, direct_wall = load(timed_direct_post(stack.standin), users(n, f"direct{conc}"), conc)
        results["latency"].append({
            "requests": n, "concurrency": conc,
            "webhookP50Ms": percentile(hook, 50) * 1000, "webhookP99Ms": percentile(hook, 99) * 1000,
            "directP50Ms": percentile(direct, 50) * 1000, "directP99Ms": percentile(direct, 99) * 1000,
            "webhookPerS": n / hook_wall, "directPerS": n / direct_wall})
    mem_after = client.admin_get("/metrics")[1]["wasmMemoryBytes"]
    results["memory"] = {"webhooks": 2 * n, "wasmBytesBefore": mem_before, "wasmBytesAfter": mem_after}
    run_floor(stack, client, results)
    if LATENCY_ONLY:
        return

    run_bulk(stack, results)

    # 5. Peak RSS of the CLI provisioning 10,000 users (no pre-check: every user is new).
    stack.fresh_standin()
    size = 2000 if QUICK else 10000
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(users(size, "cli"), f)
    env = dict(os.environ, CXONE_SCIM_BASE_URL=f"{stack.standin.url}/scim/v2", CXONE_PROFILE="rfc7644",
               CXONE_TOKEN_URL=f"{stack.standin.url}/oauth/token", CXONE_CLIENT_ID=CLIENT_ID,
               CXONE_CLIENT_SECRET=CLIENT_SECRET)
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", str(CLI), "bulk", "--users", f.name, "--policy", str(POLICY),
                           "--quiet", "--no-precheck", "--report", f.name + ".report"],
                          capture_output=True, text=True, env=env)
    took = time.perf_counter() - started
    rss_kb = next(int(line.split(":")[1]) for line in proc.stderr.splitlines() if "Maximum resident set size" in line)
    created = json.loads(Path(f.name + ".report").read_text())["counts"]["created"]
    results["cli"] = {"users": size, "peakRssKiB": rss_kb, "seconds": took, "created": created,
                      "inputBytes": Path(f.name).stat().st_size}

    run_graph(stack, results)
    run_cxone(stack, results)
    run_leavers(stack, results)


def run_leavers(stack, results):
    # 10. Leavers: the time from a leaver webhook to its answer, which comes only once the account
    #     and the agent read back inactive and the session was ended (each agent logged in first);
    #     then a batch of 1,000 leavers (POST /deprovision) on the Free-plan budget, run by its
    #     object, leavers/s from the POST to the last one verified.
    stack.fresh_standin()
    client = stack.fresh_worker(SUBREQUEST_BUDGET="50", DELETION_THRESHOLD="100000")
    n = 50 if QUICK else 200
    people = users(n, "lv")
    load(timed_webhook(client), [dict(u, operation="create") for u in people], 4)
    for u in people:
        assert request("POST", stack.standin.url + "/_standin/agents/login", {"userName": u["userName"]})[0] == 200

    def leaver(u):
        t = time.perf_counter()
        status, body, _ = client.post_event(dict(u, operation="disable"))
        assert status == 200 and body["deprovision"]["verified"] is True, body
        return time.perf_counter() - t
    samples, _ = load(leaver, people, 1)
    agents = request("GET", stack.standin.url + "/_standin/agents")[1]
    assert not any(a["loggedIn"] for a in agents if ".lv." in a["userName"]), "every session ended"
    row = {"leavers": n, "concurrency": 1, "webhookToVerifiedP50Ms": percentile(samples, 50) * 1000,
           "webhookToVerifiedP99Ms": percentile(samples, 99) * 1000}
    size = 200 if QUICK else 1000
    batch = users(size, "lvb")
    direct_posts(stack.standin, batch, 8)
    stack.standin.clear_log()
    started = time.perf_counter()
    status, progress, _ = client.admin_post("/deprovision", {"requests": [
        {"userName": u["userName"], "externalId": u["externalId"]} for u in batch]})
    assert status == 202 and progress["state"] == "running", progress
    while True:
        status, body, _ = client.admin_get(f"/deprovision/batches/{progress['id']}?limit=0")
        assert status == 200, body
        if body["progress"]["state"] == "done":
            break
        time.sleep(0.5)
    wall = time.perf_counter() - started
    done = body["progress"]
    assert done["verified"] == size, done
    log = stack.standin.log()
    row.update({"batch": size, "subrequestBudget": 50, "batchWallS": wall, "batchLeaversPerS": size / wall,
                "requestsPerLeaver": len(log) / size, "outcomes": done["outcomes"]})
    results["leavers"] = row
    print(json.dumps(row), flush=True)


def run_floor(stack, client, results):
    # The webhook against the stack's floor: the same POST /Users through a Worker that only
    # forwards it (bench/forward/worker.js, its own `wrangler dev`) and straight to the stand-in,
    # the three kinds interleaved request by request, one at a time and 4 at once.
    forward = ForwardDev(stack.workdir, stack.standin.url)
    forward.start()
    try:
        via = Standin(f"http://127.0.0.1:{FORWARD_PORT}", CLIENT_ID, CLIENT_SECRET)
        n = 150 if QUICK else 300
        kinds = {"webhook": timed_webhook(client), "forward": timed_direct_post(via),
                 "direct": timed_direct_post(stack.standin)}
        warm = users(60, "fwarm")
        load(lambda u: [kinds[k](dict(u, operation="create", userName=f"{k}.{u['userName']}",
                                      externalId=f"{k}-{u['externalId']}")) for k in kinds], warm, 4)
        results["floor"] = []
        for conc in (1, 4):
            tasks = [(k, dict(u, operation="create", userName=f"{k}.{u['userName']}", externalId=f"{k}-{u['externalId']}"))
                     for u in users(n, f"floor{conc}") for k in kinds]
            timed = load(lambda t: (t[0], kinds[t[0]](t[1])), tasks, conc)[0]
            row = {"requests": n, "concurrency": conc}
            for k in kinds:
                samples = [s for kind, s in timed if kind == k]
                row[f"{k}P50Ms"] = percentile(samples, 50) * 1000
                row[f"{k}P99Ms"] = percentile(samples, 99) * 1000
            results["floor"].append(row)
            print(json.dumps(row), flush=True)
    finally:
        forward.stop()


def run_cxone(stack, results):
    # 9. CXone as NICE publishes it (the stand-in's cxone profile, the Worker with an access key):
    #    no Bulk, so a bulk run sends one POST /Users per user, CXONE_LANES at once. Its ceiling is
    #    the stand-in answering the same POSTs sent straight from Python, as many in flight; each
    #    measured on a fresh store, the Worker on the Paid budget (1,000 subrequests: every user
    #    also holds its person's ledger). Then a Graph first pass on the Free-plan budget.
    cx = {"lanes": CXONE_LANES, "subrequestBudget": 1000, "bulk": []}
    results["cxone"] = cx
    stack.fresh_standin("cxone")
    client = stack.fresh_worker("cxone", SUBREQUEST_BUDGET="1000")
    worker_bulk(client, users(60, "cxwarm"))  # not counted: the objects' start-up
    for size in ((1000, 5000) if QUICK else (1000, 10000)):
        stack.fresh_standin("cxone")
        ceiling = size / direct_posts(stack.standin, users(size, "cxd"), CXONE_LANES)
        stack.fresh_standin("cxone")
        posted_at = time.time()
        # New people each size: the Worker's ledgers keep the CXone ids of the earlier ones.
        seen, report = worker_bulk(client, users(size, f"cxw{size}"))
        assert report["counts"]["created"] == size, report["counts"]
        assert report["bulkRequests"] == 0, report
        log = stack.standin.log()
        posts = [e for e in log if e["method"] == "POST" and e["path"] == "/scim/v2/Users"]
        assert len([n for n in stack.standin.all_user_names() if f".cxw{size}." in n]) == size
        worker_per_s = size / run_seconds(report, posted_at)
        cx["bulk"].append({"users": size, "standinDirectPerS": ceiling, "workerPerS": worker_per_s,
                           "share": worker_per_s / ceiling, "workerSeenPerS": size / seen,
                           "userWrites": report["userWrites"], "lookups": report["lookups"],
                           "postsReceived": len(posts),
                           "bulkRequestsReceived": len([e for e in log if e["path"].endswith("/Bulk")])})
    size = 2000 if QUICK else 10000
    stack.fresh_standin("cxone")
    stack.fresh_graphfix()
    graph_directory(stack.graph_url, size, f"cx{size}")
    client = graph_worker(stack, "cxone")
    wall, first = sync_pass(client, max(600, size * 0.5))
    counts = first["counts"]
    assert counts.get("created", 0) + counts.get("unchanged", 0) == size, first
    assert stack.standin.user_count() == size, first
    log = stack.standin.log()
    cx["graphFirstPass"] = {
        "users": size, "subrequestBudget": 50, "wallS": wall, "passMs": first["durationMs"],
        "usersPerS": size / wall, "slices": first["slices"], "counts": counts,
        "posts": len([e for e in log if e["method"] == "POST" and e["path"] == "/scim/v2/Users"]),
        "bulkRequests": len([e for e in log if e["path"].endswith("/Bulk")])}


if __name__ == "__main__":
    main()
