"""The native CLI on the same core: bulk provisioning against the stand-in, signing test
webhooks the Worker accepts, policy checks and dry-run plans."""

import json
import os
import subprocess
import urllib.parse
import uuid

from conftest import CLIENT_ID, CLIENT_SECRET, ROOT, WEBHOOK_SECRET
from helpers import request
from test_bulk import scim_shape, users

CLI = ROOT / "target/debug/cxone-scim"
POLICY = ROOT / "core/tests/fixtures/role_policy.json"


def cli(*args, stdin=None, env=None):
    assert CLI.exists(), f"{CLI} is not built"
    return subprocess.run([str(CLI), *args], input=stdin, capture_output=True, env={**os.environ, **(env or {})},
                          timeout=300)


def test_bulk_from_a_file(standin, clean, tmp_path):
    tag = uuid.uuid4().hex[:6]
    batch = users(120, tag)
    assert clean.scim("POST", "/Users", scim_shape(batch[5]))[0] == 201
    batch.append({"userName": "x", "email": "bad"})
    (tmp_path / "users.json").write_text(json.dumps({"users": batch}))
    env = {"CXONE_SCIM_BASE_URL": f"{standin.url}/scim/v2", "CXONE_TOKEN_URL": f"{standin.url}/oauth/token",
           "CXONE_PROFILE": "rfc7644", "CXONE_CLIENT_ID": CLIENT_ID, "CXONE_CLIENT_SECRET": CLIENT_SECRET}
    out = cli("bulk", "--users", str(tmp_path / "users.json"), "--policy", str(POLICY), "--quiet",
              "--report", str(tmp_path / "report.json"), env=env)
    assert out.returncode == 1, out.stderr.decode()  # one user failed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"] == {"created": 119, "updated": 0, "exists": 1, "failed": 1, "conflict": 0, "stale": 0,
                                "skipped": 0, "pending": 0}
    assert b"created 119" in out.stderr
    assert len([n for n in clean.all_user_names() if f".{tag}." in n.lower()]) == 120
    assert CLIENT_SECRET.encode() not in out.stdout + out.stderr


def test_sign_produces_headers_the_worker_accepts(worker, clean):
    body = json.dumps({"operation": "create", "userName": f"cli.{uuid.uuid4().hex[:6]}@example.com",
                       "groups": [{"displayName": "cxone-agent"}]}).encode()
    out = cli("sign", "--secret", WEBHOOK_SECRET, stdin=body)
    assert out.returncode == 0, out.stderr
    headers = dict(line.split(": ", 1) for line in out.stdout.decode().splitlines())
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    status, answer, _ = request("POST", worker.url + "/webhooks/lifecycle", body, headers)
    assert (status, answer["action"]) == (200, "created"), answer


def test_policy_check_locates_errors(tmp_path):
    assert cli("policy", str(POLICY)).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"version":1,"mode":"strict","mappings":[{"group":"a","role":"X"}],"roles":[{"roleId":"A"}]}')
    out = cli("policy", str(bad))
    assert out.returncode == 1 and b"$.mappings[0].role" in out.stdout, out.stdout
    bad.write_text('{\n "version": 1,\n "mode": strict\n}')
    out = cli("policy", str(bad))
    assert out.returncode == 1 and b"line 3" in out.stdout, out.stdout


def test_plan_prints_the_bulk_requests(tmp_path):
    (tmp_path / "users.json").write_text(json.dumps(users(75, "plan")))
    out = cli("plan", "--users", str(tmp_path / "users.json"), "--policy", str(POLICY), "--batch-size", "40",
              "--profile", "rfc7644")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert [len(r["body"]["Operations"]) for r in plan["requests"]] == [40, 35]
    # CXone (the default profile) has no Bulk: one POST /Users per user.
    out = cli("plan", "--users", str(tmp_path / "users.json"), "--policy", str(POLICY), "--batch-size", "40")
    assert out.returncode == 0, out.stderr
    requests = json.loads(out.stdout)["requests"]
    assert [(r["method"], r["url"].rsplit("/", 1)[1]) for r in requests] == [("POST", "Users")] * 75
    assert sorted(r["body"]["userName"] for r in requests) == sorted(u["userName"] for u in users(75, "plan"))


def test_provider_config_prints_the_entra_settings():
    out = cli("provider-config", "--environment", "prod", "--format", "json")
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    assert config["tenantUrl"] == "https://na1.nice-incontact.com/scim/v2"
    assert config["token"]["tokenType"] == "Bearer"
    assert config["token"]["request"]["url"] == "https://na1.nice-incontact.com/authentication/v1/token/access-key"
    assert set(config["token"]["request"]["body"]) == {"accessKeyId", "accessKeySecret"}
    mappings = {m["target"]: m for m in config["attributeMappings"]}
    assert mappings["userName"]["source"] == "userPrincipalName" and mappings["userName"]["matching"]
    assert [m["target"] for m in config["attributeMappings"] if m["matching"]] == ["userName"]
    assert mappings["active"]["source"] == 'Switch([IsSoftDeleted], , "False", "True", "True", "False")'
    assert config["capabilities"]["delete"] is False and config["capabilities"]["filters"] == ["userName eq"]
    assert config["warnings"] == [] and out.stderr == b""
    bad = cli("provider-config", "--environment", "prod", "--base-url", "ftp://cxone.example")
    assert bad.returncode != 0 and b"not http or https" in bad.stderr, bad.stderr


def test_deprovision_one_leaver_on_the_same_steps(standin, clean):
    name = f"cli.leaver.{uuid.uuid4().hex[:6]}@example.com"
    status, created, _ = clean.scim("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                                       "userName": name, "active": True,
                                                       "name": {"givenName": "Cli", "familyName": "Leaver"},
                                                       "emails": [{"value": name, "primary": True}]})
    assert status == 201, created
    assert request("POST", standin.url + "/_standin/agents/login", {"userName": name})[0] == 200
    env = {"CXONE_SCIM_BASE_URL": f"{standin.url}/scim/v2", "CXONE_TOKEN_URL": f"{standin.url}/oauth/token",
           "CXONE_PROFILE": "rfc7644", "CXONE_CLIENT_ID": CLIENT_ID, "CXONE_CLIENT_SECRET": CLIENT_SECRET,
           "CXONE_API_BASE_URL": f"{standin.url}/incontactapi/services/v31.0"}
    clean.clear_log()
    out = cli("deprovision", "--user", name, "--dry-run", env=env)
    assert out.returncode == 0, out.stderr.decode()
    plan = json.loads(out.stdout)
    assert [w["method"] for w in plan["wouldSend"]] == ["PATCH", "POST"], plan
    assert [e for e in clean.log() if e["method"] != "GET" and not e["path"].endswith("/token")] == []
    out = cli("deprovision", "--user", name, "--reason", "left", env=env)
    assert out.returncode == 0, out.stderr.decode()
    report = json.loads(out.stdout)
    assert (report["outcome"], report["verified"]) == ("deprovisioned", True), report
    assert clean.user(created["id"])["active"] is False
    agents = request("GET", standin.url + "/_standin/agents?userName=" + urllib.parse.quote(name))[1]
    assert [a["loggedIn"] for a in agents if a["userName"] == name] == [False]
    assert CLIENT_SECRET.encode() not in out.stdout + out.stderr
