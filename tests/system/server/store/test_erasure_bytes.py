"""An erasure on PostgreSQL: after its VACUUM no tuple of any erased table, live or dead,
holds the customer.

A delete only marks PostgreSQL rows dead; they stay in the pages until VACUUM removes them.
The erasure vacuums the tables it emptied (``core.db.release_deleted_bytes``), the
customer's history vectors in pgvector's ``vector_items`` included. Read here page by
page, as ``pageinspect``'s ``heap_page_items`` would show them (the PostgreSQL the suite
runs ships no pageinspect): after a ``CHECKPOINT`` the table's file is read with
``pg_read_binary_file`` and every line pointer that still has storage, normal or dead, is
a tuple. Bytes in a page's free space belong to no tuple (no query can reach them):
docs/security.md says what an operator does about those. SQLite's half is the byte scan of
the whole data directory in tests/system/server/api/test_customer_erasure.py.
"""

from __future__ import annotations

import struct
import time
import uuid

import pytest
from sqlalchemy import Engine, text

from core.crypto import Keyring
from models.embedder import Embedder
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from server.store.conversations import ConversationStore
from server.store.customers import CustomerEvent, CustomerStore, EventKind
from server.store.tickets import NewTicket, WebhookStatus
from tests.store_rows import turn

ERASED_TABLES = (
    "customers",
    "customer_events",
    "conversations",
    "turns",
    "tickets",
    "history_entries",
    "vector_items",
)
PAGE_HEADER_BYTES = 24
LINE_POINTER = struct.Struct("<I")
LP_NORMAL, LP_DEAD = 1, 3


def tuples_holding(engine: Engine, table: str, needle: bytes) -> int:
    """Tuples of ``table`` (live or dead, every page) whose bytes contain ``needle``."""
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))  # every dirty page of the table is on disk now
        page_size = int(conn.scalar(text("SELECT current_setting('block_size')")))
        path = conn.scalar(text("SELECT pg_relation_filepath(:t)"), {"t": table})
        heap = bytes(conn.scalar(text("SELECT pg_read_binary_file(:p)"), {"p": path}))
    found = 0
    for start in range(0, len(heap), page_size):
        page = heap[start : start + page_size]
        pd_lower = struct.unpack_from("<H", page, 12)[0]
        for offset in range(PAGE_HEADER_BYTES, pd_lower, LINE_POINTER.size):
            (item,) = LINE_POINTER.unpack_from(page, offset)
            lp_off, lp_flags, lp_len = item & 0x7FFF, (item >> 15) & 0x3, item >> 17
            if (
                lp_flags in (LP_NORMAL, LP_DEAD)
                and lp_len
                and needle in page[lp_off : lp_off + lp_len]
            ):
                found += 1
    return found


def test_after_an_erasure_no_tuple_of_the_erased_tables_holds_the_customer(
    store_engine: Engine, embedder: Embedder
) -> None:
    if store_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's pages; SQLite's files are scanned by the erasure API test")
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
    history = CustomerHistory(store_engine, embedder, keyring)
    history.add("shop", customer, [HistoryEntry(HistoryKind.NOTE, "likes tea", time.time())])
    needle = customer.encode()
    before = {table: tuples_holding(store_engine, table, needle) for table in ERASED_TABLES}
    assert all(before.values()), before  # the check sees the customer where it is stored

    removed = conversations.forget_customer("shop", customer)
    removed["history_entries"] = history.forget_customer("shop", customer)
    erased = [table for table, count in removed.items() if count] + list(history.tables[1:])
    customers.forget("shop", customer, erased)

    after = {table: tuples_holding(store_engine, table, needle) for table in ERASED_TABLES}
    assert not any(after.values()), after
