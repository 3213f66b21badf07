"""The tables of conversations, turns, tickets and feedback, and which columns are encrypted.

Declared together because they are written together (a turn and its ticket commit in
one transaction) and deleted together (erasure, retention); each store module reads and
writes its own part of them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from core.crypto import column_purpose
from core.db import METADATA, ROW_ID
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
    Column("help_failed", Boolean, nullable=False, server_default=false()),
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
    Column("webhook_lease_until", Float, nullable=True),
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

SUMMARY = column_purpose(CONVERSATIONS.c.summary)
MESSAGE = column_purpose(TURNS.c.message)
REPLY = column_purpose(TURNS.c.reply)
TRANSCRIPT = column_purpose(TICKETS.c.transcript)
COMMENT = column_purpose(FEEDBACK.c.comment)
