"""Response models of what admins and ops read: tickets, analytics and the audit log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class WebhookDeliveryOut(BaseModel):
    status: str
    attempts: int
    error: str | None


class TicketOut(BaseModel):
    """An escalation ticket with its transcript and the webhook's delivery state."""

    ticket_id: str
    conversation_id: str
    customer_id: str
    reason: str
    priority: str
    status: Literal["open", "closed"]
    created_at: str
    webhook: WebhookDeliveryOut
    transcript: list[dict[str, Any]]


class TicketsOut(BaseModel):
    tenant: str
    tickets: list[TicketOut]


class IntentCountOut(BaseModel):
    intent: str
    turns: int


class EscalationsOut(BaseModel):
    total: int
    by_reason: dict[str, int]
    rate: float
    rate_by_reason: dict[str, float]


class CsatOut(BaseModel):
    responses: int
    average: float | None
    distribution: dict[int, int]
    thumbs: dict[str, int]


class KbGapOut(BaseModel):
    message: str
    intent: str
    times: int
    last_asked: float


class KbGapsOut(BaseModel):
    ungrounded_replies: int
    questions: list[KbGapOut]


class AnalyticsOut(BaseModel):
    """``GET /admin/analytics``: what customers ask, how they feel, where the KB falls short."""

    tenant: str
    days: int
    turns: int
    conversations: int
    top_intents: list[IntentCountOut]
    sentiment_mix: dict[str, int]
    frustrated_turns: int
    escalations: EscalationsOut
    csat: CsatOut
    kb_gaps: KbGapsOut


class AuditEventOut(BaseModel):
    event_id: int
    at: float
    tenant: str
    actor: str
    action: str
    target: str
    request_id: str
    detail: dict[str, Any]


class AuditEventsOut(BaseModel):
    events: list[AuditEventOut]
