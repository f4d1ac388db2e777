"""End-to-end fixtures: the CXone stand-in (scim2-server behind tests/standin/standin.py) and the
real Worker under `wrangler dev` (workerd, local KV), on ports of their own so `make dev` can run
beside them. Both are started once per session, in their own process groups, and stopped by
group whatever the outcome."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import ROOT, WranglerDev, start_standin, stop_group, write_env_file  # noqa: E402
from helpers import Client, Standin  # noqa: E402

STANDIN_PORT = int(os.environ.get("E2E_STANDIN_PORT", "18790"))
WORKER_PORT = int(os.environ.get("E2E_WORKER_PORT", "18787"))
INSPECTOR_PORT = int(os.environ.get("E2E_INSPECTOR_PORT", "19229"))
CLIENT_ID = "cxone-scim-e2e"
CLIENT_SECRET = "e2e-client-secret"
WEBHOOK_SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWZvci10ZXN0cw=="
OLD_WEBHOOK_SECRET = "whsec_b2xkLXJvdGF0ZWQtd2ViaG9vay1zZWNyZXQ="
ADMIN_TOKEN = "e2e-admin-token"
# How long a delivery holds a person's ledger, and how long another waits for it before a 503.
LEDGER_LEASE_MS = 5000
LEDGER_WAIT_MS = 1000


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="cxone-scim-e2e-") as d:
        yield Path(d)
        # Keep the logs of the last run for diagnosis (target/ is git-ignored).
        keep = ROOT / "target/e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("wrangler.log", "standin.log"):
            if (Path(d) / name).exists():
                shutil.copy(Path(d) / name, keep / name)


@pytest.fixture(scope="session")
def standin(workdir):
    proc = start_standin(STANDIN_PORT, CLIENT_ID, CLIENT_SECRET, workdir / "standin.log")
    try:
        yield Standin(f"http://127.0.0.1:{STANDIN_PORT}", CLIENT_ID, CLIENT_SECRET)
    finally:
        stop_group(proc)


@pytest.fixture(scope="session")
def worker(standin, workdir):
    env_file = workdir / "e2e.vars"
    write_env_file(env_file, standin.url, CLIENT_ID, CLIENT_SECRET, f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
                   f"old-admin-token {ADMIN_TOKEN}",
                   ["RETRY_BASE_MS=20", "RETRY_CAP_MS=200", "RETRY_MAX_ATTEMPTS=3",
                    f"LEDGER_LEASE_MS={LEDGER_LEASE_MS}", f"LEDGER_WAIT_MS={LEDGER_WAIT_MS}"])
    dev = WranglerDev(workdir, env_file, WORKER_PORT, INSPECTOR_PORT)
    try:
        dev.start()
        yield Client(f"http://127.0.0.1:{WORKER_PORT}", WEBHOOK_SECRET, ADMIN_TOKEN, dev.log_path, dev.restart)
    finally:
        dev.stop()


@pytest.fixture
def clean(standin):
    """Each test starts with no faults, filters honoured and an empty request log."""
    standin.clear_faults()
    standin.configure(ignoreFilter=False)
    standin.clear_log()
    yield standin
    standin.clear_faults()
    standin.configure(ignoreFilter=False)
