"""Encryption at rest through the real stores, on SQLite and PostgreSQL: what a customer
wrote never reaches the database (nor SQLite's files) in clear, reads come back plain,
and a rotation re-encrypts every row, old plain rows included."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, Text, cast, insert, select, text, update

from core.crypto import PREFIX, EncryptionKey, Keyring, key_id_of
from core.errors import DecryptionError, EncryptionKeyError
from models.embedder import Embedder
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from server.store.analytics import ConversationAnalytics
from server.store.conversation_tables import TURNS
from server.store.conversations import ConversationStore
from server.store.customers import CUSTOMER_EVENTS, CustomerEvent, CustomerStore, EventKind
from server.store.feedback import FeedbackStore
from server.store.key_rotation import encrypted_columns, key_usage, reencrypt
from server.store.tickets import NewTicket, TicketStore, WebhookStatus
from tests.store_rows import turn


def canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


def write_everything(engine: Engine, keyring: Keyring, embedder: Embedder, word: str) -> str:
    """One value in every encrypted column, each carrying ``word``; the conversation id."""
    customers = CustomerStore(engine, keyring)
    customers.upsert(
        "shop",
        "ana",
        name="Ana",
        tier="gold",
        locale="en",
        consent={"personalization": True},
        attributes={"email": f"{word}@example.org"},
    )
    note = CustomerEvent(EventKind.NOTE, 1000.0, {"text": f"prefers calls, {word}"})
    customers.add_events("shop", "ana", [note])
    store = ConversationStore(engine, keyring)
    feedback = FeedbackStore(engine, keyring)
    conversation = store.open("shop", "ana", None, "chat", "en")
    conversation, ticket = store.record_turn(
        conversation,
        turn(conversation.conversation_id, 1, f"my parcel {word} is late", reply=f"sorry {word}"),
        negative_streak=0,
        ungrounded_streak=0,
        summary=f"customer asked about {word}",
        summarized_turns=1,
        ticket=NewTicket("customer_request", "normal", WebhookStatus.NOT_CONFIGURED),
        transcript=[{"role": "customer", "text": f"my parcel {word} is late"}],
    )
    assert ticket is not None
    feedback.add_feedback(conversation, turn_id=None, csat=2, thumbs=None, comment=f"meh {word}")
    history = CustomerHistory(engine, embedder, keyring)
    vector = np.ones((1, embedder.dimension), dtype=np.float32) / np.sqrt(embedder.dimension)
    history.add("shop", "ana", [HistoryEntry(HistoryKind.NOTE, f"note {word}", 1000.0)], vector)
    return conversation.conversation_id


def read_everything(
    engine: Engine, keyring: Keyring, embedder: Embedder, conversation_id: str
) -> str:
    """The encrypted values of ``write_everything`` read back through the stores, joined
    (feedback comments have no reader: seven of the eight)."""
    customers = CustomerStore(engine, keyring)
    store = ConversationStore(engine, keyring)
    tickets = TicketStore(engine, keyring)
    customer = customers.get("shop", "ana")
    assert customer is not None
    conversation = store.get("shop", "ana", conversation_id)
    (stored_turn,) = store.recent_turns(conversation_id, 5)
    (ticket,) = tickets.tickets("shop")
    history = CustomerHistory(engine, embedder, keyring)  # a fresh one loads from SQL
    vector = np.ones(embedder.dimension, dtype=np.float32)
    hits = history.search("shop", "ana", vector)
    parts = [
        customer.attributes["email"],
        *(event.payload["text"] for event in customers.events("shop", "ana")),
        conversation.summary,
        stored_turn.message,
        stored_turn.reply,
        ticket.transcript[0]["text"],
        *(hit.text for hit in hits),
    ]
    return "\n".join(parts)


def raw_values(engine: Engine) -> dict[str, list[str]]:
    """Every encrypted column's values as the database holds them (JSON as its text)."""
    found = {}
    with engine.connect() as conn:
        for encrypted in encrypted_columns():
            rows = conn.execute(select(cast(encrypted.column, Text))).scalars().all()
            found[encrypted.name] = [str(value) for value in rows]
    return found


def sqlite_file_bytes(engine: Engine) -> bytes:
    """The database file and its WAL, after a checkpoint: what a stolen disk would show."""
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    database = Path(str(engine.url.database))
    return b"".join(
        path.read_bytes()
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    )


def test_customer_text_is_stored_encrypted_and_read_back_plain(
    store_engine: Engine, embedder: Embedder
) -> None:
    keyring = Keyring.generate()
    word = canary()
    conversation_id = write_everything(store_engine, keyring, embedder, word)
    shown = read_everything(store_engine, keyring, embedder, conversation_id)
    assert shown.count(word) == 7, shown
    assert ConversationAnalytics(store_engine, keyring).analytics("shop", 0.0)["turns"] == 1

    stored = raw_values(store_engine)
    assert all(stored.values()), f"every encrypted column got a row: {stored}"
    for column, values in stored.items():
        for value in values:
            assert word not in value, column
            assert value.lstrip('"').startswith(f"{PREFIX}{keyring.primary_id}:"), column
    if store_engine.dialect.name == "sqlite":
        raw = sqlite_file_bytes(store_engine)
        assert b"Ana" in raw, "the file was read (names are not encrypted)"
        assert word.encode() not in raw


def test_ungrounded_questions_are_still_grouped_for_the_kb_gap_report(
    store_engine: Engine,
) -> None:
    keyring = Keyring.generate()
    store = ConversationStore(store_engine, keyring)
    analytics = ConversationAnalytics(store_engine, keyring)
    for seq, question in enumerate(("where is my parcel", "where is my parcel", "a refund?"), 1):
        conversation = store.open("shop", f"c{seq}", None, "chat", "en")
        store.record_turn(
            conversation,
            turn(conversation.conversation_id, 1, question, grounded=False),
            negative_streak=0,
            ungrounded_streak=1,
            summary="",
            summarized_turns=0,
        )
    gaps = analytics.analytics("shop", 0.0)["kb_gaps"]
    assert gaps["ungrounded_replies"] == 3
    assert [(q["message"], q["times"]) for q in gaps["questions"]] == [
        ("where is my parcel", 2),
        ("a refund?", 1),
    ]


def test_a_value_moved_or_read_without_its_key_is_refused(store_engine: Engine) -> None:
    keyring = Keyring.generate()
    store = ConversationStore(store_engine, keyring)
    conversation = store.open("shop", "ana", None, "chat", "en")
    store.record_turn(
        conversation,
        turn(conversation.conversation_id, 1, canary()),
        negative_streak=0,
        ungrounded_streak=0,
        summary="",
        summarized_turns=0,
    )
    with pytest.raises(EncryptionKeyError):
        ConversationStore(store_engine, Keyring.generate()).recent_turns(
            conversation.conversation_id, 1
        )
    with store_engine.begin() as conn:
        conn.execute(update(TURNS).values(reply=TURNS.c.message))
    with pytest.raises(DecryptionError):
        store.recent_turns(conversation.conversation_id, 1)


def test_rotation_reencrypts_every_row_including_rows_from_before_encryption(
    store_engine: Engine, embedder: Embedder
) -> None:
    old = EncryptionKey.generate()
    word = canary()
    conversation_id = write_everything(store_engine, Keyring([old]), embedder, word)
    legacy_conversation = insert_plain_rows(store_engine, word)

    new = EncryptionKey.generate()
    rotated = Keyring([new, old])
    assert read_everything(store_engine, rotated, embedder, conversation_id).count(word) == 7
    before = {usage.column: usage for usage in key_usage(store_engine, rotated)}
    assert before["turns.message"].by_key == {new.key_id: 0, old.key_id: 1}
    assert before["turns.message"].clear == 1
    assert before["customer_events.payload"].clear == 1
    assert all(usage.unknown_key == 0 for usage in before.values())

    rewritten = reencrypt(store_engine, rotated, batch_rows=1)  # several batches per column
    assert rewritten["turns.message"] == 2 and rewritten["customer_events.payload"] == 2
    assert rewritten["feedback.comment"] == 1
    after = key_usage(store_engine, rotated)
    for usage in after:
        assert usage.by_key[old.key_id] == 0 and usage.clear == 0, usage
        assert usage.by_key[new.key_id] == usage.rows > 0, usage
    assert reencrypt(store_engine, rotated) == {usage.column: 0 for usage in after}

    only_new = Keyring([new])  # the old key dropped: everything is still readable
    assert read_everything(store_engine, only_new, embedder, conversation_id).count(word) == 7
    turns = ConversationStore(store_engine, only_new).recent_turns(legacy_conversation, 5)
    assert [t.message for t in turns] == [f"written before encryption {word}"]
    events = CustomerStore(store_engine, only_new).events("shop", "legacy")
    assert events[0].payload == {"text": f"old note {word}"}
    for values in raw_values(store_engine).values():
        assert all(word not in value for value in values)
        assert {key_id_of(value.lstrip('"')) for value in values} == {new.key_id}


def insert_plain_rows(engine: Engine, word: str) -> str:
    """A turn and an event as a release before encryption stored them; the conversation id."""
    store = ConversationStore(engine, Keyring.generate())
    conversation = store.open("shop", "legacy", None, "chat", "en")
    stored_turn = turn(conversation.conversation_id, 1, "placeholder")
    store.record_turn(
        conversation,
        stored_turn,
        negative_streak=0,
        ungrounded_streak=0,
        summary="",
        summarized_turns=0,
    )
    with engine.begin() as conn:
        conn.execute(
            update(TURNS)
            .where(TURNS.c.turn_id == stored_turn.turn_id)
            .values(message=f"written before encryption {word}", reply="plain reply")
        )
        conn.execute(
            text("UPDATE conversations SET summary = '' WHERE conversation_id = :id"),
            {"id": conversation.conversation_id},
        )
        conn.execute(
            insert(CUSTOMER_EVENTS).values(
                tenant="shop",
                customer_id="legacy",
                kind="note",
                occurred_at=1.0,
                payload={"text": f"old note {word}"},
                recorded_at=1.0,
            )
        )
    return conversation.conversation_id
