"""The ticket row as a webhook outbox: one delivery at a time across replicas, and what a
crash left pending delivered by the next sweep of any replica. Real HTTP on loopback,
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from core.crypto import Keyring
from server.pipeline.webhook import MAX_DELIVERY_AGE_S, TicketNotifier
from server.security.outbound import WebhookPolicy
from server.store.conversations import ConversationStore
from server.store.tickets import NewTicket, Ticket, TicketStore, WebhookStatus
from server.tenants import Webhook
from tests.store_rows import turn
from tests.webhook_receiver import Receiver, receiving

KEYRING = Keyring.generate()
LOOPBACK = WebhookPolicy(production=False)  # development: a receiver on loopback is allowed


@pytest.fixture
def receiver() -> Iterator[str]:
    with receiving() as url:
        yield url


def _delivered() -> list[str]:
    """The ticket ids the receiver was sent, in order."""
    return [json.loads(body)["ticket"]["ticket_id"] for _, body in Receiver.bodies]


def _pending_ticket(database: Engine, customer: str) -> Ticket:
    """A turn that escalated, committed with its ticket ``pending`` as the pipeline does."""
    store = ConversationStore(database, KEYRING)
    conversation = store.open("shop", customer, None, "chat", "en")
    _, ticket = store.record_turn(
        conversation,
        turn(conversation.conversation_id, 1, "a person please"),
        negative_streak=0,
        ungrounded_streak=0,
        summary="",
        summarized_turns=0,
        ticket=NewTicket("explicit_request", "normal", WebhookStatus.PENDING),
        transcript=[{"role": "customer", "text": "a person please"}],
    )
    assert ticket is not None
    return ticket


async def _settled(tickets: TicketStore, ticket_id: str) -> Ticket:
    for _ in range(500):
        ticket = tickets.ticket("shop", ticket_id)
        if ticket.webhook_status is not WebhookStatus.PENDING:
            return ticket
        await asyncio.sleep(0.01)
    raise AssertionError("the delivery never settled")


async def test_a_delivery_runs_once_across_replicas_and_a_crash_is_taken_over(
    store_engine: Engine, receiver: str
) -> None:
    config = Webhook(url=receiver, attempts=2, timeout_s=2.0, backoff_s=0.0)
    tickets = TicketStore(store_engine, KEYRING)
    replicas = [
        TicketNotifier(tickets, LOOPBACK, config_of=lambda _tenant: config) for _ in range(2)
    ]
    # a turn's own delivery, with the other replica sweeping at the same moment
    fresh = _pending_ticket(store_engine, "ana")
    replicas[0].notify(fresh, config)
    await replicas[1].sweep()
    assert (await _settled(tickets, fresh.ticket_id)).webhook_status is WebhookStatus.DELIVERED
    await asyncio.sleep(0.2)
    assert _delivered() == [fresh.ticket_id]  # one delivery, not one per replica

    # a replica that took the delivery and died: its lease holds the ticket, then lapses
    orphan = _pending_ticket(store_engine, "ben")
    assert tickets.claim_webhook(orphan.ticket_id, lease_s=0.3)
    assert await replicas[1].sweep() == 0
    await asyncio.sleep(0.4)
    assert await replicas[1].sweep() == 1
    delivered = await _settled(tickets, orphan.ticket_id)
    assert delivered.webhook_status is WebhookStatus.DELIVERED and delivered.webhook_attempts == 1
    assert _delivered() == [fresh.ticket_id, orphan.ticket_id]
    for replica in replicas:
        await replica.close()


def test_a_ticket_too_old_to_matter_is_given_up(store_engine: Engine) -> None:
    tickets = TicketStore(store_engine, KEYRING)
    stale = _pending_ticket(store_engine, "cy")
    later = time.time() + MAX_DELIVERY_AGE_S + 60
    assert tickets.owed_webhooks(MAX_DELIVERY_AGE_S, now=later) == []
    given_up = tickets.ticket("shop", stale.ticket_id)
    assert given_up.webhook_status is WebhookStatus.FAILED
    assert given_up.webhook_error == "not delivered in time: given up"
