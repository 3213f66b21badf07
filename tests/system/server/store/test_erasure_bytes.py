"""An erasure on PostgreSQL: after its VACUUM no tuple of any erased table, live or dead,
holds the customer.

A delete only marks PostgreSQL rows dead; they stay in the pages, readable with
``pageinspect``, until VACUUM removes them. The erasure vacuums the tables it emptied
(``core.db.release_deleted_bytes``). Read here page by page through ``pageinspect``
(``heap_page_items``), which shows dead tuples too. SQLite's half is the byte scan of the
whole data directory in tests/system/server/api/test_customer_erasure.py.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from core.crypto import Keyring
from server.store.conversations import ConversationStore
from server.store.customers import CustomerEvent, CustomerStore, EventKind
from server.store.tickets import NewTicket, WebhookStatus
from tests.store_rows import turn

ERASED_TABLES = ("customers", "customer_events", "conversations", "turns", "tickets")


def tuples_holding(engine: Engine, table: str, needle: bytes) -> int:
    """Tuples of ``table`` (live or dead, every page) whose bytes contain ``needle``."""
    with engine.connect() as conn:
        pages = conn.scalar(
            text("SELECT pg_relation_size(:t) / current_setting('block_size')::int"),
            {"t": table},
        )
        found = 0
        for page in range(int(pages or 0)):
            rows = conn.execute(
                text("SELECT t_data FROM heap_page_items(get_raw_page(:t, :p))"),
                {"t": table, "p": page},
            ).scalars()
            found += sum(1 for data in rows if data is not None and needle in bytes(data))
    return found


def test_after_an_erasure_no_tuple_of_the_erased_tables_holds_the_customer(
    store_engine: Engine,
) -> None:
    if store_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's pages; SQLite's files are scanned by the erasure API test")
    with store_engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
    customer = f"canary-{uuid.uuid4().hex}"
    keyring = Keyring.generate()
    customers = CustomerStore(store_engine, keyring)
    customers.upsert(
        "shop", customer, name="Ana", tier="gold", locale="en", consent={}, attributes={}
    )
    customers.add_events("shop", customer, [CustomerEvent(EventKind.NOTE, 1.0, {"text": "hi"})])
    conversations = ConversationStore(store_engine, keyring)
    conversation = conversations.open("shop", customer, None, "chat", "en")
    conversations.record_turn(
        conversation,
        turn(conversation.conversation_id, 1, "where is my parcel?"),
        negative_streak=0,
        ungrounded_streak=0,
        summary="parcel",
        summarized_turns=1,
        ticket=NewTicket("customer_request", "normal", WebhookStatus.NOT_CONFIGURED),
        transcript=[{"role": "customer", "text": "where is my parcel?"}],
    )
    needle = customer.encode()
    before = {table: tuples_holding(store_engine, table, needle) for table in ERASED_TABLES}
    assert all(before.values()), before  # the check sees the customer where it is stored

    removed = conversations.forget_customer("shop", customer)
    erased = [table for table, count in removed.items() if count]
    customers.forget("shop", customer, erased)

    after = {table: tuples_holding(store_engine, table, needle) for table in ERASED_TABLES}
    assert not any(after.values()), after
