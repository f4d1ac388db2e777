"""Bulk against servers that answer differently, under a rate limit, and at scale: real workerd
(a Durable Object per run), real scim2-server behind the stand-in, the Free-plan budget of 50
subrequests per invocation (and the Paid plan's 1,000 for ten thousand users: every row holds
its person's ledger, three calls each, so the Free plan moves ~15 rows per invocation)."""

import collections
import json
import uuid

import pytest

from conftest import FAST_RETRIES, client_of, own_worker
from test_bulk import scim_shape, users, wait_finished

# Ports above the session Worker's: the misconfigured one (+2), the stand-in (+3, +4), the role
# target Worker (+6), the Graph and IAM fixtures (+8, +9) and the audit Worker (+10) hold theirs.
PAID_OFFSET = 12


@pytest.fixture
def paid_worker(standin, workdir):
    with own_worker(workdir, "paid-plan", PAID_OFFSET, standin.url, [*FAST_RETRIES, "SUBREQUEST_BUDGET=1000"]) as dev:
        yield client_of(dev)


def bulk_operations(log):
    """(method, bulkId) of every Bulk operation the stand-in received, with the final answers."""
    sent = []
    for entry in log:
        if entry["path"] == "/scim/v2/Bulk" and entry.get("body"):
            for op in entry["body"]["Operations"]:
                sent.append((op["method"], op["bulkId"], entry["status"]))
    return sent


def assert_nothing_resent_after_a_final_answer(log):
    # A whole request refused (429, an injected 503) was not processed: sending it again is
    # right. An operation inside a request the server processed is sent once per method.
    processed = [(m, b) for m, b, status in bulk_operations(log) if status in (200, 207)]
    repeats = {k: n for k, n in collections.Counter(processed).items() if n > 1}
    assert not repeats, f"operations sent again after a final answer: {repeats}"


def test_patch_heavy_runs_against_servers_that_omit_bulk_ids_or_reorder(worker, clean):
    for switches in ({"bulkIdOnlyForPost": True}, {"bulkShuffle": True},
                     {"bulkIdOnlyForPost": True, "bulkShuffle": True}):
        tag = uuid.uuid4().hex[:6]
        batch = users(120, tag)
        # 100 are in CXone with an old surname (each needs a PATCH), 20 are new.
        for u in batch[:100]:
            stale = scim_shape(u)
            stale["name"]["familyName"] = "Before"
            assert clean.scim("POST", "/Users", stale)[0] == 201
        clean.clear_log()
        clean.configure(**switches)
        status, body, _ = worker.admin_post("/provision/bulk", {"users": batch, "runId": f"patchy-{tag}"})
        assert status == 202, body
        report = wait_finished(worker, f"patchy-{tag}")
        clean.clear_faults()
        assert report["counts"] == {"created": 20, "updated": 100, "exists": 0, "failed": 0, "conflict": 0,
                                    "stale": 0, "skipped": 0, "pending": 0}, (switches, report["counts"], report.get("errors"))
        assert_nothing_resent_after_a_final_answer(clean.log())
        patches = [b for m, b, _ in bulk_operations(clean.log()) if m == "PATCH"]
        assert len(patches) == 100, switches
        assert clean.find("userName", batch[7]["userName"])[0]["name"]["familyName"] == batch[7]["lastName"]


def test_a_rate_limited_server_is_followed_by_its_headers_and_nothing_is_lost(worker, clean):
    tag = uuid.uuid4().hex[:6]
    batch = users(2000, tag)
    before = clean.user_count()
    clean.configure(rateLimit=2, burst=2, rateLimitHeaders="ietf")
    try:
        status, body, _ = worker.admin_post("/provision/bulk", {"users": batch, "runId": f"paced-{tag}"})
        assert status == 202, body
        report = wait_finished(worker, f"paced-{tag}", timeout=300)
        stats = clean.stats()
    finally:
        clean.configure(rateLimit=0)
    assert report["counts"]["created"] == 2000, report["counts"]
    assert clean.user_count() == before + 2000
    # The run keeps to the announced quota instead of learning it from refusals.
    assert stats["rateLimited"] <= 2, stats
    assert_nothing_resent_after_a_final_answer(clean.log())


def test_ten_thousand_users_in_a_nine_mib_body_each_exactly_once(paid_worker, clean):
    worker = paid_worker
    tag = uuid.uuid4().hex[:6]
    pad = "x" * 400
    batch = [dict(u, firstName=f"Bulk{pad}", lastName=f"User{i}{pad}") for i, u in enumerate(users(10000, tag))]
    body = {"users": batch, "runId": f"big-{tag}"}
    size = len(json.dumps(body))
    assert 9 * 1024 * 1024 <= size < 10 * 1024 * 1024, size
    before = clean.user_count()
    status, answer, _ = worker.admin_post("/provision/bulk", body)
    assert status == 202, answer
    assert answer["total"] == 10000
    report = wait_finished(worker, f"big-{tag}", timeout=600)
    if report["counts"]["created"] != 10000:
        failed = [u for c in range(0, 10000, 1000)
                  for u in worker.admin_get(f"/provision/bulk/big-{tag}?cursor={c}")[1]["users"]
                  if u["outcome"] != "created"]
        raise AssertionError(f"{report['counts']} {report.get('errors')} {failed[:3]}")
    # The report is paged.
    assert len(report["users"]) == 1000 and report["nextCursor"] == "1000"
    status, page, _ = worker.admin_get(f"/provision/bulk/big-{tag}?cursor=9500")
    assert status == 200 and [u["index"] for u in page["users"]] == list(range(9500, 10000))
    assert "nextCursor" not in page
    assert all(u["outcome"] == "created" for u in page["users"])
    mine = [n.lower() for n in clean.all_user_names() if f".{tag}." in n.lower()]
    assert len(mine) == len(set(mine)) == 10000, "every user exactly once"
    assert clean.user_count() == before + 10000
    # Every user was created by exactly one operation (a batch sent again after a lost answer
    # meets 409s and is read, never created twice).
    created = collections.Counter({b: op["answers"].count("201") for b, op in clean.stats()["bulkOps"].items()})
    assert len(created) == 10000 and set(created.values()) == {1}, collections.Counter(created.values())
