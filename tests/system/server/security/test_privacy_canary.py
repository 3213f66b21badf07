"""A canary's personal data never reaches the prompt, the stored turn, the history or the log."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

import httpx

from server.config import Settings
from server.lifespan import load_keyring
from server.security.privacy import (
    PiiKind,
    mask,
)
from tests.servers import ServerProcess, query_server_database, server_database_bytes
from tests.unit.server.security.test_privacy import card_number


def test_canary_pii_never_reaches_the_prompt_the_stored_turn_the_history_or_the_log(
    server: ServerProcess, base_url: str, data_dir: Path
) -> None:
    rng = random.Random()
    card = card_number(rng)
    email = f"canary.{uuid.uuid4().hex[:8]}@example.org"
    phone = f"+44 20 7946 {rng.randrange(1000, 9999)}"
    customer_id = f"pii-{uuid.uuid4().hex[:8]}"
    headers = {"X-Concierge-Tenant": "pii-canary"}
    with httpx.Client(base_url=base_url, timeout=180, headers=headers) as client:
        assert client.put(f"/v1/customers/{customer_id}", json={"name": "Pat"}).status_code == 200
        note = {"kind": "note", "payload": {"text": f"Prefers calls on {phone}, mail {email}."}}
        answer = client.post(f"/v1/customers/{customer_id}/events", json={"events": [note]})
        assert answer.status_code == 201, answer.text
        order = f"order-{uuid.uuid4().hex[:12]}"  # in the message, not personal data
        message = (
            f"Please update my saved card to {card} and send the invoice for {order} to {email}."
        )
        answer = client.post(
            "/v1/support/reply",
            json={"customer_id": customer_id, "message": message, "include_prompt": True},
        )
        assert answer.status_code == 200, answer.text
    body = answer.text
    prompt = json.dumps(answer.json()["prompt"])
    assert f"**** {card[-4:]}" in prompt and mask(PiiKind.EMAIL, email) in prompt
    canaries = (card, card[:-4], email, phone, phone.replace(" ", ""))
    for canary in canaries:
        assert canary not in body, "nor in the reply, its prompt or its metadata"

    keyring = load_keyring(Settings(data_dir=data_dir))  # the server's keys, read as it does

    def stored(sql: str, purpose: str) -> list[str]:
        rows = query_server_database(data_dir, sql, customer_id)
        return [keyring.decrypt(str(row[0]), purpose) for row in rows]

    turns = stored("SELECT message FROM turns WHERE customer_id = ?", "turns.message")
    deadline = time.monotonic() + 30  # the exchange joins the history after the reply
    history_sql = "SELECT text FROM history_entries WHERE customer_id = ?"
    history = stored(history_sql, "history_entries.text")
    while len(history) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        history = stored(history_sql, "history_entries.text")
    masked = message.replace(card, f"**** {card[-4:]}")
    assert turns == [masked.replace(email, mask(PiiKind.EMAIL, email))]
    assert len(history) >= 2, "the note and the conversation are in the history index"
    log = server.log_tail(100_000)
    for canary in canaries:
        assert all(canary not in text for text in turns + history)
        assert canary not in log
    files = server_database_bytes(data_dir)
    assert order in turns[0], "the message was stored (encrypted)"
    for clear in (*canaries, order):  # the database and its WAL, as a stolen disk shows them
        assert clear.encode() not in files, "nothing a customer wrote is on disk in clear"
