"""End-to-end fixtures: the CXone stand-in (scim2-server behind tests/standin/standin.py) and the
real Worker under `wrangler dev` (workerd, local KV), on ports of their own so `make dev` can run
beside them. Both are started once per session, in their own process groups, and stopped by
group whatever the outcome."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import Client, Standin

ROOT = Path(__file__).resolve().parents[2]
STANDIN_PORT = int(os.environ.get("E2E_STANDIN_PORT", "18790"))
WORKER_PORT = int(os.environ.get("E2E_WORKER_PORT", "18787"))
INSPECTOR_PORT = int(os.environ.get("E2E_INSPECTOR_PORT", "19229"))
CLIENT_ID = "cxone-scim-e2e"
CLIENT_SECRET = "e2e-client-secret"
WEBHOOK_SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWZvci10ZXN0cw=="
OLD_WEBHOOK_SECRET = "whsec_b2xkLXJvdGF0ZWQtd2ViaG9vay1zZWNyZXQ="
ADMIN_TOKEN = "e2e-admin-token"


def wait_http(url, deadline_s, proc=None, what=""):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready at {url} after {deadline_s}s")


def stop_group(proc):
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


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
    log = open(workdir / "standin.log", "w")
    proc = subprocess.Popen(
        [os.environ.get("PYTHON", os.sys.executable), str(ROOT / "tests/standin/standin.py"),
         "--port", str(STANDIN_PORT), "--scim-port", str(STANDIN_PORT + 1),
         "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{STANDIN_PORT}/_standin/health", 30, proc, "stand-in")
        yield Standin(f"http://127.0.0.1:{STANDIN_PORT}", CLIENT_ID, CLIENT_SECRET)
    finally:
        stop_group(proc)
        log.close()


class WranglerDev:
    """`wrangler dev` in its own process group, restartable with its local state kept."""

    def __init__(self, workdir, env_file):
        self.workdir = workdir
        self.env_file = env_file
        self.log_path = workdir / "wrangler.log"
        self.proc = None

    def start(self):
        log = open(self.log_path, "a")
        env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="true")
        self.proc = subprocess.Popen(
            ["npx", "wrangler", "dev", "--ip", "127.0.0.1", "--port", str(WORKER_PORT),
             "--inspector-port", str(INSPECTOR_PORT), "--show-interactive-dev-session=false",
             "--persist-to", str(self.workdir / "state"), "--env-file", str(self.env_file)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True)
        log.close()
        wait_http(f"http://127.0.0.1:{WORKER_PORT}/healthz", 120, self.proc, "wrangler dev")

    def stop(self):
        if self.proc is not None:
            stop_group(self.proc)

    def restart(self):
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def worker(standin, workdir):
    env_file = workdir / "e2e.vars"
    env_file.write_text("\n".join([
        f"CXONE_SCIM_BASE_URL={standin.url}/scim/v2",
        f"CXONE_TOKEN_URL={standin.url}/oauth/token",
        f"CXONE_CLIENT_ID={CLIENT_ID}",
        f"CXONE_CLIENT_SECRET={CLIENT_SECRET}",
        f"WEBHOOK_SECRETS={WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
        f"ADMIN_TOKEN=old-admin-token {ADMIN_TOKEN}",
        "RETRY_BASE_MS=20",
        "RETRY_CAP_MS=200",
        "RETRY_MAX_ATTEMPTS=3",
    ]) + "\n")
    dev = WranglerDev(workdir, env_file)
    try:
        dev.start()
        yield Client(f"http://127.0.0.1:{WORKER_PORT}", WEBHOOK_SECRET, ADMIN_TOKEN, dev.log_path, dev.restart)
    finally:
        dev.stop()


@pytest.fixture
def clean(standin):
    """Each test starts with no faults and an empty request log."""
    standin.clear_faults()
    standin.clear_log()
    yield standin
    standin.clear_faults()
