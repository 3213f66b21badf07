"""Escalation tickets: created with the turn that escalates, then read by admins and updated
by the webhook sender with its delivery state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update

from core.crypto import Keyring
from core.errors import NotFoundError
from core.ids import new_id
from server.store.conversation_tables import TICKETS, TRANSCRIPT


class WebhookStatus(StrEnum):
    NOT_CONFIGURED = "not_configured"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    tenant: str
    conversation_id: str
    customer_id: str
    reason: str
    priority: str
    status: str
    transcript: list[dict[str, Any]]
    created_at: float
    webhook_status: WebhookStatus
    webhook_attempts: int
    webhook_error: str | None


@dataclass(frozen=True)
class NewTicket:
    reason: str
    priority: str
    webhook_status: WebhookStatus
    ticket_id: str = field(default_factory=lambda: new_id("tkt"))
    """Chosen before the reply is written, so the hand-over message can name it."""


class TicketStore:
    """Reads tickets and records webhook deliveries; transcripts are stored encrypted."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

    def set_webhook_result(
        self, ticket_id: str, status: WebhookStatus, attempts: int, error: str | None
    ) -> None:
        """Record how the delivery ended (``attempts`` in all) and free its lease."""
        with self._engine.begin() as conn:
            conn.execute(
                update(TICKETS)
                .where(TICKETS.c.ticket_id == ticket_id)
                .values(
                    webhook_status=str(status),
                    webhook_attempts=attempts,
                    webhook_error=error,
                    webhook_lease_until=None,
                )
            )

    def claim_webhook(self, ticket_id: str, lease_s: float, now: float | None = None) -> bool:
        """Take a pending delivery for ``lease_s``: True for exactly one sender (of every
        replica) until the lease runs out; a sender that dies leaves the ticket to the next
        sweep after it does."""
        now = time.time() if now is None else now
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(TICKETS)
                .where(
                    TICKETS.c.ticket_id == ticket_id,
                    TICKETS.c.webhook_status == str(WebhookStatus.PENDING),
                    or_(
                        TICKETS.c.webhook_lease_until.is_(None),
                        TICKETS.c.webhook_lease_until <= now,
                    ),
                )
                .values(webhook_lease_until=now + lease_s)
            ).rowcount
        return bool(taken)

    def owed_webhooks(
        self, max_age_s: float, now: float | None = None, limit: int = 100
    ) -> list[Ticket]:
        """Pending deliveries no sender holds (never claimed, or their sender died), oldest
        first. Those older than ``max_age_s`` are given up as failed: a help desk told of a
        ticket a day late has been told too late to act on it."""
        now = time.time() if now is None else now
        free = and_(
            TICKETS.c.webhook_status == str(WebhookStatus.PENDING),
            or_(TICKETS.c.webhook_lease_until.is_(None), TICKETS.c.webhook_lease_until <= now),
        )
        with self._engine.begin() as conn:
            conn.execute(
                update(TICKETS)
                .where(free, TICKETS.c.created_at < now - max_age_s)
                .values(
                    webhook_status=str(WebhookStatus.FAILED),
                    webhook_error="not delivered in time: given up",
                    webhook_lease_until=None,
                )
            )
            rows = conn.execute(
                select(TICKETS).where(free).order_by(TICKETS.c.created_at).limit(limit)
            ).all()
        return [self.from_row(row) for row in rows]

    def tickets(self, tenant: str, status: str | None = None, limit: int = 100) -> list[Ticket]:
        query = select(TICKETS).where(TICKETS.c.tenant == tenant)
        if status is not None:
            query = query.where(TICKETS.c.status == status)
        query = query.order_by(TICKETS.c.created_at.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self.from_row(row) for row in rows]

    def ticket(self, tenant: str, ticket_id: str) -> Ticket:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(TICKETS).where(TICKETS.c.tenant == tenant, TICKETS.c.ticket_id == ticket_id)
            ).first()
        if row is None:
            raise NotFoundError(f"ticket {ticket_id!r} not found", param="ticket_id")
        return self.from_row(row)

    def from_row(self, row: Any) -> Ticket:
        values = row._asdict()
        values.pop("webhook_lease_until", None)
        values["webhook_status"] = WebhookStatus(values["webhook_status"])
        values["transcript"] = self._keyring.decrypt_json(values["transcript"], TRANSCRIPT)
        return Ticket(**values)

    def row_of(self, ticket: Ticket) -> dict[str, Any]:
        row = dict(vars(ticket))
        row["webhook_status"] = str(ticket.webhook_status)
        row["transcript"] = self._keyring.encrypt_json(ticket.transcript, TRANSCRIPT)
        return row
