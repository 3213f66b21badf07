"""A tenant teaches its own intents over the admin API, on the shared session server.

Each test uses its own made-up tenant (a coffee and kitchen shop with a workshop), so the
heads trained here never touch another module's replies.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.error_shape import assert_error_shape

EXAMPLES = {
    "product_advice": [
        "Which grinder goes best with my espresso machine?",
        "What kettle would you recommend for green tea?",
        "Is the burr grinder a good choice for a beginner?",
        "Which milk frother should I buy with my coffee maker?",
        "Can you suggest a blender that handles frozen fruit?",
        "What toaster fits a family of five?",
        "Which pan works on an induction hob?",
        "Do you have a good recommendation for a moka pot?",
        "What is the best coffee scale for pour-over?",
    ],
    "workshop_booking": [
        "I would like to book a place at the latte art workshop.",
        "Are there seats left in Saturday's barista class?",
        "Please sign me up for the bread baking course.",
        "When is the next coffee tasting workshop and can I reserve a spot?",
        "Reserve two places for the knife skills class, please.",
        "Can I register my daughter for the kids cooking workshop?",
        "How do I enrol in the espresso masterclass?",
        "I want to join the pasta making workshop next week.",
        "Could you move my workshop booking to the evening session?",
    ],
    "gift_wrapping": [
        "Can you gift wrap the kettle I just ordered?",
        "Please wrap it as a present and add a card.",
        "Is gift wrapping available for the grinder?",
        "I want the parcel wrapped in gift paper with a ribbon.",
        "Can I add a handwritten gift message to my order?",
        "Do you offer wrapping for birthday presents?",
        "Please leave the price off, it is a gift, and wrap it nicely.",
        "How much does gift wrapping cost?",
        "Could the blender be wrapped for a wedding present?",
    ],
}
ASK_ABOUT_A_GRINDER = "Which grinder would suit my new espresso machine?"
JSONL = "application/x-ndjson"


def jsonl(examples: dict[str, list[str]]) -> bytes:
    lines = [
        json.dumps({"text": text, "label": label})
        for label, texts in examples.items()
        for text in texts
    ]
    return ("\n".join(lines) + "\n").encode()


def as_csv(examples: dict[str, list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows((text, label) for label, texts in examples.items() for text in texts)
    return buffer.getvalue().encode()


def put_intents(
    base_url: str, tenant: str, body: bytes, media_type: str, wait: bool = True
) -> httpx.Response:
    return httpx.put(
        f"{base_url}/admin/tenants/{tenant}/intents",
        params={"wait": str(wait).lower()},
        content=body,
        headers={"content-type": media_type},
        timeout=300,
    )


def intent_of_reply(base_url: str, tenant: str, message: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/v1/support/reply",
        json={"customer_id": "mia", "message": message},
        headers={"X-Concierge-Tenant": tenant},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["intent"])


def audit_actions(base_url: str, tenant: str) -> list[str]:
    response = httpx.get(
        f"{base_url}/admin/audit", headers={"X-Concierge-Tenant": tenant}, timeout=30
    )
    assert response.status_code == 200, response.text
    return [event["action"] for event in response.json()["events"]]


@pytest.fixture
def tenant() -> str:
    return f"intents-{uuid.uuid4().hex[:10]}"


def test_a_taught_head_answers_replies_until_it_is_removed(base_url: str, tenant: str) -> None:
    uploaded = put_intents(base_url, tenant, jsonl(EXAMPLES), JSONL)
    assert uploaded.status_code == 200, uploaded.text  # ?wait=true: the finished job
    job = uploaded.json()
    assert job["kind"] == "tenant_intents" and job["state"] == "succeeded", job
    assert job["tenant"] == tenant and job["mode"] is None
    assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == 27
    head = job["result"]
    assert head["tenant"] == tenant and head["version"] == 1 and head["examples"] == 27
    assert sorted(head["intents"]) == sorted(EXAMPLES)
    assert 0.5 <= head["metrics"]["cv_accuracy"] <= 1 and "cv_macro_f1" in head["metrics"]
    assert head["trained_at"]

    shown = httpx.get(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30)
    assert shown.status_code == 200 and shown.json() == head
    polled = httpx.get(f"{base_url}/admin/jobs/{job['id']}", timeout=30).json()
    assert polled["state"] == "succeeded" and polled["result"] == head

    intent = intent_of_reply(base_url, tenant, ASK_ABOUT_A_GRINDER)
    assert intent["label"] == "product_advice", intent  # at once: no restart, no wait
    assert "tenant.intents.put" in audit_actions(base_url, tenant)

    removed = httpx.delete(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30)
    assert removed.status_code == 204 and removed.content == b""
    missing = httpx.get(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30)
    assert "general head serves" in assert_error_shape(missing, 404, "not_found")["message"]
    general = intent_of_reply(base_url, tenant, ASK_ABOUT_A_GRINDER)
    assert general["label"] not in EXAMPLES  # the general (Bitext) head answers again
    assert "tenant.intents.delete" in audit_actions(base_url, tenant)
    again = httpx.delete(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30)
    assert_error_shape(again, 404, "not_found")


def test_a_csv_upload_answers_202_with_a_job_that_publishes(base_url: str, tenant: str) -> None:
    two = {label: EXAMPLES[label] for label in ("product_advice", "gift_wrapping")}
    accepted = put_intents(base_url, tenant, as_csv(two), "text/csv; charset=utf-8", wait=False)
    assert accepted.status_code in (200, 202), accepted.text
    job = accepted.json()
    deadline = time.monotonic() + 120
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        job = httpx.get(f"{base_url}/admin/jobs/{job['id']}", timeout=30).json()
    assert job["state"] == "succeeded", job
    assert sorted(job["result"]["intents"]) == ["gift_wrapping", "product_advice"]
    shown = httpx.get(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30).json()
    assert shown["version"] == 1 and shown["examples"] == 18
    assert httpx.delete(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30).status_code == 204


def test_bad_uploads_are_refused_in_the_one_error_shape(base_url: str, tenant: str) -> None:
    good = jsonl(EXAMPLES)
    wrong_type = put_intents(base_url, tenant, good, "application/json")
    assert assert_error_shape(wrong_type, 400, "invalid_request_error")["param"] == "content-type"

    lines = good.decode().splitlines()
    lines[4] = '{"text": "wrap it please", "label": '
    bad_line = put_intents(base_url, tenant, "\n".join(lines).encode(), JSONL)
    assert (
        "line 5: not JSON" in assert_error_shape(bad_line, 400, "invalid_training_data")["message"]
    )
    no_label = put_intents(base_url, tenant, b'{"text": "hello"}\n', "application/jsonl")
    assert (
        "line 1: empty or missing label"
        in assert_error_shape(no_label, 400, "invalid_training_data")["message"]
    )
    headless = put_intents(base_url, tenant, as_csv(EXAMPLES).split(b"\n", 1)[1], "text/csv")
    assert "header" in assert_error_shape(headless, 400, "invalid_training_data")["message"]
    one_label = put_intents(base_url, tenant, jsonl({"x": EXAMPLES["gift_wrapping"]}), JSONL)
    assert_error_shape(one_label, 400, "invalid_training_data")

    oversized = put_intents(base_url, tenant, good * (((1 << 20) // len(good)) + 1), JSONL)
    assert_error_shape(oversized, 413, "payload_too_large")
    many = b"".join(
        json.dumps({"text": f"q{n}", "label": f"l{n % 2}"}).encode() + b"\n" for n in range(5001)
    )
    too_many = put_intents(base_url, tenant, many, JSONL)
    assert (
        "at most 5000 examples" in assert_error_shape(too_many, 413, "payload_too_large")["message"]
    )
    bad_tenant = put_intents(base_url, "Not_A_Tenant", good, JSONL)
    assert_error_shape(bad_tenant, 400, "invalid_request_error")

    untaught = httpx.get(f"{base_url}/admin/tenants/{tenant}/intents", timeout=30)
    assert_error_shape(untaught, 404, "not_found")  # nothing above trained anything
