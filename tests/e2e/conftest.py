"""End-to-end fixtures: the CXone stand-in (scim2-server behind tests/standin/standin.py), the
Microsoft Graph fixture (tests/graphfix/graphfix.py), the IAM notice receiver
(tests/iamfix/iamfix.py) and the real Worker under `wrangler dev` (workerd, local KV), on ports of
their own so `make dev` can run beside them. All are started once per session, in their own
process groups, and stopped by group whatever the outcome."""

import base64
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import (ROOT, WranglerDev, start_graphfix, start_iamfix, start_standin, stop_group,  # noqa: E402
                     write_env_file)
from helpers import Client, GraphFix, IamFix, Standin  # noqa: E402

STANDIN_PORT = int(os.environ.get("E2E_STANDIN_PORT", "18790"))
WORKER_PORT = int(os.environ.get("E2E_WORKER_PORT", "18787"))
INSPECTOR_PORT = int(os.environ.get("E2E_INSPECTOR_PORT", "19229"))
GRAPHFIX_PORT = int(os.environ.get("E2E_GRAPHFIX_PORT", "18795"))
IAMFIX_PORT = int(os.environ.get("E2E_IAMFIX_PORT", "18796"))
# HR's receiver of leaver notices: a second instance of the same receiver fixture.
HRFIX_PORT = int(os.environ.get("E2E_HRFIX_PORT", "18779"))
CLIENT_ID = "cxone-scim-e2e"
CLIENT_SECRET = "e2e-client-secret"
WEBHOOK_SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWZvci10ZXN0cw=="
OLD_WEBHOOK_SECRET = "whsec_b2xkLXJvdGF0ZWQtd2ViaG9vay1zZWNyZXQ="
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdefgh"
# The token being rotated out, accepted beside ADMIN_TOKEN by the session Worker.
OLD_ADMIN_TOKEN = "e2e-old-admin-token-0123456789abcd"
# The key the Worker signs its role sync notices to the IAM system with (new each session).
IAM_WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
# The key the Worker signs its leaver notices to HR with.
HR_WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
# Where the stand-in serves NICE's Admin API.
ADMIN_API_PATH = "/incontactapi/services/v31.0"
# How long a delivery holds a person's ledger, and how long another waits for it before a 503.
LEDGER_LEASE_MS = 5000
LEDGER_WAIT_MS = 1000
# A CXone request may take this long; a lease must outlive it by a second to start one.
CXONE_REQUEST_TIMEOUT_MS = 2000
# Microsoft Graph sync against the Graph fixture.
GRAPH_TENANT = "2f4a9a0e-7f3c-4f2b-9d3e-3c1d5b6a7e80"
GRAPH_CLIENT_ID = "cxone-scim-e2e-graph"
GRAPH_CLIENT_SECRET = "e2e-graph-client-secret"
GRAPH_CLIENT_STATE = "e2e-graph-client-state-7c1f2a"
DELETION_THRESHOLD = 25
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# One Worker serves the whole session, so its ATTRIBUTE_MAP is the default map with one change:
# department is owned by CXone (set when the account is created, never overwritten), which
# tests/e2e/test_graph_sync.py checks. The other entries are the defaults, written out.
ATTRIBUTE_MAP = {
    "id": "externalId",
    "userPrincipalName": "userName",
    "givenName": "name.givenName",
    "surname": "name.familyName",
    "mail": 'emails[type eq "work"].value',
    "accountEnabled": "active",
    "jobTitle": "title",
    "department": {"to": f"{ENTERPRISE}:department", "owner": "cxone"},
    "employeeId": f"{ENTERPRISE}:employeeNumber",
}


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="cxone-scim-e2e-") as d:
        yield Path(d)
        # Keep the logs of the last run for diagnosis (target/ is git-ignored).
        keep = ROOT / "target/e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("wrangler.log", "standin.log", "standin-cxone.log", "graphfix.log", "iamfix.log", "hrfix.log"):
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
def graphfix(workdir):
    proc = start_graphfix(GRAPHFIX_PORT, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, workdir / "graphfix.log",
                          tenant=GRAPH_TENANT)
    try:
        yield GraphFix(f"http://127.0.0.1:{GRAPHFIX_PORT}")
    finally:
        stop_group(proc)


def notice_receiver(port, secret, log_path):
    """The notice receiver fixture (tests/iamfix) on `port`, checking `secret`; stopped by process
    group however the session ends."""
    proc = start_iamfix(port, secret, log_path)
    try:
        yield IamFix(f"http://127.0.0.1:{port}")
    finally:
        stop_group(proc)


@pytest.fixture(scope="session")
def iamfix(workdir):
    yield from notice_receiver(IAMFIX_PORT, IAM_WEBHOOK_SECRET, workdir / "iamfix.log")


@pytest.fixture(scope="session")
def hrfix(workdir):
    yield from notice_receiver(HRFIX_PORT, HR_WEBHOOK_SECRET, workdir / "hrfix.log")


def graph_vars(graphfix_url, worker_port):
    """The Worker's Graph sync settings, pointed at the Graph fixture."""
    return [f"GRAPH_BASE_URL={graphfix_url}/v1.0",
            f"GRAPH_TOKEN_URL={graphfix_url}/{GRAPH_TENANT}/oauth2/v2.0/token",
            f"GRAPH_CLIENT_ID={GRAPH_CLIENT_ID}",
            f"GRAPH_CLIENT_SECRET={GRAPH_CLIENT_SECRET}",
            f"GRAPH_CLIENT_STATE={GRAPH_CLIENT_STATE}",
            "GRAPH_USER_SCOPE=mapped-groups",
            f"DELETION_THRESHOLD={DELETION_THRESHOLD}",
            "GRAPH_DELETE_MODE=disable",
            # A group's change makes the next pass a full round at once (15 min apart by default).
            "GRAPH_GROUP_ROUND_MINUTES=0",
            f"GRAPH_NOTIFICATION_URL=http://127.0.0.1:{worker_port}/graph/notifications",
            f"ATTRIBUTE_MAP='{json.dumps(ATTRIBUTE_MAP)}'"]


# Retries short enough for tests that wait on them.
FAST_RETRIES = ["RETRY_BASE_MS=20", "RETRY_CAP_MS=200", "RETRY_MAX_ATTEMPTS=3"]


@contextlib.contextmanager
def own_worker(workdir, name, offset, scim_url, extra, dev_class=WranglerDev, ready=(200,), profile="rfc7644"):
    """A Worker of its own beside the session's, for a configuration that one cannot have: its
    state under `workdir/name`, its ports `offset` above the session Worker's (and inspector's),
    the test secrets, `extra` settings, set up for a stand-in in `profile`. Yields the started
    `wrangler dev`; stopped, by process group, however the test ends."""
    home = workdir / name
    home.mkdir(exist_ok=True)
    env_file = home / "e2e.vars"
    write_env_file(env_file, scim_url, CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, ADMIN_TOKEN, extra, profile=profile)
    dev = dev_class(home, env_file, WORKER_PORT + offset, INSPECTOR_PORT + offset, ready=ready)
    try:
        dev.start()
        yield dev
    finally:
        dev.stop()


def client_of(dev):
    """The test client of a Worker started by `own_worker`."""
    return Client(f"http://127.0.0.1:{dev.port}", WEBHOOK_SECRET, ADMIN_TOKEN, dev.log_path, dev.restart)


@pytest.fixture(scope="session")
def worker(standin, graphfix, iamfix, hrfix, workdir):
    env_file = workdir / "e2e.vars"
    write_env_file(env_file, standin.url, CLIENT_ID, CLIENT_SECRET, f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
                   f"{OLD_ADMIN_TOKEN},{ADMIN_TOKEN}",
                   [*FAST_RETRIES,
                    f"LEDGER_LEASE_MS={LEDGER_LEASE_MS}", f"LEDGER_WAIT_MS={LEDGER_WAIT_MS}",
                    f"CXONE_REQUEST_TIMEOUT_MS={CXONE_REQUEST_TIMEOUT_MS}",
                    *graph_vars(graphfix.url, WORKER_PORT),
                    f"IAM_WEBHOOK_URL={iamfix.url}/notices", f"IAM_WEBHOOK_SECRET={IAM_WEBHOOK_SECRET}",
                    f"HR_WEBHOOK_URL={hrfix.url}/notices", f"HR_WEBHOOK_SECRET={HR_WEBHOOK_SECRET}"])
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
