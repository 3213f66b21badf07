"""Conversation and customer stores on real SQLite and PostgreSQL.

Turns, tickets, release, memory, analytics, erasure; every test that takes ``database``
runs once per backend (``store_engine`` in tests/conftest.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.crypto import Keyring
from core.errors import NotFoundError
from server.pipeline.memory import ConversationMemory, roll_summary, summary_line
from server.store.analytics import ConversationAnalytics
from server.store.conversations import ConversationMode, ConversationStore
from server.store.customers import CustomerEvent, CustomerStore, EventKind
from server.store.feedback import FeedbackStore
from server.store.tickets import NewTicket, TicketStore, WebhookStatus
from tests.store_rows import turn

KEYRING = Keyring.generate()
"""One key for every store of this module, so a reopened store reads what it wrote."""


@pytest.fixture
def database(store_engine: Engine) -> Engine:
    return store_engine


def test_turns_tickets_release_and_scoping(database: Engine) -> None:
    store = ConversationStore(database, KEYRING)
    tickets = TicketStore(database, KEYRING)
    memory = ConversationMemory(store, window=2, summary_chars=500)
    conversation = store.open("shop", "ana", None, "chat", "en")
    for seq in range(1, 5):
        recalled = memory.recall_sync(conversation)
        summary, covered = memory.next_summary(conversation, recalled, seq)
        ticket = NewTicket("human_request", "normal", WebhookStatus.PENDING) if seq == 4 else None
        conversation, created = store.record_turn(
            conversation,
            turn(conversation.conversation_id, seq, f"question {seq}"),
            negative_streak=0,
            ungrounded_streak=0,
            summary=summary,
            summarized_turns=covered,
            ticket=ticket,
            transcript=[{"role": "customer", "text": "question 4"}],
        )
    assert created is not None and conversation.mode is ConversationMode.HUMAN
    stored = store.get("shop", "ana", conversation.conversation_id)
    assert stored.turn_count == 4 and stored.ticket_id == created.ticket_id
    assert stored.summarized_turns == 2
    assert "question 1" in stored.summary and "question 2" in stored.summary
    assert "question 3" not in stored.summary
    assert [t.seq for t in store.recent_turns(stored.conversation_id, 2)] == [3, 4]
    with pytest.raises(NotFoundError):
        store.get("shop", "ben", conversation.conversation_id)  # another customer
    with pytest.raises(NotFoundError):
        store.get("other", None, conversation.conversation_id)  # another tenant
    tickets.set_webhook_result(created.ticket_id, WebhookStatus.DELIVERED, 2, None)
    [ticket] = tickets.tickets("shop")
    assert ticket.webhook_status is WebhookStatus.DELIVERED and ticket.webhook_attempts == 2
    released = store.release("shop", conversation.conversation_id)
    assert released.mode is ConversationMode.ASSISTANT
    assert tickets.ticket("shop", created.ticket_id).status == "closed"
    assert tickets.tickets("other") == []


def test_the_rolling_summary_stays_within_its_budget() -> None:
    turns = [turn("c", seq, f"question number {seq} " + "x" * 50) for seq in range(1, 30)]
    summary = roll_summary("", turns, max_chars=400)
    assert len(summary) <= 400
    assert "question number 29" in summary and "question number 1 " not in summary
    assert "answered from Shipping" in summary_line(turns[0])


def test_analytics_and_feedback(database: Engine) -> None:
    store = ConversationStore(database, KEYRING)
    analytics = ConversationAnalytics(database, KEYRING)
    feedback = FeedbackStore(database, KEYRING)
    conversation = store.open("shop", "ana", None, "chat", "en")
    conversation, _ = store.record_turn(
        conversation,
        turn(
            conversation.conversation_id,
            1,
            "do you sell sofas?",
            grounded=False,
            sentiment="negative",
            intent="product_info",
        ),
        negative_streak=1,
        ungrounded_streak=1,
        summary="",
        summarized_turns=0,
        ticket=NewTicket("ungrounded", "low", WebhookStatus.NOT_CONFIGURED),
    )
    feedback.add_feedback(conversation, turn_id=None, csat=4, thumbs="up", comment="")
    with pytest.raises(NotFoundError):
        feedback.add_feedback(conversation, turn_id="turn_other", csat=1, thumbs=None, comment="")
    report = analytics.analytics("shop", since=0)
    assert report["turns"] == 1 and report["conversations"] == 1
    assert report["top_intents"] == [{"intent": "product_info", "turns": 1}]
    assert report["sentiment_mix"] == {"negative": 1}
    assert report["escalations"]["by_reason"] == {"ungrounded": 1}
    assert report["escalations"]["rate"] == 1.0
    assert report["csat"]["average"] == 4.0 and report["csat"]["thumbs"] == {"up": 1}
    assert report["kb_gaps"]["questions"][0]["message"] == "do you sell sofas?"
    assert analytics.analytics("other", since=0)["turns"] == 0


def test_forgetting_a_customer_removes_every_row(database: Engine) -> None:
    customers = CustomerStore(database, KEYRING)
    store = ConversationStore(database, KEYRING)
    feedback = FeedbackStore(database, KEYRING)
    tickets = TicketStore(database, KEYRING)
    customers.upsert(
        "shop",
        "ana",
        name="Ana",
        tier="gold",
        locale="en",
        consent={"personalization": True},
        attributes={},
    )
    customers.add_events("shop", "ana", [CustomerEvent(EventKind.NOTE, 1.0, {"text": "hi"})])
    conversation = store.open("shop", "ana", None, "chat", "en")
    conversation, _ = store.record_turn(
        conversation,
        turn(conversation.conversation_id, 1, "hello"),
        negative_streak=0,
        ungrounded_streak=0,
        summary="",
        summarized_turns=0,
        ticket=NewTicket("human_request", "normal", WebhookStatus.NOT_CONFIGURED),
    )
    feedback.add_feedback(conversation, turn_id=None, csat=5, thumbs=None, comment="")
    removed = store.forget_customer("shop", "ana")
    assert removed == {"turns": 1, "tickets": 1, "feedback": 1, "conversations": 1}
    assert customers.forget("shop", "ana") == {"customers": 1, "customer_events": 1}
    assert customers.get("shop", "ana") is None and tickets.tickets("shop") == []


def test_customer_upsert_keeps_created_at_and_events_come_newest_first(database: Engine) -> None:
    customers = CustomerStore(database, KEYRING)
    first, created = customers.upsert(
        "shop", "ana", name="Ana", tier="standard", locale="en", consent={}, attributes={}
    )
    second, created_again = customers.upsert(
        "shop",
        "ana",
        name="Ana R",
        tier="gold",
        locale="pt-PT",
        consent={"marketing": True},
        attributes={"vip": True},
    )
    assert created and not created_again
    assert second.created_at == first.created_at and second.tier == "gold"
    assert second.allows("marketing") and not second.allows("personalization")
    customers.add_events(
        "shop", "ana", [CustomerEvent(EventKind.NOTE, t, {"text": str(t)}) for t in (5.0, 9.0, 1.0)]
    )
    assert [e.occurred_at for e in customers.events("shop", "ana")] == [9.0, 5.0, 1.0]
