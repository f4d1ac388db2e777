"""Writes BENCHMARKS.md from the figures `make bench` just measured.
Usage: report.py BENCH_DIR > BENCHMARKS.md   (BENCH_DIR holds python.json, wasm.json, e2e.json;
criterion's estimates are read from target/criterion)."""

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
bench = Path(sys.argv[1])
python = json.loads((bench / "python.json").read_text())
wasm = json.loads((bench / "wasm.json").read_text())
e2e = json.loads((bench / "e2e.json").read_text())
fixtures = ROOT / "core/tests/fixtures"


def crit(group, name):
    """Median time (s) of a criterion benchmark."""
    est = json.loads((ROOT / "target/criterion" / group / name / "new/estimates.json").read_text())
    return est["median"]["point_estimate"] / 1e9


def us(s):
    return f"{s * 1e6:,.1f} µs"


def cpu():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


out = []
w = out.append
w("# Benchmarks")
w("")
w(f"Measured {time.strftime('%Y-%m-%d')} on {cpu()} ({platform.machine()}, {len(Path('/proc/cpuinfo').read_text().split('processor')) - 1} cores), "
  "all sides in one `make bench` run. Figures are medians; machines like this are noisy, so read the ratios.")
if e2e.get("quick"):
    w("")
    w("**Quick mode** (`BENCH_QUICK=1`): smaller end-to-end sizes than the full run.")
w("")
w("## 1. Core vs Python (scim2-models 0.12.3), same input bytes")
w("")
w("| work | Rust core | Python | ratio | target |")
w("|---|---:|---:|---:|---:|")
for name, label in [("bulk_request_build_50", "build + serialise a 50-op Bulk request"),
                    ("bulk_response_parse_classify_50", "parse + classify a 50-op Bulk response"),
                    ("user_validate_serialize", "validate + serialise a User (RFC 7643 §8.3)"),
                    ("patch_diff", "minimal PATCH diff + serialise")]:
    r, p = crit("vs_python", name), python[name]
    w(f"| {label} | {us(r)} | {us(p)} | {p / r:,.0f}× | ≥ 200× |")
w("")
w("## 2. Typed parsing vs `serde_json::Value` on the same bytes")
w("")
w("| input | bytes | typed | untyped `Value` | typed / untyped speed |")
w("|---|---:|---:|---:|---:|")
for group, fixture in [("parse_bulk_response", "bench_bulk_response_50.json"),
                       ("parse_graph_delta_page", "graph_users_delta_page.json")]:
    size = (fixtures / fixture).stat().st_size
    t, v = crit(group, "typed"), crit(group, "untyped_value")
    w(f"| {fixture} | {size:,} | {size / t / 1e6:,.0f} MB/s | {size / v / 1e6:,.0f} MB/s | {v / t:.2f}× (target ≥ 1.0×) |")
w("")
w("## 3. Webhook cost (2 KiB body)")
w("")
w("| | native | wasm32 (release, Node) |")
w("|---|---:|---:|")
w(f"| HMAC-SHA256 verify | {us(crit('webhook', 'verify_2KiB'))} | {wasm['wasmVerify2KiBUs']:.1f} µs |")
w(f"| verify + parse + policy + first request planned | {us(crit('webhook', 'handle_core_2KiB'))} | "
  f"{wasm['wasmHandleCore2KiBUs']:.1f} µs |")
w("")
w("Target: full request handling well under 1 ms of CPU (the Free plan allows 10 ms).")
w("")
w("## 4. Worker round trip under `wrangler dev` vs a direct SCIM POST")
w("")
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
w("")
w("## 5. Bulk provisioning throughput (users/s)")
w("")
w("The Worker on the Free-plan budget (50 subrequests per invocation; a Durable Object per run, a "
  "SQLite row per user, an alarm per slice) against the stand-in's own ceiling: Bulk POSTs of 50 "
  "creates sent straight to it, one after another, on a fresh store each.")
w("")
w("| users | stand-in ceiling | Worker, Bulk | Worker / ceiling (target ≥ 0.9) | requests | run state per user | workerd CPU per 1,000 users | one webhook per user |")
w("|---:|---:|---:|---:|---:|---:|---:|---:|")
for row in e2e["throughput"]:
    hook = f"{row['workerWebhookPerS']:,.0f}" if row.get("workerWebhookPerS") else "–"
    w(f"| {row['users']:,} | {row['standinBulkDirectPerS']:,.0f} | {row['workerBulkPerS']:,.0f} "
      f"| {row['workerBulkPerS'] / row['standinBulkDirectPerS']:.2f} "
      f"| {row['workerBulkRequests']} Bulk + {row['workerBulkLookups']} lookups "
      f"| {row['stateBytesPerUser']:,.0f} B | {row['workerdCpuMsPer1000']:,.0f} ms | {hook} |")
w("")
w(f"Worker wasm linear memory after the runs: {e2e['workerWasmBytesAfterBulk'] / 2**20:,.1f} MiB.")
rl = e2e["rateLimit"]
w("")
w("## 6. Bulk against a rate limit")
w("")
w(f"Stand-in token bucket: {rl['requestsPerS']} requests/s, burst {rl['requestsPerS']}, announced in `RateLimit`/"
  f"`RateLimit-Policy` headers (429 + Retry-After beyond it); {rl['users']:,} users on the Free-plan budget. "
  f"Ceiling: the {rl['requests']} requests the run needs, at the bucket's rate after its burst.")
w("")
w("| achieved | share of the ceiling (target ≥ 95 %) | 429 answers | users lost | reported failed |")
w("|---:|---:|---:|---:|---:|")
w(f"| {rl['achievedUsersPerS']:.0f} users/s | {rl['share'] * 100:.0f} % | "
  f"{rl['responses429']} | {rl['usersLost']} | {rl['reportFailed']} |")
mem, cli = e2e["memory"], e2e["cli"]
w("")
w("## 7. Size, start-up, memory")
w("")
w("| | figure | target |")
w("|---|---:|---:|")
w(f"| Worker wasm, raw | {e2e['wasmRawBytes'] / 1024:,.0f} KiB | |")
w(f"| Worker wasm, gzip -9 | {e2e['wasmGzipBytes'] / 1024:,.0f} KiB | ≤ 400 KiB |")
w(f"| `wrangler dev` cold start (prebuilt Worker, to first /healthz 200) | {e2e['wranglerColdStartS']:.1f} s | |")
w(f"| Worker wasm linear memory before → after {mem['webhooks']:,} webhooks | "
  f"{mem['wasmBytesBefore'] / 1024:,.0f} KiB → {mem['wasmBytesAfter'] / 1024:,.0f} KiB | no growth |")
w(f"| CLI peak RSS, Bulk-provisioning {cli['users']:,} users ({cli['inputBytes'] / 1e6:.1f} MB input) | "
  f"{cli['peakRssKiB'] / 1024:,.1f} MiB ({cli['created']:,} created in {cli['seconds']:.0f} s) | streams |")
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
w("$PY_VENV/bin/python bench/e2e.py target/bench/e2e.json")
w("$PY_VENV/bin/python bench/report.py target/bench > BENCHMARKS.md")
w("```")
w("")
w("Inputs shared by the Rust and Python sides are written by `bench/make_fixtures.py` into "
  "`core/tests/fixtures/` (`bench_users_50.json`, `bench_bulk_response_50.json`, `graph_users_delta_page.json`).")
print("\n".join(out))
