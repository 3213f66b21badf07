"""The typed events of a reply: ``ReplyMeta`` first, ``ReplyToken`` deltas, ``ReplyOut`` last.

The JSON answer is the ``ReplyOut``; a streamed answer sends the same objects as the
``meta``, ``token`` and ``final`` events, so both shapes carry the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.pipeline.escalation import EscalationDecision
from server.pipeline.prepared import PreparedReply
from server.schemas.support import ReplyMeta, ReplyOut
from server.store.conversations import AnsweredBy, Conversation, ConversationMode
from server.store.tickets import Ticket


@dataclass(frozen=True)
class ReplyToken:
    """A piece of the reply's text, as it is generated."""

    text: str


@dataclass(frozen=True)
class ReplyReplace:
    """The whole reply, instead of the tokens sent so far: the model's reply failed its
    check and was replaced by an answer composed from the evidence (docs/support.md)."""

    text: str


ReplyEvent = ReplyMeta | ReplyToken | ReplyReplace | ReplyOut
"""What ``ReplyPipeline.start`` yields: one ``ReplyMeta``, tokens, at most one
``ReplyReplace``, one ``ReplyOut``."""


def answered_by(prepared: PreparedReply) -> AnsweredBy:
    """Who wrote the reply: the model, the hand-over message, or the human-queue notice."""
    if prepared.conversation.mode is ConversationMode.HUMAN:
        return AnsweredBy.HUMAN_QUEUE
    return AnsweredBy.MODEL if prepared.prompt is not None else AnsweredBy.HANDOVER


def reply_meta(prepared: PreparedReply) -> ReplyMeta:
    """What is known before the first token: analysis, citations, recommendations."""
    return ReplyMeta.model_validate(_meta_fields(prepared, prepared.conversation, None))


def reply_out(
    prepared: PreparedReply,
    conversation: Conversation,
    ticket: Ticket | None,
    reply: str,
    usage: dict[str, int],
    grounding: dict[str, object],
) -> ReplyOut:
    """The whole answer, once the turn is stored (``conversation`` is its new state)."""
    prompt = None  # present in every answer, filled only when asked for
    if prepared.request.include_prompt:
        messages = prepared.prompt.messages if prepared.prompt else []
        prompt = [{"role": m.role, "content": m.content} for m in messages]
    return ReplyOut.model_validate(
        {
            **_meta_fields(prepared, conversation, ticket),
            "reply": reply,
            "answered_by": str(answered_by(prepared)),
            "grounding": grounding,
            "usage": {**usage, "total_tokens": sum(usage.values())},
            "timings_ms": dict(prepared.timings),
            "prompt": prompt,
        }
    )


def _meta_fields(
    prepared: PreparedReply, conversation: Conversation, ticket: Ticket | None
) -> dict[str, Any]:
    citations = prepared.prompt.citations if prepared.prompt else []
    return {
        "conversation_id": conversation.conversation_id,
        "turn_id": prepared.turn_id,
        "mode": str(conversation.mode),
        **prepared.analysis.as_dict(),
        "citations": [c.as_dict() for c in citations],
        "recommendations": [r.as_dict() for r in prepared.recommendations],
        "escalation": _escalation(
            prepared.decision, ticket.ticket_id if ticket else prepared.ticket_id
        ),
        "grounded": bool(prepared.retrieved and prepared.retrieved.grounded),
    }


def _escalation(decision: EscalationDecision, ticket_id: str | None) -> dict[str, Any]:
    return {
        "escalate": decision.escalate,
        "reason": str(decision.reason) if decision.reason else None,
        "reasons": [str(reason) for reason in decision.fired],
        "priority": decision.priority,
        "ticket_id": ticket_id if decision.escalate else None,
    }
