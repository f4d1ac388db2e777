"""The Python baseline for `make bench`: scim2-models (what Python users of the seed tutorials
would use) doing the same work as the Rust core benches, on the same fixture files.
Prints one JSON object: {name: median seconds per operation}.
Usage: python_baseline.py FIXTURE_DIR"""

import json
import statistics
import sys
import time
from pathlib import Path

from scim2_models import BulkRequest, BulkResponse, Context, EnterpriseUser, PatchOp, User

AnyUser = User[EnterpriseUser]
fx = Path(sys.argv[1])
USERS_50 = (fx / "bench_users_50.json").read_bytes()
BULK_RESPONSE_50 = (fx / "bench_bulk_response_50.json").read_bytes()
USER = (fx / "rfc7643_enterprise_user.json").read_bytes()
POLICY = json.loads((fx / "role_policy.json").read_text())
ROLE_BY_GROUP = {m["group"].lower(): m["role"] for m in POLICY["mappings"] if "group" in m}


def bulk_request_build_50():
    users = json.loads(USERS_50)
    ops = []
    for i, u in enumerate(users):
        roles = [ROLE_BY_GROUP[g["displayName"].lower()] for g in u.get("groups", [])]
        data = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": u["userName"],
                "externalId": u.get("externalId"),
                "name": {"givenName": u["firstName"], "familyName": u["lastName"]},
                "displayName": f"{u['firstName']} {u['lastName']}",
                "emails": [{"value": u.get("email", u["userName"]), "type": "work", "primary": True}],
                "active": u.get("active", True), "roles": [{"value": r, "display": r} for r in roles]}
        ops.append({"method": "POST", "path": "/Users", "bulkId": f"u-{i}", "data": data})
    doc = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}
    req = BulkRequest[AnyUser].model_validate(doc, scim_ctx=Context.BULK_REQUEST)
    return req.model_dump_json(scim_ctx=Context.BULK_REQUEST)


def bulk_response_parse_classify_50():
    resp = BulkResponse[AnyUser].model_validate(json.loads(BULK_RESPONSE_50), scim_ctx=Context.BULK_RESPONSE)
    by_id = {op.bulk_id: op for op in resp.operations}
    out = []
    for i in range(50):
        op = by_id.get(f"u-{i}")
        status = int(op.status) if op else None
        if status is None:
            out.append("missing")
        elif 200 <= status < 300:
            out.append(("applied", (op.location or "").rsplit("/", 1)[-1]))
        elif status == 409:
            out.append("conflict")
        elif status == 429 or 500 <= status < 600:
            out.append("retry")
        else:
            err = op.response
            out.append(("permanent", getattr(err, "scim_type", None), getattr(err, "detail", None)))
    return out


def user_validate_serialize():
    user = AnyUser.model_validate(json.loads(USER), scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return user.model_dump_json(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


CURRENT = AnyUser.model_validate(json.loads(USER), scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
TARGET = {"userName": "bjensen@example.com", "externalId": "701984", "givenName": "Barbara",
          "familyName": "Jensen-Smith", "email": "barbara.jensen@example.com", "active": False,
          "roles": [{"value": "Supervisor", "display": "Supervisor"}]}


def patch_diff():
    cur, want, ops = CURRENT, TARGET, []
    if cur.user_name != want["userName"]:
        ops.append({"op": "replace", "path": "userName", "value": want["userName"]})
    if cur.external_id != want["externalId"]:
        ops.append({"op": "replace", "path": "externalId", "value": want["externalId"]})
    if (cur.name.given_name if cur.name else None) != want["givenName"]:
        ops.append({"op": "replace", "path": "name.givenName", "value": want["givenName"]})
    if (cur.name.family_name if cur.name else None) != want["familyName"]:
        ops.append({"op": "replace", "path": "name.familyName", "value": want["familyName"]})
    display = f"{want['givenName']} {want['familyName']}"
    if cur.display_name != display:
        ops.append({"op": "replace", "path": "displayName", "value": display})
    work = [e for e in (cur.emails or []) if e.type == "work"]
    if not work:
        ops.append({"op": "add", "path": "emails", "value": [{"value": want["email"], "type": "work"}]})
    elif work[0].value.lower() != want["email"].lower():
        ops.append({"op": "replace", "path": 'emails[type eq "work"].value', "value": want["email"]})
    if (cur.active if cur.active is not None else True) != want["active"]:
        ops.append({"op": "replace", "path": "active", "value": want["active"]})
    if sorted(r.value for r in (cur.roles or [])) != sorted(r["value"] for r in want["roles"]):
        ops.append({"op": "replace", "path": "roles", "value": want["roles"]})
    patch = PatchOp[AnyUser].model_validate(
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops},
        scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    return patch.model_dump_json(scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def measure(fn, budget_s=2.0):
    fn()
    samples, spent = [], 0.0
    while spent < budget_s or len(samples) < 5:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        samples.append(took)
        spent += took
    return statistics.median(samples)


if __name__ == "__main__":
    results = {f.__name__: measure(f) for f in (bulk_request_build_50, bulk_response_parse_classify_50,
                                                user_validate_serialize, patch_diff)}
    print(json.dumps(results))
