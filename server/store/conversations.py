"""Conversations, their turns, escalation tickets and feedback.

A turn is one exchange: the customer's message and what was sent back (the model's
reply, or an acknowledgement while a human owns the conversation), with the analysis
that shaped it. ``record_turn`` commits the turn and the conversation's updated
counters in one transaction; the HTTP layer acknowledges a turn only after it
returns, so an acknowledged turn survives a crash.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection

from core.crypto import Keyring, column_purpose
from core.db import METADATA, ROW_ID
from core.errors import NotFoundError
from core.ids import new_id
from server.store.customers import MAX_CUSTOMER_ID_CHARS

CONVERSATIONS = Table(
    "conversations",
    METADATA,
    Column("conversation_id", String(40), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("summarized_turns", Integer, nullable=False),
    Column("turn_count", Integer, nullable=False),
    Column("negative_streak", Integer, nullable=False),
    Column("ungrounded_streak", Integer, nullable=False),
    Column("ticket_id", String(40), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_conversations_owner", "tenant", "customer_id"),
)

TURNS = Table(
    "turns",
    METADATA,
    Column("turn_id", String(40), primary_key=True),
    Column(
        "conversation_id",
        String(40),
        ForeignKey("conversations.conversation_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("tenant", String(64), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("reply", Text, nullable=False),
    Column("answered_by", String(16), nullable=False),
    Column("language", String(8), nullable=False),
    Column("sentiment", String(16), nullable=False),
    Column("sentiment_score", Float, nullable=False),
    Column("frustrated", Boolean, nullable=False),
    Column("intent", String(64), nullable=False),
    Column("intent_confidence", Float, nullable=False),
    Column("grounded", Boolean, nullable=False),
    Column("citations", JSON, nullable=False),
    Column("recommendations", JSON, nullable=False),
    Column("escalation_reason", String(32), nullable=True),
    Column("prompt_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("timings", JSON, nullable=False),
    Index("ix_turns_conversation", "conversation_id", "seq"),
    Index("ix_turns_tenant_time", "tenant", "created_at"),
)

TICKETS = Table(
    "tickets",
    METADATA,
    Column("ticket_id", String(40), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("conversation_id", String(40), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("transcript", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("webhook_status", String(16), nullable=False),
    Column("webhook_attempts", Integer, nullable=False),
    Column("webhook_error", Text, nullable=True),
    Index("ix_tickets_tenant_time", "tenant", "created_at"),
)

FEEDBACK = Table(
    "feedback",
    METADATA,
    Column("feedback_id", ROW_ID, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("conversation_id", String(40), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), nullable=False),
    Column("turn_id", String(40), nullable=True),
    Column("csat", Integer, nullable=True),
    Column("thumbs", String(8), nullable=True),
    Column("comment", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_feedback_tenant", "tenant", "created_at"),
)


ENCRYPTED_COLUMNS = (
    (CONVERSATIONS.c.summary, False),
    (TURNS.c.message, False),
    (TURNS.c.reply, False),
    (TICKETS.c.transcript, True),
    (FEEDBACK.c.comment, False),
)
"""Columns stored encrypted, and whether each holds JSON (see ``core/crypto.py``)."""

_SUMMARY = column_purpose(CONVERSATIONS.c.summary)
_MESSAGE = column_purpose(TURNS.c.message)
_REPLY = column_purpose(TURNS.c.reply)
_TRANSCRIPT = column_purpose(TICKETS.c.transcript)
_COMMENT = column_purpose(FEEDBACK.c.comment)

KB_GAP_SCAN_LIMIT = 5000
"""Ungrounded questions read to find the most frequent ones: they are encrypted (each
differently), so identical questions are grouped after decryption, not by SQL."""


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


class WebhookStatus(StrEnum):
    NOT_CONFIGURED = "not_configured"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


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


class ConversationStore:
    """Reads and transactional writes of conversations, turns, tickets and feedback.

    Message text, replies, summaries, transcripts and feedback comments are encrypted
    with ``keyring`` on the way in and decrypted on the way out; callers see plain text.
    """

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

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
        values["summary"] = self._keyring.decrypt(values["summary"], _SUMMARY)
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
            ticket_id = new_id("tkt")
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
        stored_state = {**state, "summary": self._keyring.encrypt(summary, _SUMMARY)}
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
                conn.execute(TICKETS.insert().values(**self._ticket_row(created_ticket)))
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

    # ---------------------------------------------------------------- tickets

    def set_webhook_result(
        self, ticket_id: str, status: WebhookStatus, attempts: int, error: str | None
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(TICKETS)
                .where(TICKETS.c.ticket_id == ticket_id)
                .values(webhook_status=str(status), webhook_attempts=attempts, webhook_error=error)
            )

    def tickets(self, tenant: str, status: str | None = None, limit: int = 100) -> list[Ticket]:
        query = select(TICKETS).where(TICKETS.c.tenant == tenant)
        if status is not None:
            query = query.where(TICKETS.c.status == status)
        query = query.order_by(TICKETS.c.created_at.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._ticket(row) for row in rows]

    def ticket(self, tenant: str, ticket_id: str) -> Ticket:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(TICKETS).where(TICKETS.c.tenant == tenant, TICKETS.c.ticket_id == ticket_id)
            ).first()
        if row is None:
            raise NotFoundError(f"ticket {ticket_id!r} not found", param="ticket_id")
        return self._ticket(row)

    # ---------------------------------------------------------------- feedback

    def add_feedback(
        self,
        conversation: Conversation,
        *,
        turn_id: str | None,
        csat: int | None,
        thumbs: str | None,
        comment: str,
    ) -> int:
        if turn_id is not None:
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(TURNS.c.turn_id).where(
                        TURNS.c.turn_id == turn_id,
                        TURNS.c.conversation_id == conversation.conversation_id,
                    )
                ).first()
            if found is None:
                raise NotFoundError(
                    f"turn {turn_id!r} is not part of this conversation", param="turn_id"
                )
        with self._engine.begin() as conn:
            result = conn.execute(
                FEEDBACK.insert().values(
                    tenant=conversation.tenant,
                    conversation_id=conversation.conversation_id,
                    customer_id=conversation.customer_id,
                    turn_id=turn_id,
                    csat=csat,
                    thumbs=thumbs,
                    comment=self._keyring.encrypt(comment, _COMMENT),
                    created_at=time.time(),
                )
            )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    # ---------------------------------------------------------------- per customer

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

    # ---------------------------------------------------------------- analytics

    def analytics(self, tenant: str, since: float, gaps_limit: int = 20) -> dict[str, Any]:
        """Counts behind ``GET /admin/analytics`` for turns since ``since`` (epoch seconds)."""
        in_window = (TURNS.c.tenant == tenant, TURNS.c.created_at >= since)
        with self._engine.connect() as conn:
            turns = conn.execute(select(func.count()).select_from(TURNS).where(*in_window))
            total_turns = int(turns.scalar_one())
            conversations = int(
                conn.execute(
                    select(func.count(func.distinct(TURNS.c.conversation_id))).where(*in_window)
                ).scalar_one()
            )
            intents = conn.execute(
                select(TURNS.c.intent, func.count())
                .where(*in_window, TURNS.c.answered_by == str(AnsweredBy.MODEL))
                .group_by(TURNS.c.intent)
                .order_by(func.count().desc())
                .limit(10)
            ).all()
            sentiments = conn.execute(
                select(TURNS.c.sentiment, func.count())
                .where(*in_window)
                .group_by(TURNS.c.sentiment)
            ).all()
            frustrated = int(
                conn.execute(
                    select(func.count()).select_from(TURNS).where(*in_window, TURNS.c.frustrated)
                ).scalar_one()
            )
            escalations = conn.execute(
                select(TICKETS.c.reason, func.count())
                .where(TICKETS.c.tenant == tenant, TICKETS.c.created_at >= since)
                .group_by(TICKETS.c.reason)
            ).all()
            csat = conn.execute(
                select(FEEDBACK.c.csat, func.count())
                .where(
                    FEEDBACK.c.tenant == tenant,
                    FEEDBACK.c.created_at >= since,
                    FEEDBACK.c.csat.is_not(None),
                )
                .group_by(FEEDBACK.c.csat)
            ).all()
            thumbs = conn.execute(
                select(FEEDBACK.c.thumbs, func.count())
                .where(
                    FEEDBACK.c.tenant == tenant,
                    FEEDBACK.c.created_at >= since,
                    FEEDBACK.c.thumbs.is_not(None),
                )
                .group_by(FEEDBACK.c.thumbs)
            ).all()
            model_turns = (*in_window, TURNS.c.answered_by == str(AnsweredBy.MODEL))
            ungrounded_total = int(
                conn.execute(
                    select(func.count())
                    .select_from(TURNS)
                    .where(*model_turns, TURNS.c.grounded.is_(False))
                ).scalar_one()
            )
            ungrounded = conn.execute(
                select(TURNS.c.message, TURNS.c.intent, TURNS.c.created_at)
                .where(*model_turns, TURNS.c.grounded.is_(False))
                .order_by(TURNS.c.created_at.desc())
                .limit(KB_GAP_SCAN_LIMIT)
            ).all()
        escalated = {str(reason): int(count) for reason, count in escalations}
        csat_counts = {int(score): int(count) for score, count in csat}
        rated = sum(csat_counts.values())
        return {
            "turns": total_turns,
            "conversations": conversations,
            "top_intents": [{"intent": i, "turns": int(n)} for i, n in intents],
            "sentiment_mix": {str(label): int(n) for label, n in sentiments},
            "frustrated_turns": frustrated,
            "escalations": {
                "total": sum(escalated.values()),
                "by_reason": escalated,
                "rate": (sum(escalated.values()) / conversations) if conversations else 0.0,
                "rate_by_reason": {
                    reason: (count / conversations if conversations else 0.0)
                    for reason, count in escalated.items()
                },
            },
            "csat": {
                "responses": rated,
                "average": (
                    sum(score * n for score, n in csat_counts.items()) / rated if rated else None
                ),
                "distribution": csat_counts,
                "thumbs": {str(k): int(v) for k, v in thumbs},
            },
            "kb_gaps": {
                "ungrounded_replies": ungrounded_total,
                "questions": self._kb_gaps(ungrounded, gaps_limit),
            },
        }

    def _kb_gaps(self, ungrounded: Sequence[Any], limit: int) -> list[dict[str, Any]]:
        """The most asked ungrounded questions (newest ``KB_GAP_SCAN_LIMIT`` of them)."""
        times: dict[tuple[str, str], int] = {}
        last_asked: dict[tuple[str, str], float] = {}
        for stored, intent, created_at in ungrounded:
            key = (self._keyring.decrypt(stored, _MESSAGE), str(intent))
            times[key] = times.get(key, 0) + 1
            last_asked[key] = max(last_asked.get(key, 0.0), float(created_at))
        ranked = sorted(times, key=lambda key: (times[key], last_asked[key]), reverse=True)
        return [
            {
                "message": message,
                "intent": intent,
                "times": times[(message, intent)],
                "last_asked": last_asked[(message, intent)],
            }
            for message, intent in ranked[:limit]
        ]

    # ---------------------------------------------------------------- rows

    def _turn(self, row: Any) -> Turn:
        values = row._asdict()
        values.pop("tenant", None)
        values.pop("customer_id", None)
        values["answered_by"] = AnsweredBy(values["answered_by"])
        values["message"] = self._keyring.decrypt(values["message"], _MESSAGE)
        values["reply"] = self._keyring.decrypt(values["reply"], _REPLY)
        return Turn(**values)

    def _turn_row(self, turn: Turn) -> dict[str, Any]:
        row = dict(vars(turn))
        row["answered_by"] = str(turn.answered_by)
        row["message"] = self._keyring.encrypt(turn.message, _MESSAGE)
        row["reply"] = self._keyring.encrypt(turn.reply, _REPLY)
        return row

    def _ticket(self, row: Any) -> Ticket:
        values = row._asdict()
        values["webhook_status"] = WebhookStatus(values["webhook_status"])
        values["transcript"] = self._keyring.decrypt_json(values["transcript"], _TRANSCRIPT)
        return Ticket(**values)

    def _ticket_row(self, ticket: Ticket) -> dict[str, Any]:
        row = dict(vars(ticket))
        row["webhook_status"] = str(ticket.webhook_status)
        row["transcript"] = self._keyring.encrypt_json(ticket.transcript, _TRANSCRIPT)
        return row
