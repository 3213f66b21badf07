"""The counts behind ``GET /admin/analytics``: intents, sentiment, escalations, CSAT, KB gaps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from core.crypto import Keyring
from server.store.conversation_tables import FEEDBACK, MESSAGE, TICKETS, TURNS
from server.store.conversations import AnsweredBy

KB_GAP_SCAN_LIMIT = 5000
"""Ungrounded questions read to find the most frequent ones: they are encrypted (each
differently), so identical questions are grouped after decryption, not by SQL."""


class ConversationAnalytics:
    """Reads over a tenant's turns, tickets and feedback in a time window."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

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
            key = (self._keyring.decrypt(stored, MESSAGE), str(intent))
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
