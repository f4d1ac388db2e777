"""Starting and stopping the local stack (CXone stand-in, Graph fixture, IAM notice receiver,
`wrangler dev`) for the end-to-end tests and the benchmarks. Every process runs in its own process
group and is stopped by group."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wait_http(url, deadline_s, proc=None, what="", ready=(200,)):
    """Waits until `url` answers with a status in `ready`."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in ready:
                    return
        except urllib.error.HTTPError as err:
            if err.code in ready:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {deadline_s}s")


def wait_port_free(port, deadline_s=20):
    """A server stopped a moment ago may still hold its port; wait for it to let go."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} is still in use")


def stop_group(proc):
    if proc is None or proc.poll() is not None:
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


def start_standin(port, client_id, client_secret, log_path, profile=None):
    """scim2-server behind tests/standin/standin.py on `port` (scim2-server on port + 1), in the
    stand-in's `profile` ("rfc7644" or "cxone"; its default, rfc7644, unless given)."""
    wait_port_free(port)
    wait_port_free(port + 1)
    log = open(log_path, "a")
    args = [sys.executable, str(ROOT / "tests/standin/standin.py"), "--port", str(port), "--scim-port", str(port + 1),
            "--client-id", client_id, "--client-secret", client_secret]
    if profile:
        args += ["--profile", profile]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        # scim2-server may take a while to start on a busy machine (the stand-in waits 60 s for it).
        wait_http(f"http://127.0.0.1:{port}/_standin/health", 75, proc, "stand-in")
    except Exception:
        stop_group(proc)
        raise
    return proc


def start_graphfix(port, client_id, client_secret, log_path, tenant=None):
    """The Microsoft Graph fixture, tests/graphfix/graphfix.py, on `port` (its default tenant
    unless `tenant` is given)."""
    wait_port_free(port)
    log = open(log_path, "a")
    args = [sys.executable, str(ROOT / "tests/graphfix/graphfix.py"), "--port", str(port),
            "--client-id", client_id, "--client-secret", client_secret]
    if tenant:
        args += ["--tenant", tenant]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_http(f"http://127.0.0.1:{port}/_graph/health", 30, proc, "Graph fixture")
    except Exception:
        stop_group(proc)
        raise
    return proc


def start_iamfix(port, secret, log_path, tolerance=None):
    """The IAM notice receiver, tests/iamfix/iamfix.py, on `port`, checking signatures with
    `secret` (a whsec_ secret, or a list of them during a rotation) and timestamps within
    `tolerance` seconds (its default 300 unless given). Notices go to
    http://127.0.0.1:{port}/notices."""
    wait_port_free(port)
    log = open(log_path, "a")
    args = [sys.executable, str(ROOT / "tests/iamfix/iamfix.py"), "--port", str(port)]
    for s in ([secret] if isinstance(secret, str) else secret):
        args += ["--secret", s]
    if tolerance is not None:
        args += ["--tolerance", str(tolerance)]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_http(f"http://127.0.0.1:{port}/_iam/health", 30, proc, "IAM notice receiver")
    except Exception:
        stop_group(proc)
        raise
    return proc


class WranglerDev:
    """`wrangler dev` in its own process group, restartable with its local state kept. `ready`:
    the /healthz statuses that mean it is up (503 for a deliberately misconfigured Worker)."""

    def __init__(self, workdir, env_file, port, inspector_port, ready=(200,)):
        self.workdir = Path(workdir)
        self.env_file = env_file
        self.port = port
        self.inspector_port = inspector_port
        self.ready = ready
        self.log_path = self.workdir / "wrangler.log"
        self.proc = None
        self.started_in = None

    def config(self):
        """wrangler.toml without its `[build]` section: the Worker is built before the run, and
        wrangler's source watcher would otherwise restart the Worker mid-request."""
        lines, skipping = [], False
        for line in (ROOT / "wrangler.toml").read_text().splitlines():
            if line.startswith("["):
                skipping = line.strip() == "[build]"
            if line.startswith("main = "):
                line = f'main = "{ROOT / "edge/build/worker/shim.mjs"}"'
            if not skipping:
                lines.append(line)
        path = self.workdir / f"wrangler.{self.port}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self):
        wait_port_free(self.port)
        wait_port_free(self.inspector_port)
        log = open(self.log_path, "a")
        env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="true")
        began = time.monotonic()
        self.proc = subprocess.Popen(
            ["npx", "wrangler", "dev", "--config", str(self.config()), "--ip", "127.0.0.1", "--port", str(self.port),
             "--inspector-port", str(self.inspector_port), "--show-interactive-dev-session=false",
             "--persist-to", str(self.workdir / "state"), "--env-file", str(self.env_file)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True)
        log.close()
        wait_http(f"http://127.0.0.1:{self.port}/healthz", 120, self.proc, "wrangler dev", self.ready)
        self.started_in = time.monotonic() - began

    def stop(self):
        stop_group(self.proc)

    def restart(self):
        self.stop()
        self.start()


def write_env_file(path, standin_url, client_id, client_secret, webhook_secrets, admin_tokens, extra=(),
                   profile="rfc7644"):
    """The Worker's settings for a stand-in in `profile`: rfc7644 (client credentials at
    /oauth/token) or cxone (NICE's access-key exchange, the stand-in's client as the key)."""
    if profile == "cxone":
        auth = [f"CXONE_TOKEN_URL={standin_url}/authentication/v1/token/access-key",
                "CXONE_AUTH=access_key",
                f"CXONE_ACCESS_KEY_ID={client_id}",
                f"CXONE_ACCESS_KEY_SECRET={client_secret}"]
    else:
        auth = [f"CXONE_TOKEN_URL={standin_url}/oauth/token",
                "CXONE_AUTH=client_credentials",
                f"CXONE_CLIENT_ID={client_id}",
                f"CXONE_CLIENT_SECRET={client_secret}"]
    # The stand-in serves NICE's Admin API too (a leaver's agent, dependencies and session).
    base = [f"CXONE_SCIM_BASE_URL={standin_url}/scim/v2", f"CXONE_PROFILE={profile}", *auth,
            f"CXONE_API_BASE_URL={standin_url}/incontactapi/services/v31.0",
            f"WEBHOOK_SECRETS={webhook_secrets}", f"ADMIN_TOKEN={admin_tokens}"]
    # A setting in `extra` replaces the one above (one line per name).
    named = {line.split("=", 1)[0] for line in extra}
    path.write_text("\n".join([*(line for line in base if line.split("=", 1)[0] not in named), *extra]) + "\n")
