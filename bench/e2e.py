"""End-to-end measurements for `make bench`: the real Worker under `wrangler dev` and the CXone
stand-in (scim2-server), on loopback. Writes one JSON file of figures; bench/report.py turns it
into BENCHMARKS.md. Not a test: it asserts nothing about speed.
Usage: e2e.py OUT.json [--quick] [--latency-only | --bulk-only]"""

import concurrent.futures as futures
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/e2e"))
from harness import ROOT, WranglerDev, start_standin, stop_group, write_env_file  # noqa: E402
from helpers import Client, Standin, request  # noqa: E402

STANDIN_PORT, WORKER_PORT, INSPECTOR_PORT = 38790, 38787, 39229
CLIENT_ID, CLIENT_SECRET = "cxone-scim-bench", "bench-client-secret"
SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXM="
ADMIN = "bench-admin-token"
CLI = ROOT / "target/release/cxone-scim"
POLICY = ROOT / "core/tests/fixtures/role_policy.json"
QUICK = "--quick" in sys.argv
LATENCY_ONLY = "--latency-only" in sys.argv
BULK_ONLY = "--bulk-only" in sys.argv


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

    def fresh_standin(self):
        """A new, empty scim2-server (its store lives in memory)."""
        stop_group(self.standin_proc)
        self.standin_proc = start_standin(STANDIN_PORT, CLIENT_ID, CLIENT_SECRET, self.workdir / "standin.log")
        self.standin._token = None

    def worker(self, **env):
        if self.dev:
            self.dev.stop()
        env_file = self.workdir / "bench.vars"
        write_env_file(env_file, self.standin.url, CLIENT_ID, CLIENT_SECRET, SECRET, ADMIN,
                       [f"{k}={v}" for k, v in env.items()])
        self.dev = WranglerDev(self.workdir, env_file, WORKER_PORT, INSPECTOR_PORT)
        self.dev.start()
        return Client(f"http://127.0.0.1:{WORKER_PORT}", SECRET, ADMIN, self.dev.log_path)

    def close(self):
        if self.dev:
            self.dev.stop()
        stop_group(self.standin_proc)


def timed_webhook(client):
    def call(event):
        t = time.perf_counter()
        status, body, _ = client.post_event(event)
        assert status == 200, body
        return time.perf_counter() - t
    return call


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
    run_id = "bench-" + uuid.uuid4().hex[:8]
    started = time.perf_counter()
    status, body, _ = client.admin_post("/provision/bulk", {"users": batch, "runId": run_id})
    assert status in (200, 202), body
    report = body if status == 200 and body.get("finished") else wait_run(client, run_id)
    return time.perf_counter() - started, report


def workerd_cpu_s():
    """CPU seconds used so far by the workerd processes (the Worker and its Durable Objects)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if b"workerd" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_state_bytes(workdir):
    """Bytes the BulkRunner Durable Objects keep on disk (their SQLite files)."""
    return sum(f.stat().st_size for f in (workdir / "state").rglob("*") if f.is_file() and "BulkRunner" in str(f))


def direct_bulk(standin, batch):
    """The stand-in's own ceiling: Bulk POSTs of 50 creates sent straight to it, no Worker."""
    started = time.perf_counter()
    for start in range(0, len(batch), 50):
        ops = [{"method": "POST", "path": "/Users", "bulkId": f"d-{start + i}", "data": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": u["userName"],
            "externalId": u["externalId"], "name": {"givenName": u["firstName"], "familyName": u["lastName"]},
            "emails": [{"value": u["userName"], "type": "work", "primary": True}], "active": True}}
               for i, u in enumerate(batch[start:start + 50])]
        status, body, _ = standin.scim("POST", "/Bulk", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
        assert status == 200, body
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
    for size in ((1000, 10000) if QUICK else (1000, 10000, 50000)):
        row = {"users": size}
        stack.fresh_standin()
        row["standinBulkDirectPerS"] = size / direct_bulk(stack.standin, users(size, "ceil"))
        stack.fresh_standin()
        state_before, cpu_before = run_state_bytes(stack.workdir), workerd_cpu_s()
        took, report = worker_bulk(client, users(size, "wb"))
        assert report["counts"]["created"] == size, report["counts"]
        row["workerBulkPerS"] = size / took
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


def run(stack, results):
    # 1. Cold start of `wrangler dev` with a prebuilt Worker.
    stack.fresh_standin()
    client = stack.worker(SUBREQUEST_BUDGET="1000")
    results["wranglerColdStartS"] = stack.dev.started_in
    if BULK_ONLY:
        run_bulk(stack, results)
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
    if LATENCY_ONLY:
        return

    run_bulk(stack, results)

    # 5. Peak RSS of the CLI provisioning 10,000 users (no pre-check: every user is new).
    stack.fresh_standin()
    size = 2000 if QUICK else 10000
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(users(size, "cli"), f)
    env = dict(os.environ, CXONE_SCIM_BASE_URL=f"{stack.standin.url}/scim/v2",
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


if __name__ == "__main__":
    main()
