"""The work behind the conversation, ticket and analytics routes, and retention.

Conversations are written by the reply pipeline; this service reads them, hands an
escalated one back to the model, records feedback, lists tickets, counts analytics and
purges what is older than the retention period.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

from core import metrics
from retrieval.history import CustomerHistory, HistoryKind
from server.schemas.insights import AnalyticsOut, TicketOut, TicketsOut
from server.schemas.support import ConversationOut, FeedbackIn, FeedbackOut
from server.store.analytics import ConversationAnalytics
from server.store.conversations import Conversation, ConversationStore
from server.store.feedback import FeedbackStore
from server.store.tickets import Ticket, TicketStore

FEEDBACK_KINDS = ("csat", "thumbs_up", "thumbs_down", "comment")
"""Label values of ``concierge_feedback_total``."""


@dataclass
class ConversationService:
    conversations: ConversationStore
    ticket_store: TicketStore
    feedback_store: FeedbackStore
    analytics_store: ConversationAnalytics
    history: CustomerHistory

    def __post_init__(self) -> None:
        metrics.export_at_zero(metrics.FEEDBACK, "kind", FEEDBACK_KINDS)

    async def conversation(self, tenant: str, conversation_id: str) -> ConversationOut:
        found = await asyncio.to_thread(self.conversations.get, tenant, None, conversation_id)
        return _conversation_out(found)

    async def release(self, tenant: str, conversation_id: str) -> ConversationOut:
        released = await asyncio.to_thread(self.conversations.release, tenant, conversation_id)
        return _conversation_out(released)

    async def feedback(self, tenant: str, conversation_id: str, body: FeedbackIn) -> FeedbackOut:
        found = await asyncio.to_thread(self.conversations.get, tenant, None, conversation_id)
        feedback_id = await asyncio.to_thread(
            self.feedback_store.add_feedback,
            found,
            turn_id=body.turn_id,
            csat=body.csat,
            thumbs=body.thumbs,
            comment=body.comment,
        )
        if body.csat is not None:
            metrics.CSAT.observe(body.csat)
            metrics.FEEDBACK.labels(kind="csat").inc()
        if body.thumbs is not None:
            metrics.FEEDBACK.labels(kind=f"thumbs_{body.thumbs}").inc()  # in FEEDBACK_KINDS
        if body.comment.strip():
            metrics.FEEDBACK.labels(kind="comment").inc()
        return FeedbackOut(feedback_id=feedback_id, conversation_id=conversation_id)

    async def tickets(self, tenant: str, status: str | None, limit: int) -> TicketsOut:
        found = await asyncio.to_thread(self.ticket_store.tickets, tenant, status, limit)
        return TicketsOut(tenant=tenant, tickets=[_ticket_out(t) for t in found])

    async def ticket(self, tenant: str, ticket_id: str) -> TicketOut:
        return _ticket_out(await asyncio.to_thread(self.ticket_store.ticket, tenant, ticket_id))

    async def analytics(self, tenant: str, days: int) -> AnalyticsOut:
        since = time.time() - days * 86_400
        report = await asyncio.to_thread(self.analytics_store.analytics, tenant, since)
        return AnalyticsOut.model_validate({"tenant": tenant, "days": days, **report})

    def purge_expired_sync(self, retention_days: float, now: float | None = None) -> dict[str, int]:
        """Delete conversations (turns, tickets, feedback) idle for ``retention_days``, and
        the conversation summaries in the history index from before the same cutoff."""
        cutoff = (now if now is not None else time.time()) - retention_days * 86_400
        removed = self.conversations.purge_inactive_before(cutoff)
        removed["history_entries"] = self.history.purge_before(HistoryKind.CONVERSATION, cutoff)
        for table, count in removed.items():
            metrics.RETENTION_PURGED.labels(table=table).inc(count)
        return removed


def _conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut(
        conversation_id=conversation.conversation_id,
        customer_id=conversation.customer_id,
        channel=conversation.channel,
        mode=str(conversation.mode),
        turn_count=conversation.turn_count,
        ticket_id=conversation.ticket_id,
        summary=conversation.summary,
    )


def _ticket_out(ticket: Ticket) -> TicketOut:
    return TicketOut.model_validate(
        {
            "ticket_id": ticket.ticket_id,
            "conversation_id": ticket.conversation_id,
            "customer_id": ticket.customer_id,
            "reason": ticket.reason,
            "priority": ticket.priority,
            "status": ticket.status,
            "created_at": dt.datetime.fromtimestamp(ticket.created_at, dt.UTC).isoformat(),
            "webhook": {
                "status": str(ticket.webhook_status),
                "attempts": ticket.webhook_attempts,
                "error": ticket.webhook_error,
            },
            "transcript": ticket.transcript,
        }
    )
