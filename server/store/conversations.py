"""Conversations and their turns.

A turn is one exchange: the customer's message and what was sent back (the model's
reply, or an acknowledgement while a human owns the conversation), with the analysis
that shaped it. ``record_turn`` commits the turn, the conversation's updated counters and
an escalation ticket in one transaction; the HTTP layer acknowledges a turn only after
it returns, so an acknowledged turn survives a crash. Tickets, feedback and analytics
have stores of their own (``tickets.py``, ``feedback.py``, ``analytics.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.engine import Connection

from core.crypto import Keyring
from core.errors import NotFoundError
from core.ids import new_id
from server.store.conversation_tables import (
    CONVERSATIONS,
    FEEDBACK,
    MESSAGE,
    REPLY,
    SUMMARY,
    TICKETS,
    TURNS,
)
from server.store.tickets import NewTicket, Ticket, TicketStore


class ConversationMode(StrEnum):
    ASSISTANT = "assistant"
    """The model answers."""
    HUMAN = "human"
    """Escalated: messages are recorded and acknowledged; a person answers."""


class AnsweredBy(StrEnum):
    MODEL = "model"
    HANDOVER = "handover"
    """The customer asked for a person: the tenant's handover message, no model reply."""
    HUMAN_QUEUE = "human_queue"
    """A person owns the conversation: the message is recorded and acknowledged."""


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    tenant: str
    customer_id: str
    channel: str
    locale: str
    mode: ConversationMode
    summary: str
    summarized_turns: int
    turn_count: int
    negative_streak: int
    ungrounded_streak: int
    ticket_id: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Turn:
    """One exchange, as stored."""

    turn_id: str
    conversation_id: str
    seq: int
    created_at: float
    message: str
    reply: str
    answered_by: AnsweredBy
    language: str
    sentiment: str
    sentiment_score: float
    frustrated: bool
    intent: str
    intent_confidence: float
    grounded: bool
    citations: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    escalation_reason: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    help_failed: bool = False
    """The customer said our help did not help (``escalation.fails_an_answer``): later
    turns count it toward ``repeated_failure`` without reading the message again."""


class ConversationStore:
    """Reads and transactional writes of conversations and turns (and a turn's ticket).

    Message text, replies, summaries, transcripts and feedback comments are encrypted
    with ``keyring`` on the way in and decrypted on the way out; callers see plain text.
    """

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring
        self._tickets = TicketStore(engine, keyring)

    # ---------------------------------------------------------------- conversations

    def open(
        self, tenant: str, customer_id: str, conversation_id: str | None, channel: str, locale: str
    ) -> Conversation:
        """The named conversation of this customer, or a new one when no id is given.

        A conversation id that exists for another customer or tenant is reported as
        not found, exactly like one that does not exist, so ids cannot be probed.
        """
        if conversation_id is not None:
            return self.get(tenant, customer_id, conversation_id)
        now = time.time()
        conversation = Conversation(
            conversation_id=new_id("conv"),
            tenant=tenant,
            customer_id=customer_id,
            channel=channel,
            locale=locale,
            mode=ConversationMode.ASSISTANT,
            summary="",
            summarized_turns=0,
            turn_count=0,
            negative_streak=0,
            ungrounded_streak=0,
            ticket_id=None,
            created_at=now,
            updated_at=now,
        )
        return conversation

    def get(self, tenant: str, customer_id: str | None, conversation_id: str) -> Conversation:
        query = select(CONVERSATIONS).where(
            CONVERSATIONS.c.tenant == tenant, CONVERSATIONS.c.conversation_id == conversation_id
        )
        if customer_id is not None:
            query = query.where(CONVERSATIONS.c.customer_id == customer_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(
                f"conversation {conversation_id!r} not found", param="conversation_id"
            )
        values = row._asdict()
        values["mode"] = ConversationMode(values["mode"])
        values["summary"] = self._keyring.decrypt(values["summary"], SUMMARY)
        return Conversation(**values)

    def recent_turns(self, conversation_id: str, limit: int) -> list[Turn]:
        """The last ``limit`` turns, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(TURNS)
                .where(TURNS.c.conversation_id == conversation_id)
                .order_by(TURNS.c.seq.desc())
                .limit(limit)
            ).all()
        return [self._turn(row) for row in reversed(rows)]

    def turns_between(self, conversation_id: str, first_seq: int, last_seq: int) -> list[Turn]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(TURNS)
                .where(
                    TURNS.c.conversation_id == conversation_id,
                    TURNS.c.seq >= first_seq,
                    TURNS.c.seq <= last_seq,
                )
                .order_by(TURNS.c.seq)
            ).all()
        return [self._turn(row) for row in rows]

    def record_turn(
        self,
        conversation: Conversation,
        turn: Turn,
        *,
        negative_streak: int,
        ungrounded_streak: int,
        summary: str,
        summarized_turns: int,
        ticket: NewTicket | None = None,
        transcript: Sequence[dict[str, Any]] = (),
    ) -> tuple[Conversation, Ticket | None]:
        """Commit the turn, the conversation's new state and any ticket in one transaction."""
        now = time.time()
        created_ticket: Ticket | None = None
        mode = conversation.mode
        ticket_id = conversation.ticket_id
        if ticket is not None:
            ticket_id = ticket.ticket_id
            mode = ConversationMode.HUMAN
            created_ticket = Ticket(
                ticket_id=ticket_id,
                tenant=conversation.tenant,
                conversation_id=conversation.conversation_id,
                customer_id=conversation.customer_id,
                reason=ticket.reason,
                priority=ticket.priority,
                status="open",
                transcript=list(transcript),
                created_at=now,
                webhook_status=ticket.webhook_status,
                webhook_attempts=0,
                webhook_error=None,
            )
        state = {
            "mode": str(mode),
            "summary": summary,
            "summarized_turns": summarized_turns,
            "turn_count": turn.seq,
            "negative_streak": negative_streak,
            "ungrounded_streak": ungrounded_streak,
            "ticket_id": ticket_id,
            "updated_at": now,
        }
        stored_state = {**state, "summary": self._keyring.encrypt(summary, SUMMARY)}
        with self._engine.begin() as conn:
            if conversation.turn_count == 0 and not self._exists(conn, conversation):
                conn.execute(
                    CONVERSATIONS.insert().values(
                        conversation_id=conversation.conversation_id,
                        tenant=conversation.tenant,
                        customer_id=conversation.customer_id,
                        channel=conversation.channel,
                        locale=conversation.locale,
                        created_at=conversation.created_at,
                        **stored_state,
                    )
                )
            else:
                conn.execute(
                    update(CONVERSATIONS)
                    .where(CONVERSATIONS.c.conversation_id == conversation.conversation_id)
                    .values(**stored_state)
                )
            conn.execute(
                TURNS.insert().values(
                    tenant=conversation.tenant,
                    customer_id=conversation.customer_id,
                    **self._turn_row(turn),
                )
            )
            if created_ticket is not None:
                conn.execute(TICKETS.insert().values(**self._tickets.row_of(created_ticket)))
        updated = Conversation(
            **{
                **vars(conversation),
                **state,
                "mode": mode,
            }
        )
        return updated, created_ticket

    @staticmethod
    def _exists(conn: Connection, conversation: Conversation) -> bool:
        return (
            conn.execute(
                select(CONVERSATIONS.c.conversation_id).where(
                    CONVERSATIONS.c.conversation_id == conversation.conversation_id
                )
            ).first()
            is not None
        )

    def release(self, tenant: str, conversation_id: str) -> Conversation:
        """Hand a conversation back to the model; streaks start again from zero."""
        conversation = self.get(tenant, None, conversation_id)
        with self._engine.begin() as conn:
            conn.execute(
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.conversation_id == conversation_id)
                .values(
                    mode=str(ConversationMode.ASSISTANT),
                    negative_streak=0,
                    ungrounded_streak=0,
                    updated_at=time.time(),
                )
            )
            if conversation.ticket_id is not None:
                conn.execute(
                    update(TICKETS)
                    .where(TICKETS.c.ticket_id == conversation.ticket_id)
                    .values(status="closed")
                )
        return self.get(tenant, None, conversation_id)

    def customer_sentiments(self, tenant: str, customer_id: str, limit: int) -> list[float]:
        """Sentiment scores of the customer's latest turns, newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(TURNS.c.sentiment_score)
                .where(TURNS.c.tenant == tenant, TURNS.c.customer_id == customer_id)
                .order_by(TURNS.c.created_at.desc())
                .limit(limit)
            ).all()
        return [float(r[0]) for r in rows]

    def last_turn_at(self, tenant: str, customer_id: str) -> float | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(func.max(TURNS.c.created_at)).where(
                    TURNS.c.tenant == tenant, TURNS.c.customer_id == customer_id
                )
            ).scalar()
        return float(value) if value is not None else None

    def forget_customer(self, tenant: str, customer_id: str) -> dict[str, int]:
        """Delete the customer's conversations, turns, tickets and feedback; counts per table."""
        owned = (TURNS, TICKETS, FEEDBACK, CONVERSATIONS)
        removed: dict[str, int] = {}
        with self._engine.begin() as conn:
            for table in owned:
                count = conn.execute(
                    delete(table).where(
                        table.c.tenant == tenant, table.c.customer_id == customer_id
                    )
                ).rowcount
                removed[table.name] = int(count or 0)
        return removed

    def purge_inactive_before(self, cutoff: float) -> dict[str, int]:
        """Delete conversations untouched since ``cutoff`` (epoch s) with their turns,
        tickets and feedback, for every tenant; counts per table.

        The retention setting's work: old conversations are personal data kept for no
        purpose. One transaction, so a purge is all or nothing.
        """
        removed: dict[str, int] = {}
        with self._engine.begin() as conn:
            expired = select(CONVERSATIONS.c.conversation_id).where(
                CONVERSATIONS.c.updated_at < cutoff
            )
            for table in (TURNS, TICKETS, FEEDBACK):
                count = conn.execute(
                    delete(table).where(table.c.conversation_id.in_(expired))
                ).rowcount
                removed[table.name] = int(count or 0)
            count = conn.execute(
                delete(CONVERSATIONS).where(CONVERSATIONS.c.updated_at < cutoff)
            ).rowcount
            removed[CONVERSATIONS.name] = int(count or 0)
        return removed

    # ---------------------------------------------------------------- rows

    def _turn(self, row: Any) -> Turn:
        values = row._asdict()
        values.pop("tenant", None)
        values.pop("customer_id", None)
        values["answered_by"] = AnsweredBy(values["answered_by"])
        values["message"] = self._keyring.decrypt(values["message"], MESSAGE)
        values["reply"] = self._keyring.decrypt(values["reply"], REPLY)
        return Turn(**values)

    def _turn_row(self, turn: Turn) -> dict[str, Any]:
        row = dict(vars(turn))
        row["answered_by"] = str(turn.answered_by)
        row["message"] = self._keyring.encrypt(turn.message, MESSAGE)
        row["reply"] = self._keyring.encrypt(turn.reply, REPLY)
        return row
