"""Retention: conversations idle past the limit go, with their turns, tickets, feedback and
history summaries; newer conversations and other history stay. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, update

from core.crypto import Keyring
from models.embedder import Embedder
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from server.lifespan import enforce_retention
from server.services.conversations import ConversationService
from server.store.analytics import ConversationAnalytics
from server.store.conversation_tables import CONVERSATIONS
from server.store.conversations import ConversationStore
from server.store.feedback import FeedbackStore
from server.store.tickets import NewTicket, TicketStore, WebhookStatus
from tests.store_rows import turn

KEYRING = Keyring.generate()
"""One key for every store of this module, so a reopened store reads what it wrote."""

DAY = 86_400.0


def conversation_service(store_engine: Engine, embedder: Embedder) -> ConversationService:
    """The service whose purge the server runs, on this test's database."""
    return ConversationService(
        ConversationStore(store_engine, KEYRING),
        TicketStore(store_engine, KEYRING),
        FeedbackStore(store_engine, KEYRING),
        ConversationAnalytics(store_engine, KEYRING),
        CustomerHistory(store_engine, embedder, KEYRING),
    )


def test_the_purge_removes_only_what_outlived_the_retention(
    store_engine: Engine, embedder: Embedder
) -> None:
    now = time.time()
    service = conversation_service(store_engine, embedder)
    store = service.conversations
    feedback = service.feedback_store
    kept_ids = []
    for age_days, customer in ((45, "ana"), (5, "ana"), (45, "ben")):
        conversation = store.open("shop", customer, None, "chat", "en")
        conversation, _ = store.record_turn(
            conversation,
            turn(conversation.conversation_id, 1, "where is my parcel"),
            negative_streak=0,
            ungrounded_streak=0,
            summary="",
            summarized_turns=0,
            ticket=NewTicket("human_request", "normal", WebhookStatus.PENDING),
            transcript=[{"role": "customer", "text": "where is my parcel"}],
        )
        feedback.add_feedback(conversation, turn_id=None, csat=4, thumbs=None, comment="")
        with store_engine.begin() as conn:
            conn.execute(
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.conversation_id == conversation.conversation_id)
                .values(updated_at=now - age_days * DAY)
            )
        if age_days < 30:
            kept_ids.append(conversation.conversation_id)
    history = service.history
    history.add(
        "shop",
        "ana",
        [
            HistoryEntry(HistoryKind.CONVERSATION, "old chat about a parcel", now - 45 * DAY),
            HistoryEntry(HistoryKind.CONVERSATION, "recent chat about a kettle", now - 5 * DAY),
            HistoryEntry(HistoryKind.ORDER, "old order of a toaster", now - 400 * DAY),
        ],
    )
    query = embedder.embed_sync(["parcel"])[0]
    assert len(history.search("shop", "ana", query, top_k=10)) == 3  # loaded in memory

    def purged(table: str) -> float:
        value = REGISTRY.get_sample_value("concierge_retention_purged_total", {"table": table})
        return value or 0.0

    turns_before = purged("turns")
    removed = service.purge_expired_sync(retention_days=30, now=now)
    assert purged("turns") - turns_before == 2

    assert removed == {
        "turns": 2,
        "tickets": 2,
        "feedback": 2,
        "conversations": 2,
        "history_entries": 1,
    }
    left = [hit.text for hit in history.search("shop", "ana", query, top_k=10)]
    assert sorted(left) == ["old order of a toaster", "recent chat about a kettle"]
    with store_engine.connect() as conn:
        remaining = conn.execute(select(CONVERSATIONS.c.conversation_id)).scalars().all()
    assert remaining == kept_ids
    assert service.purge_expired_sync(retention_days=30, now=now) == dict.fromkeys(removed, 0)


async def test_the_server_purges_at_start_up_and_then_on_its_interval(
    store_engine: Engine, embedder: Embedder
) -> None:
    service = conversation_service(store_engine, embedder)
    store = service.conversations

    def old_conversation() -> str:
        conversation = store.open("shop", "cy", None, "chat", "en")
        with store_engine.begin() as conn:
            conn.execute(
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.conversation_id == conversation.conversation_id)
                .values(updated_at=time.time() - 90 * DAY)
            )
        return conversation.conversation_id

    def count() -> int:
        with store_engine.connect() as conn:
            return len(conn.execute(select(CONVERSATIONS.c.conversation_id)).all())

    old_conversation()
    task = asyncio.create_task(enforce_retention(service, days=30, interval_s=0.2))
    try:
        for _ in range(50):
            if count() == 0:
                break
            await asyncio.sleep(0.1)
        assert count() == 0, "purged at start-up"
        old_conversation()
        for _ in range(50):
            if count() == 0:
                break
            await asyncio.sleep(0.1)
        assert count() == 0, "purged again on the next round"
    finally:
        task.cancel()
