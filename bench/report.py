"""Writes BENCHMARKS.md from the figures `make bench` just measured.
Usage: report.py BENCH_DIR > BENCHMARKS.md   (BENCH_DIR holds python.json, wasm.json, e2e.json;
criterion's estimates are read from target/criterion). A section whose figures are missing (a
partial run such as `e2e.py OUT --bulk-only`, or no criterion estimates) is left out. The Graph
sync figures come from e2e.json, or else from graph.json (`e2e.py BENCH_DIR/graph.json --graph-only`)."""

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
bench = Path(sys.argv[1])
fixtures = ROOT / "core/tests/fixtures"


def figures(name):
    """The JSON document BENCH_DIR/name, or {} when it is absent or empty."""
    path = bench / name
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return json.loads(text) if text.strip() else {}


python, wasm, e2e = figures("python.json"), figures("wasm.json"), figures("e2e.json")
graph_only = figures("graph.json")
graph = e2e.get("graph") or graph_only.get("graph")
top = e2e or graph_only  # the sizes and the cold start, from whichever run there is


def crit(group, name):
    """Median time (s) of a criterion benchmark."""
    est = json.loads((ROOT / "target/criterion" / group / name / "new/estimates.json").read_text())
    return est["median"]["point_estimate"] / 1e9


def have_crit(group, names):
    return all((ROOT / "target/criterion" / group / n / "new/estimates.json").is_file() for n in names)


def us(s):
    return f"{s * 1e6:,.1f} µs"


def cpu():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


out = []
w = out.append
numbers = iter(range(1, 100))


def section(title):
    w("")
    w(f"## {next(numbers)}. {title}")
    w("")


VS_PYTHON = [("bulk_request_build_50", "build + serialise a 50-op Bulk request"),
             ("bulk_response_parse_classify_50", "parse + classify a 50-op Bulk response"),
             ("user_validate_serialize", "validate + serialise a User (RFC 7643 §8.3)"),
             ("patch_diff", "minimal PATCH diff + serialise")]
complete = (have_crit("vs_python", [n for n, _ in VS_PYTHON]) and python and wasm
            and all(k in e2e for k in ("latency", "throughput", "rateLimit", "memory", "cli")) and graph)
w("# Benchmarks")
w("")
w(f"Measured {time.strftime('%Y-%m-%d')} on {cpu()} ({platform.machine()}, {len(Path('/proc/cpuinfo').read_text().split('processor')) - 1} cores), "
  + ("all sides in one `make bench` run. " if complete else
     "from a partial run (sections without figures are left out). ")
  + "Figures are medians; machines like this are noisy, so read the ratios.")
if e2e.get("quick") or (graph or {}).get("quick"):
    w("")
    w("**Quick mode** (`BENCH_QUICK=1`): smaller end-to-end sizes than the full run.")
if have_crit("vs_python", [n for n, _ in VS_PYTHON]) and python:
    section("Core vs Python (scim2-models 0.12.3), same input bytes")
    w("| work | Rust core | Python | ratio | target |")
    w("|---|---:|---:|---:|---:|")
    for name, label in VS_PYTHON:
        r, p = crit("vs_python", name), python[name]
        w(f"| {label} | {us(r)} | {us(p)} | {p / r:,.0f}× | ≥ 200× |")
PARSE = [("parse_bulk_response", "bench_bulk_response_50.json"),
         ("parse_graph_delta_page", "graph_users_delta_page.json")]
if all(have_crit(group, ["typed", "untyped_value"]) for group, _ in PARSE):
    section("Typed parsing vs `serde_json::Value` on the same bytes")
    w("| input | bytes | typed | untyped `Value` | typed / untyped speed |")
    w("|---|---:|---:|---:|---:|")
    for group, fixture in PARSE:
        size = (fixtures / fixture).stat().st_size
        t, v = crit(group, "typed"), crit(group, "untyped_value")
        w(f"| {fixture} | {size:,} | {size / t / 1e6:,.0f} MB/s | {size / v / 1e6:,.0f} MB/s | {v / t:.2f}× (target ≥ 1.0×) |")
if have_crit("webhook", ["verify_2KiB", "handle_core_2KiB"]) and wasm:
    section("Webhook cost (2 KiB body)")
    w("| | native | wasm32 (release, Node) |")
    w("|---|---:|---:|")
    w(f"| HMAC-SHA256 verify | {us(crit('webhook', 'verify_2KiB'))} | {wasm['wasmVerify2KiBUs']:.1f} µs |")
    w(f"| verify + parse + policy + first request planned | {us(crit('webhook', 'handle_core_2KiB'))} | "
      f"{wasm['wasmHandleCore2KiBUs']:.1f} µs |")
    w("")
    w("Target: full request handling well under 1 ms of CPU (the Free plan allows 10 ms).")
if "latency" in e2e:
    section("Worker round trip under `wrangler dev` vs a direct SCIM POST")
    w("Signed lifecycle webhook (joiner) → Worker → stand-in, against the same `POST /Users` sent straight "
      "to the stand-in; loopback.")
    w("")
    w("| concurrency | requests | webhook p50 | webhook p99 | direct p50 | direct p99 | p50 ratio (target ≤ 2.5×) | p99 ratio |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lat in e2e["latency"]:
        w(f"| {lat['concurrency']} | {lat['requests']} | {lat['webhookP50Ms']:.1f} ms | {lat['webhookP99Ms']:.1f} ms "
          f"| {lat['directP50Ms']:.1f} ms | {lat['directP99Ms']:.1f} ms "
          f"| {lat['webhookP50Ms'] / lat['directP50Ms']:.2f}× | {lat['webhookP99Ms'] / lat['directP99Ms']:.2f}× |")
    w("")
    w("A joiner webhook costs two calls to the person's ledger (a Durable Object: `begin`, `commit`) "
      "and one CXone `POST`; no KV write unless something failed or conflicted.")
if "floor" in e2e:
    section("Webhook against the stack's floor: a Worker that only forwards")
    w("The same joiner `POST /Users` three ways, interleaved request by request in one run: as a signed "
      "webhook through the Worker (the person's ledger applies it: one Durable Object call, the CXone "
      "request made from it), through `bench/forward/worker.js` (a Worker that only forwards, under its "
      "own `wrangler dev`), and straight to the stand-in.")
    w("")
    w("| concurrency | requests each | webhook p50 | forward-only p50 | direct p50 | webhook / forward-only p50 (target ≤ 1.5×) | webhook p99 | forward-only p99 |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in e2e["floor"]:
        w(f"| {row['concurrency']} | {row['requests']} | {row['webhookP50Ms']:.1f} ms | {row['forwardP50Ms']:.1f} ms "
          f"| {row['directP50Ms']:.1f} ms | {row['webhookP50Ms'] / row['forwardP50Ms']:.2f}× "
          f"| {row['webhookP99Ms']:.1f} ms | {row['forwardP99Ms']:.1f} ms |")
    w("")
if "leavers" in e2e:
    lv = e2e["leavers"]
    section("Leavers")
    w("A leaver webhook is answered only once its steps settled: the account found, the agent searched "
      "and its skills, groups and scheduled callbacks read, `active=false` written, the agent logged out, "
      "and both read back inactive (each agent logged in first). Then a batch of leavers "
      f"(`POST /deprovision`) on the Free-plan budget ({lv['subrequestBudget']} subrequests per invocation), "
      "run by its own object, timed from the POST until the last leaver was verified.")
    w("")
    w("| leaver webhook → verified, logged out: p50 | p99 | batch | batch leavers/s | stand-in requests per leaver |")
    w("|---:|---:|---:|---:|---:|")
    w(f"| {lv['webhookToVerifiedP50Ms']:.0f} ms | {lv['webhookToVerifiedP99Ms']:.0f} ms | {lv['batch']:,} "
      f"| {lv['batchLeaversPerS']:.1f} | {lv['requestsPerLeaver']:.1f} |")
if "throughput" in e2e:
    section("Bulk provisioning throughput (users/s)")
    w("The Worker on the Free-plan budget (50 subrequests per invocation; a Durable Object per run, a "
      "SQLite row per user, an alarm per slice) against the stand-in's own ceiling: Bulk POSTs of 50 "
      "creates sent straight to it, one after another, on a fresh store each, each create carrying what "
      "the Worker's carry (displayName, the policy's role). A 60-user run goes first, uncounted. The "
      "Worker's time runs from the POST until the run finished by its own clock (the report's "
      "`updatedAt`); until the client's next poll (every 0.25 s) saw it, beside it.")
    w("")
    w("| users | stand-in ceiling | Worker, Bulk (finished) | Worker / ceiling (target ≥ 0.9) | seen by the client's poll | requests | run state per user | workerd CPU per 1,000 users | one webhook per user |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in e2e["throughput"]:
        hook = f"{row['workerWebhookPerS']:,.0f}" if row.get("workerWebhookPerS") else "–"
        seen = row.get("workerBulkSeenPerS", row["workerBulkPerS"])
        w(f"| {row['users']:,} | {row['standinBulkDirectPerS']:,.0f} | {row['workerBulkPerS']:,.0f} "
          f"| {row['workerBulkPerS'] / row['standinBulkDirectPerS']:.2f} "
          f"| {seen:,.0f} ({seen / row['standinBulkDirectPerS']:.2f}) "
          f"| {row['workerBulkRequests']} Bulk + {row['workerBulkLookups']} lookups "
          f"| {row['stateBytesPerUser']:,.0f} B | {row['workerdCpuMsPer1000']:,.0f} ms | {hook} |")
    if "workerWasmBytesAfterBulk" in e2e:
        w("")
        w(f"Worker wasm linear memory after the runs: {e2e['workerWasmBytesAfterBulk'] / 2**20:,.1f} MiB.")
if "rateLimit" in e2e:
    rl = e2e["rateLimit"]
    section("Bulk against a rate limit")
    w(f"Stand-in token bucket: {rl['requestsPerS']} requests/s, burst {rl['requestsPerS']}, announced in `RateLimit`/"
      f"`RateLimit-Policy` headers (429 + Retry-After beyond it); {rl['users']:,} users on the Free-plan budget. "
      f"Ceiling: the {rl['requests']} requests the run needs, at the bucket's rate after its burst.")
    w("")
    w("| achieved | share of the ceiling (target ≥ 95 %) | 429 answers | users lost | reported failed |")
    w("|---:|---:|---:|---:|---:|")
    w(f"| {rl['achievedUsersPerS']:.0f} users/s | {rl['share'] * 100:.0f} % | "
      f"{rl['responses429']} | {rl['usersLost']} | {rl['reportFailed']} |")
if "wasmRawBytes" in top:
    mem, cli = top.get("memory"), top.get("cli")
    section("Size, start-up, memory")
    w("| | figure | target |")
    w("|---|---:|---:|")
    w(f"| Worker wasm, raw | {top['wasmRawBytes'] / 1024:,.0f} KiB | |")
    w(f"| Worker wasm, gzip -9 | {top['wasmGzipBytes'] / 1024:,.0f} KiB | ≤ 400 KiB |")
    if "wranglerColdStartS" in top:
        w(f"| `wrangler dev` cold start (prebuilt Worker, to first /healthz 200) | {top['wranglerColdStartS']:.1f} s | |")
    if mem:
        w(f"| Worker wasm linear memory before → after {mem['webhooks']:,} webhooks | "
          f"{mem['wasmBytesBefore'] / 1024:,.0f} KiB → {mem['wasmBytesAfter'] / 1024:,.0f} KiB | no growth |")
    if cli:
        w(f"| CLI peak RSS, Bulk-provisioning {cli['users']:,} users ({cli['inputBytes'] / 1e6:.1f} MB input) | "
          f"{cli['peakRssKiB'] / 1024:,.1f} MiB ({cli['created']:,} created in {cli['seconds']:.0f} s) | streams |")


def num(value, spec=",.0f", unit=""):
    """A figure, or – when the run did not measure it."""
    return "–" if value is None else f"{value:{spec}}{unit}"


if graph:
    passes = graph.get("passes") or []
    page_size = graph.get("pageSize")
    section("Microsoft Graph sync")
    w(f"The Worker's Graph sync on the Free-plan budget ({graph.get('subrequestBudget', 50)} subrequests per "
      "invocation; one `SyncRunner` Durable Object runs the pass a slice per invocation, continued by alarm) "
      "against the Graph fixture (`tests/graphfix`) and the stand-in, each size on a fresh fixture, stand-in "
      "and Worker state. `/users/delta` pages hold "
      + (f"{page_size} users (the fixture's default page size)" if page_size else "the fixture's default page size")
      + ". Every user is a direct member of `cxone-agent` (scope `mapped-groups`), so each changed person "
      "costs a `transitiveMemberOf` read. Wall time runs from `POST /sync/run` until `GET /sync/status` "
      "(polled every 0.2 s, every 1 s after 10 s) shows the pass finished, and includes the 1 s the sync "
      "object waits for further asks before it starts a pass; the pass's own time (its summary's start to "
      "finish) is beside it. Workerd CPU: the Worker's and its Durable Objects' processes under this "
      "`wrangler dev`, status polls included.")
    w("")
    w("First pass, every user new (each size checked: `created` = users):")
    w("")
    w("| users | wall | pass | users/s | delta pages | slices | Graph reads per person | workerd CPU per 1,000 users | workerd CPU per delta page | failed slices | longest pause |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in passes:
        f = row.get("first") or {}
        w(f"| {row['users']:,} | {num(f.get('wallS'), '.1f', ' s')} | {num(f['passMs'] / 1000 if 'passMs' in f else None, '.1f', ' s')} "
          f"| {num(f.get('usersPerS'), ',.1f')} | {num(f.get('pages'))} | {num(f.get('slices'))} "
          f"| {num(f.get('membershipRequestsPerChange'), '.2f')} | {num(f.get('workerdCpuMsPer1000'), ',.0f', ' ms')} "
          f"| {num(f.get('workerdCpuMsPerPage'), ',.0f', ' ms')} | {num(f.get('workerErrors'))} "
          f"| {num(f.get('longestPauseS'), '.1f', ' s')} |")
    fixture_cpu = [(row["users"], row["first"]) for row in passes
                   if all(k in (row.get("first") or {}) for k in ("wranglerNodeCpuS", "graphfixCpuS", "standinCpuS"))]
    if fixture_cpu:
        w("")
        w("Everything shares the machine's cores; CPU used during the first pass besides workerd's: "
          + "; ".join(f"{n:,} users: wrangler's Node process {f['wranglerNodeCpuS']:.1f} s, stand-in "
                      f"{f['standinCpuS']:.1f} s, Graph fixture {f['graphfixCpuS']:.1f} s" for n, f in fixture_cpu) + ".")
    failed = [(row["users"], row["first"]) for row in passes if (row.get("first") or {}).get("workerErrors")]
    if failed:
        w("")
        w("Failed slices: uncaught errors in `wrangler dev`'s log while the pass ran (a failed alarm is "
          "retried; the sync object's watchdog alarm, 120 s after a slice began, resumes a pass whose slice "
          "died). The longest pause is the longest time between two changes the pass applied (from the "
          "Worker's audit lines); the wall time includes it"
          + (f" (first error: `{failed[0][1]['workerErrorCause']}`)" if failed[0][1].get("workerErrorCause") else "")
          + ".")
    seconds = [row for row in passes if row.get("second")]
    if seconds:
        w("")
        w("Second pass, after 1 % of the users changed `jobTitle` (each checked: `updated` = changed users). "
          "A delta entry then carries only the changed property, so the Worker reads the user in full "
          "as well as its groups:")
        w("")
        w("| users | changed | wall | pass | changes/s (wall) | changes/s (pass) | delta pages | slices | Graph reads per changed person | stand-in PATCHes | other SCIM requests | failed slices |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in seconds:
            s = row["second"]
            other = s["standinScimRequests"] - s["standinPatches"] if "standinScimRequests" in s and "standinPatches" in s else None
            w(f"| {row['users']:,} | {num(s.get('changedUsers'))} | {num(s.get('wallS'), '.1f', ' s')} "
              f"| {num(s['passMs'] / 1000 if 'passMs' in s else None, '.2f', ' s')} | {num(s.get('changesPerS'), ',.1f')} "
              f"| {num(s.get('changesPerPassS'), ',.1f')} | {num(s.get('pages'))} | {num(s.get('slices'))} "
              f"| {num(s.get('membershipRequestsPerChange'), '.2f')} | {num(s.get('standinPatches'))} | {num(other)} "
              f"| {num(s.get('workerErrors'))} |")
    note = graph.get("notification")
    if note:
        w("")
        w(f"Change notification → CXone, {note['samples']} samples one at a time on the "
          f"{note['directoryUsers']:,}-user directory: the fixture changes one user's `jobTitle` and POSTs a "
          "change notification for that user to the Worker's `/graph/notifications` (answered 202 in "
          f"{num(note.get('workerAnswerP50Ms'), '.0f', ' ms')} at the median); timed from that POST until the "
          "stand-in's `GET /Users?filter=externalId eq \"…\"` (polled every 20 ms) shows the new title. "
          "The 1 s the sync object waits before it starts a pass is part of it.")
        w("")
        w("| p50 | p95 | max | failed slices |")
        w("|---:|---:|---:|---:|")
        w(f"| {note['p50Ms']:,.0f} ms | {note['p95Ms']:,.0f} ms | {note['maxMs']:,.0f} ms | {num(note.get('workerErrors'))} |")
cxone = e2e.get("cxone") or figures("cxone.json").get("cxone")
if cxone:
    section("CXone as NICE publishes it (no Bulk)")
    w(f"The stand-in's `cxone` profile (access-key tokens, `userName eq` the only search, no `/Bulk`) and the "
      f"Worker with `CXONE_PROFILE=cxone`. A bulk run sends one `POST /Users` per user, {cxone['lanes']} at once, "
      f"every user holding their person's ledger, on the Paid budget ({cxone['subrequestBudget']:,} subrequests "
      f"per invocation). Ceiling: the stand-in answering the same POST bodies sent straight to it from Python, "
      f"{cxone['lanes']} in flight. Each size on a fresh store.")
    w("")
    w("| users | stand-in direct | Worker | share (target ≥ 0.9) | POSTs received | Bulk requests | lookups |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for r in cxone["bulk"]:
        w(f"| {r['users']:,} | {r['standinDirectPerS']:,.1f} | {r['workerPerS']:,.1f} | {r['share']:.2f} | "
          f"{r['postsReceived']:,} | {r['bulkRequestsReceived']} | {r['lookups']} |")
    g = cxone.get("graphFirstPass")
    if g:
        w("")
        w(f"Graph first pass on `cxone`, {g['users']:,} users on the Free-plan budget ({g['subrequestBudget']} "
          f"subrequests per invocation): {g['wallS']:,.1f} s wall ({g['usersPerS']:,.1f} users/s), "
          f"{g['slices']:,} slices, {g['posts']:,} POSTs and {g['bulkRequests']} Bulk requests received.")
w("")
w("## Commands")
w("")
w("```sh")
w("make bench    # runs everything below and rewrites this file")
w("cargo bench -p cxone-scim-core --bench core -- --warm-up-time 1 --measurement-time 3")
w("$PY_VENV/bin/python bench/python_baseline.py core/tests/fixtures")
w("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \\")
w("  cargo test -p cxone-scim-edge --target wasm32-unknown-unknown --release --lib -- --include-ignored --nocapture webhook_cost")
w("cargo build --profile bench -p cxone-scim-cli")
w("$PY_VENV/bin/python bench/e2e.py target/bench/e2e.json   # --quick, --latency-only, --bulk-only, --graph-only, --cxone-only, --floor-only, --leavers-only")
w("$PY_VENV/bin/python bench/report.py target/bench > BENCHMARKS.md")
w("```")
w("")
w("Inputs shared by the Rust and Python sides are written by `bench/make_fixtures.py` into "
  "`core/tests/fixtures/` (`bench_users_50.json`, `bench_bulk_response_50.json`, `graph_users_delta_page.json`).")
print("\n".join(out))
