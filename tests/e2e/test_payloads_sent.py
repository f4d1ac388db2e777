"""Every SCIM body the Worker sent during the session, through an independent implementation
(scim2-models, via ../shared/tools/scim-validate). pytest runs files in name order, so this
file runs after the lifecycle and bulk scenarios and sees their traffic."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

from test_lifecycle import person


def test_every_payload_sent_to_cxone_validates(worker, standin):
    validator = os.environ.get("SCIM_VALIDATE") or str(Path(__file__).resolve().parents[3] / "shared/tools/scim-validate")
    assert Path(validator).exists(), f"payload validator missing: {validator}"
    worker.post_event(person())  # at least one payload even when run alone
    sent = standin.bodies_from_worker()
    by_kind = {
        "user": [e["body"] for e in sent if e["path"] == "/scim/v2/Users" and e["method"] in ("POST", "PUT")],
        "patch": [e["body"] for e in sent if e["path"].startswith("/scim/v2/Users/") and e["method"] == "PATCH"],
        "bulkreq": [e["body"] for e in sent if e["path"] == "/scim/v2/Bulk"],
    }
    assert by_kind["user"], "no payload captured"
    with tempfile.TemporaryDirectory() as d:
        for kind, bodies in by_kind.items():
            files = []
            for i, b in enumerate(bodies):
                p = Path(d) / f"{kind}-{i}.json"
                p.write_text(json.dumps(b))
                files.append(str(p))
            if files:
                out = subprocess.run([validator, kind, *files], capture_output=True, text=True)
                assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
