"""``DELETE /v1/customers/{id}``: every row and vector of the customer goes; a receipt counts it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

from server.store.audit import customer_reference
from tests.error_shape import assert_error_shape
from tests.servers import prometheus_value, query_server_database

ERASURES_METRIC = "concierge_customer_erasures_total"
TABLES = (
    "customers",
    "customer_events",
    "conversations",
    "turns",
    "tickets",
    "feedback",
    "history_entries",
)


def rows_of(data_dir: Path, tenant: str, customer_id: str) -> dict[str, int]:
    return {
        table: int(
            query_server_database(
                data_dir,
                f"SELECT count(*) FROM {table} WHERE tenant = ? AND customer_id = ?",
                tenant,
                customer_id,
            )[0][0]
        )
        for table in TABLES
    }


def bytes_left(data_dir: Path, needles: list[bytes]) -> list[str]:
    """Files under ``data_dir`` (the server's own, not the linked models) holding a needle."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_symlink() or not path.is_file() or any(p.is_symlink() for p in path.parents):
            continue
        content = path.read_bytes()
        found += [f"{path.relative_to(data_dir)}: {n.decode()}" for n in needles if n in content]
    return found


def test_erasure_removes_every_row_and_vector_and_the_receipt_matches(
    base_url: str, data_dir: Path
) -> None:
    tenant = f"erase-{uuid.uuid4().hex[:8]}"
    customer_id = f"gone-{uuid.uuid4().hex[:8]}"
    keeper = f"kept-{uuid.uuid4().hex[:8]}"
    marker = f"zebra-{uuid.uuid4().hex[:6]}"
    canary = f"canary{uuid.uuid4().hex[:10]}"  # only the erased customer's name and note
    names = {customer_id: f"Quill {canary}", keeper: "Sam"}
    headers = {"X-Concierge-Tenant": tenant}
    with httpx.Client(base_url=base_url, timeout=180, headers=headers) as client:
        kettle = {
            "id": "kettles",
            "title": "Kettles",
            "text": f"The {marker} kettle boils 1.7 litres and has a two-year warranty.",
        }
        answer = client.post(
            f"/admin/kb/{tenant}/documents:bulk",
            params={"wait": "true"},
            json={"documents": [kettle]},
        )
        assert answer.status_code == 200, answer.text
        for who in (customer_id, keeper):
            assert client.put(f"/v1/customers/{who}", json={"name": names[who]}).status_code == 200
            own = f" {canary}" if who == customer_id else ""
            note = {"kind": "note", "payload": {"text": f"Asked about the {marker} kettle.{own}"}}
            assert client.post(f"/v1/customers/{who}/events", json=note).status_code == 201
        first = client.post(
            "/v1/support/reply", json={"customer_id": customer_id, "message": "Hello there"}
        )
        assert first.status_code == 200, first.text
        conversation = first.json()["conversation_id"]
        handed = client.post(
            "/v1/support/reply",
            json={
                "customer_id": customer_id,
                "conversation_id": conversation,
                "message": "I want to talk to a human.",
            },
        )
        assert handed.status_code == 200, handed.text  # a ticket exists by now (checked below)
        feedback = client.post(f"/v1/conversations/{conversation}/feedback", json={"csat": 2})
        assert feedback.status_code in (200, 201)
        deadline = time.monotonic() + 30  # the exchange reaches the history in the background
        while rows_of(data_dir, tenant, customer_id)["history_entries"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        before = rows_of(data_dir, tenant, customer_id)
        assert all(before[table] >= 1 for table in TABLES), before
        kept_before = rows_of(data_dir, tenant, keeper)

        erasures = prometheus_value(
            client.get("/metrics").text, "concierge_customer_erasures_total"
        )
        receipt = client.delete(f"/v1/customers/{customer_id}")
        assert receipt.status_code == 200, receipt.text
        body = receipt.json()
        assert body["removed"] == before
        assert body["total"] == sum(before.values())
        assert (body["customer_id"], body["tenant"]) == (customer_id, tenant)
        after = prometheus_value(client.get("/metrics").text, ERASURES_METRIC)
        assert after == (erasures or 0) + 1

        audit = client.get("/admin/audit").json()["events"]
        erased = [event for event in audit if event["action"] == "customer.erase"]
        assert len(erased) == 1 and erased[0]["target"] == customer_reference(customer_id)
        assert erased[0]["request_id"] == receipt.headers["x-request-id"]
        assert erased[0]["detail"]["removed"] == before
        assert customer_id not in json.dumps(audit), "the log names customers by digest"
        assert any(event["action"] == "kb.documents.bulk" for event in audit)

        assert rows_of(data_dir, tenant, customer_id) == dict.fromkeys(TABLES, 0)
        assert rows_of(data_dir, tenant, keeper) == kept_before, "other customers untouched"
        assert_error_shape(client.get(f"/v1/customers/{customer_id}"), 404, "not_found")
        assert_error_shape(client.get(f"/v1/conversations/{conversation}"), 404, "not_found")
        assert_error_shape(client.delete(f"/v1/customers/{customer_id}"), 404, "not_found")
        # no byte of the customer is left in any file the server wrote: the database, its
        # write-ahead log, indexes (the trust probe found the name once and the id 21 times
        # in the WAL)
        left = bytes_left(data_dir, [customer_id.encode(), canary.encode()])
        assert not left, f"erased customer's bytes still on disk: {left}"

        # the same id, new again: nothing of the old customer reaches the model
        assert client.put(f"/v1/customers/{customer_id}", json={"name": "New"}).status_code == 200
        again = client.post(
            "/v1/support/reply",
            json={
                "customer_id": customer_id,
                "message": f"Did I ask about the {marker} kettle?",
                "include_prompt": True,
            },
        )
        assert again.status_code == 200, again.text
        prompt = again.json()["prompt"]
        assert prompt, "a grounded question reaches the model, with whatever history exists"
        assert marker in str(prompt), "the KB passage is there"
        assert "Asked about the" not in str(prompt) and "Hello there" not in str(prompt)
