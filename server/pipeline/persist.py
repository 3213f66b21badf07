"""After the tokens: the turn committed in one transaction, then tickets, counters, history.

The turn, the conversation's new state and an escalation ticket are written together
(``ConversationStore.record_turn``), before the ``final`` event: a client that saw it
knows its turn is stored. What may fail without losing the turn (the ticket webhook, the
history entry) happens after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from core import metrics
from core.ids import new_id
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from server.pipeline.escalation import fails_an_answer
from server.pipeline.memory import ConversationMemory
from server.pipeline.prepared import PreparedReply
from server.pipeline.webhook import TicketNotifier
from server.store.conversations import (
    AnsweredBy,
    Conversation,
    ConversationMode,
    ConversationStore,
    Turn,
)
from server.store.tickets import NewTicket, Ticket, WebhookStatus

log = logging.getLogger(__name__)


class ReplyRecorder:
    """Stores a finished reply and does what follows it; one per pipeline."""

    def __init__(
        self,
        conversations: ConversationStore,
        memory: ConversationMemory,
        history: CustomerHistory,
        notifier: TicketNotifier,
    ) -> None:
        self._conversations = conversations
        self._memory = memory
        self._history = history
        self._notifier = notifier
        self._background: set[asyncio.Future[Any]] = set()

    def record_sync(
        self,
        prepared: PreparedReply,
        reply: str,
        answered_by: AnsweredBy,
        usage: dict[str, int],
    ) -> tuple[Conversation, Ticket | None]:
        analysis, decision = prepared.analysis, prepared.decision
        retrieved = prepared.retrieved
        citations = [c.as_dict() for c in prepared.prompt.citations] if prepared.prompt else []
        human_mode = prepared.conversation.mode is ConversationMode.HUMAN
        turn = Turn(
            turn_id=prepared.turn_id,
            conversation_id=prepared.conversation.conversation_id,
            seq=prepared.seq,
            created_at=time.time(),
            message=prepared.request.message,
            reply=reply,
            answered_by=answered_by,
            language=analysis.language.code,
            sentiment=analysis.sentiment.label,
            sentiment_score=analysis.sentiment.score,
            frustrated=analysis.sentiment.frustrated,
            intent=analysis.intent.label,
            intent_confidence=analysis.intent.confidence,
            grounded=bool(retrieved and retrieved.grounded) or human_mode,
            citations=citations,
            recommendations=[r.as_dict() for r in prepared.recommendations],
            escalation_reason=str(decision.reason) if decision.reason else None,
            prompt_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            timings=dict(prepared.timings),
            help_failed=fails_an_answer(
                prepared.request.message, prepared.seq, analysis.says_it_did_not_help
            ),
        )
        summary, summarized = self._memory.next_summary(
            prepared.conversation, prepared.memory, prepared.seq
        )
        ticket = None
        transcript: list[dict[str, Any]] = []
        if decision.escalate:
            webhook = prepared.config.webhook
            ticket = NewTicket(
                reason=str(decision.reason),
                priority=decision.priority or prepared.config.escalation.priority_default,
                webhook_status=(
                    WebhookStatus.PENDING if webhook.url else WebhookStatus.NOT_CONFIGURED
                ),
                ticket_id=prepared.ticket_id or new_id("tkt"),
            )
            transcript = transcript_of(prepared, reply)
        return self._conversations.record_turn(
            prepared.conversation,
            turn,
            negative_streak=prepared.signals.negative,
            ungrounded_streak=prepared.signals.ungrounded,
            summary=summary,
            summarized_turns=summarized,
            ticket=ticket,
            transcript=transcript,
        )

    def after_commit(self, prepared: PreparedReply, ticket: Ticket | None, reply: str) -> None:
        """Counters, the ticket webhook and the history entry: after the turn is safe."""
        if prepared.conversation.mode is ConversationMode.HUMAN:
            metrics.REPLIES.labels(outcome="human_queue").inc()
            return
        if prepared.prompt is None:
            metrics.REPLIES.labels(outcome="handed_over").inc()
        else:
            metrics.REPLIES.labels(outcome="answered").inc()
            if prepared.retrieved is not None and not prepared.retrieved.grounded:
                metrics.UNGROUNDED_REPLIES.inc()
        metrics.RECOMMENDATIONS.inc(len(prepared.recommendations))
        if ticket is not None:
            metrics.ESCALATIONS.labels(reason=ticket.reason).inc()
            metrics.TICKETS.labels(priority=ticket.priority).inc()
            self._notifier.notify(ticket, prepared.config.webhook)
        if prepared.seq == 1 and prepared.profile is not None:
            self._spawn(asyncio.to_thread(self._remember_conversation, prepared, reply))

    def _remember_conversation(self, prepared: PreparedReply, reply: str) -> None:
        """A history entry for the new conversation, so later ones can recall it.

        Filed under the first message's vector (already computed): a later message about
        the same thing finds it, and no second embedding competes with the engine for
        the CPU while the next reply is being generated.
        """
        request = prepared.request
        text = (
            f"Conversation about {prepared.analysis.intent.label.replace('_', ' ')}: "
            f'customer wrote "{request.message[:300]}"; we replied "{reply[:300]}"'
        )
        try:
            self._history.add(
                request.tenant,
                request.customer_id,
                [HistoryEntry(HistoryKind.CONVERSATION, text, time.time())],
                prepared.analysis.vector.reshape(1, -1),
            )
        except Exception:
            log.exception("could not add the conversation to the customer's history")

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Let the last history entries finish (bounded), and stop the webhook sender."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        await self._notifier.close()


def transcript_of(prepared: PreparedReply, reply: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    if prepared.memory.summary:
        lines.append({"role": "summary", "text": prepared.memory.summary})
    for turn in prepared.memory.recent:
        lines.append({"role": "customer", "text": turn.message, "at": turn.created_at})
        lines.append({"role": "assistant", "text": turn.reply, "at": turn.created_at})
    now = time.time()
    lines.append({"role": "customer", "text": prepared.request.message, "at": now})
    lines.append({"role": "assistant", "text": reply, "at": now})
    return lines
