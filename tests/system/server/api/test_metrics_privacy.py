"""``/metrics`` never carries customer data in a label, after the whole end-to-end run.

Marked ``last``: it runs after every other test has sent its replies, customers and
events to the session server, then reads every label value of every series and
checks it against (1) an email pattern, (2) every customer id and (3) every message
text the server stored, read back from its own database, and (4) canary values this
test sends itself just before scanning.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.config import Settings
from server.lifespan import load_keyring
from tests.servers import query_server_database

pytestmark = pytest.mark.last

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
MIN_TEXT_CHARS = 12
"""Shorter stored texts ("hi", "thanks") can match a label legitimately, by accident."""


def label_values(metrics_text: str) -> set[str]:
    return {
        value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        for value in sample.labels.values()
    }


def stored_customer_data(data_dir: Path) -> tuple[set[str], set[str]]:
    """Customer ids and message texts the server stored."""

    def column(sql: str) -> set[str]:
        return {str(row[0]) for row in query_server_database(data_dir, sql)}

    ids = column("SELECT customer_id FROM customers") | column("SELECT customer_id FROM turns")
    keyring = load_keyring(Settings(data_dir=data_dir))  # messages are stored encrypted
    messages = {keyring.decrypt(m, "turns.message") for m in column("SELECT message FROM turns")}
    return ids, messages


def test_no_label_value_carries_a_customer_id_an_email_or_message_text(
    base_url: str, data_dir: Path
) -> None:
    tenant = f"canary-{uuid.uuid4().hex[:8]}"
    customer_id = f"cust-canary-{uuid.uuid4().hex[:10]}"
    email = f"canary.{uuid.uuid4().hex[:8]}@example.com"
    message = f"My email is {email}, where is my parcel {uuid.uuid4().hex[:6]}?"
    headers = {"X-Concierge-Tenant": tenant}
    with httpx.Client(base_url=base_url, timeout=180, headers=headers) as client:
        body = {"name": "Canary Customer", "attributes": {"email": email}}
        assert client.put(f"/v1/customers/{customer_id}", json=body).status_code == 200
        answer = client.post(
            "/v1/support/reply", json={"customer_id": customer_id, "message": message}
        )
        assert answer.status_code == 200, answer.text
        assert client.get(f"/v1/customers/{customer_id}/profile").status_code == 200
        # raw paths are where ids leak into labels: a known route, and one nobody serves
        assert client.get(f"/v1/customers/{customer_id}/no-such-view").status_code == 404
        assert client.get(f"/{email}/{customer_id}").status_code == 404
        exposed = label_values(client.get("/metrics").text)

    ids, messages = stored_customer_data(data_dir)
    assert customer_id in ids  # the canaries reached the store
    assert any(message[-12:] in stored for stored in messages)
    assert all(email not in stored for stored in messages), "messages are stored redacted"
    assert exposed, "the scrape has labelled series"
    leaks = [value for value in exposed if EMAIL.search(value)]
    leaks += [value for value in exposed if value in ids]
    leaks += [value for value in exposed for id_ in ids if len(id_) >= 6 and id_ in value]
    leaks += [
        value
        for value in exposed
        for text in messages
        if len(text) >= MIN_TEXT_CHARS
        and (text in value or (len(value) >= MIN_TEXT_CHARS and value in text))
    ]
    assert not leaks, f"customer data in metric labels: {sorted(set(leaks))[:10]}"
