"""Writes the benchmark inputs both sides read (Rust benches and the Python baseline), so both
do the same work on the same bytes. Deterministic: run it again and nothing changes.
Usage: make_fixtures.py OUT_DIR"""

import json
import random
import sys
from pathlib import Path

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rnd = random.Random(42)

users = [{"userName": f"agent.{i:03d}@contoso.example", "externalId": f"5f1c{i:04d}-aaaa-4bbb-8ccc-{i:012d}",
          "firstName": rnd.choice(["Ava", "Ben", "Chloé", "Dev", "Eun-ji", "Farid"]),
          "lastName": rnd.choice(["Okafor", "Müller", "Nakamura", "Silva", "O'Brien"]) + str(i),
          "groups": [{"displayName": "cxone-agent"}]} for i in range(50)]
(out / "bench_users_50.json").write_text(json.dumps(users, indent=1, ensure_ascii=False))

ops = []
for i in range(50):
    bulk_id = f"u-{i}"
    roll = i % 10
    if roll < 7:
        ops.append({"method": "POST", "bulkId": bulk_id, "version": f'W/"{i + 1}"',
                    "location": f"https://cxone.example/scim/v2/Users/{rnd.getrandbits(128):032x}", "status": "201"})
    elif roll < 9:
        ops.append({"method": "POST", "bulkId": bulk_id, "status": "409", "response": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness",
            "detail": "One or more of the attribute values are already in use or are reserved"}})
    else:
        ops.append({"method": "POST", "bulkId": bulk_id, "status": "400", "response": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": "invalidValue",
            "detail": "Input should be a valid boolean, unable to interpret input: data.active"}})
rnd.shuffle(ops)  # a 207-style server may answer in any order
(out / "bench_bulk_response_50.json").write_text(json.dumps(
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"], "Operations": ops}))

page = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(displayName,givenName,surname,mail,"
                          "userPrincipalName,accountEnabled,employeeId,department,jobTitle)",
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=" + "x" * 180, "value": []}
for i in range(100):
    if i % 20 == 19:
        page["value"].append({"@odata.type": "#microsoft.graph.user", "id": f"{rnd.getrandbits(128):032x}",
                              "@removed": {"reason": "changed"}})
        continue
    page["value"].append({
        "@odata.type": "#microsoft.graph.user", "id": f"{rnd.getrandbits(128):032x}",
        "businessPhones": ["+1 425 555 0109"], "displayName": f"User {i}", "givenName": "User", "surname": str(i),
        "jobTitle": "Agent", "mail": f"user{i}@contoso.example", "mobilePhone": None, "officeLocation": "18/2111",
        "preferredLanguage": "en-US", "userPrincipalName": f"user{i}@contoso.example", "accountEnabled": True,
        "employeeId": f"E{i:05d}", "department": "Support"})
(out / "graph_users_delta_page.json").write_text(json.dumps(page, indent=1))
