"""Request and response models of the support surface: replies, customers, catalog,
conversations, tickets, feedback and analytics."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.ids import CUSTOMER_ID_PATTERN
from server.schemas.records import MAX_AMOUNT, check_event_payload
from server.store.customers import EventKind

PRODUCT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,99}$"
MAX_EVENTS = 1_000
MAX_PRODUCTS = 10_000
MAX_PAYLOAD_KEYS = 100
CONSENT_PURPOSES = frozenset({"personalization", "marketing"})


class _Strict(BaseModel):
    """What clients send: unknown fields refused, and no NaN or Infinity (JSON allows neither;
    Python's parser reads them, and they would be stored as null)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------------- replies


class ReplyIn(_Strict):
    """``POST /v1/support/reply``: one customer message."""

    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    conversation_id: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    message: str = Field(min_length=1)
    channel: Literal["chat", "email", "web", "app", "voice", "sms", "api"] = "chat"
    locale: str | None = Field(
        None, max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
    )
    stream: bool = False
    include_prompt: bool = Field(
        False, description="return the composed prompt (for debugging and audits)"
    )
    as_of: dt.datetime | None = Field(
        None,
        description="what 'today' is for this reply (ISO 8601; tests and replays of past "
        "conversations); default: the server's setting, else the clock",
    )
    seed: int | None = Field(
        None,
        strict=True,
        ge=0,
        le=2**63 - 1,
        description="sampling seed for benchmarks and replays: the same prompt and seed repeat "
        "the reply when the engine computes the same logits (vLLM does not promise that across "
        "batch neighbours and prefix-cache hits)",
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message is blank")
        return value


class CitationOut(BaseModel):
    number: int
    document_id: str
    title: str
    chunk_id: str
    score: float


class SentimentOut(BaseModel):
    label: str
    score: float
    frustrated: bool


class IntentOut(BaseModel):
    label: str = Field(description="an intent, or 'unknown' below the tenant's min_confidence")
    confidence: float
    source: Literal["tenant", "general", "none"] = Field(
        "general", description="the tenant's own intent head, the general one, or neither"
    )


class LanguageOut(BaseModel):
    code: str
    confidence: float


class RecommendationOut(BaseModel):
    product_id: str
    name: str
    reason: str
    score: float


class EscalationOut(BaseModel):
    escalate: bool
    reason: str | None = Field(description="the first reason in the tenant's order")
    reasons: list[str] = Field(
        default_factory=list, description="every reason that fired, in the tenant's order"
    )
    priority: str | None
    ticket_id: str | None


class GroundingOut(BaseModel):
    """What the check of the reply against its evidence found (docs/support.md)."""

    checked: bool = Field(description="false when no model reply was checked")
    passed: bool
    problems: list[str] = Field(
        description="unsupported, repetition, prompt_echo, wrong_language, off_evidence, empty"
    )
    unsupported: list[str] = Field(
        description="figures, dates, times and ids the model's reply stated that no evidence holds"
    )
    support: float | None = Field(
        description="share of an English reply's content words found in its evidence"
    )
    fallback: bool = Field(
        description="the model's reply was replaced by an answer composed from the evidence"
    )
    composed: str | None = Field(
        None,
        description="with reply_check=mark, the answer composed from the evidence that the "
        "fallback would have sent instead of a failed reply",
    )


class ReplyMeta(BaseModel):
    """What is decided before the first token; the ``meta`` SSE event."""

    conversation_id: str
    turn_id: str
    mode: Literal["assistant", "human"]
    language: LanguageOut
    sentiment: SentimentOut
    intent: IntentOut
    grounded: bool
    citations: list[CitationOut]
    recommendations: list[RecommendationOut]
    escalation: EscalationOut


class ReplyOut(ReplyMeta):
    """The reply and everything that shaped it; also the ``final`` SSE event."""

    reply: str
    answered_by: Literal["model", "handover", "human_queue"]
    grounding: GroundingOut
    usage: dict[str, int]
    timings_ms: dict[str, float]
    prompt: list[dict[str, str]] | None = None


class OrderOut(BaseModel):
    order_id: str
    occurred_at: str
    total: float
    status: str
    items: list[dict[str, Any]]


class ProfileOut(BaseModel):
    """The derived profile: orders and spend, favourite categories, open tickets, mood."""

    customer_id: str
    name: str
    tier: str
    locale: str
    consent: dict[str, bool]
    lifetime_orders: int
    lifetime_spend: float
    favourite_categories: list[str]
    open_tickets: list[dict[str, Any]]
    last_contact: str | None
    sentiment_trend: str
    recent_sentiment: list[float]
    owned_products: list[str]
    recent_orders: list[OrderOut]


class FeedbackIn(_Strict):
    turn_id: str | None = Field(None, max_length=40)
    csat: int | None = Field(None, ge=1, le=5)
    thumbs: Literal["up", "down"] | None = None
    comment: str = Field("", max_length=4000)

    @model_validator(mode="after")
    def _something(self) -> FeedbackIn:
        if self.csat is None and self.thumbs is None and not self.comment.strip():
            raise ValueError("give at least one of csat, thumbs or comment")
        return self


class FeedbackOut(BaseModel):
    feedback_id: int
    conversation_id: str


class ConversationOut(BaseModel):
    conversation_id: str
    customer_id: str
    channel: str
    mode: str
    turn_count: int
    ticket_id: str | None
    summary: str


# ---------------------------------------------------------------------- customers


class CustomerIn(_Strict):
    """``PUT /v1/customers/{id}``: the attributes a business keeps about a customer."""

    name: str = Field(min_length=1, max_length=200)
    tier: str = Field("standard", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    locale: str = Field("en", max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
    consent: dict[str, bool] = Field(
        default_factory=lambda: {"personalization": True, "marketing": False},
        description="purposes the customer agreed to: personalization, marketing",
    )

    @field_validator("consent")
    @classmethod
    def _known_purposes(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = set(value) - CONSENT_PURPOSES
        if unknown:
            raise ValueError(
                f"unknown consent purpose(s) {sorted(unknown)}; known: {sorted(CONSENT_PURPOSES)}"
            )
        return value

    attributes: dict[str, str | int | float | bool] = Field(
        default_factory=dict, max_length=MAX_PAYLOAD_KEYS
    )


class CustomerOut(BaseModel):
    customer_id: str
    name: str
    tier: str
    locale: str
    consent: dict[str, bool]
    attributes: dict[str, Any]
    created: bool = False


class EventIn(_Strict):
    kind: EventKind
    occurred_at: dt.datetime | None = Field(None, description="ISO 8601; now when absent")
    payload: dict[str, Any] = Field(default_factory=dict, max_length=MAX_PAYLOAD_KEYS)

    @model_validator(mode="after")
    def _payload_fits_kind(self) -> EventIn:
        check_event_payload(self.kind, self.payload)
        return self

    def timestamp(self) -> float:
        if self.occurred_at is None:
            return dt.datetime.now(dt.UTC).timestamp()
        moment = self.occurred_at
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()


class EventsIn(_Strict):
    """``POST /v1/customers/{id}/events``: one event, or several at once."""

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsOut(BaseModel):
    customer_id: str
    event_ids: list[int]
    history_entries: int


class ErasureReceipt(BaseModel):
    """What ``DELETE /v1/customers/{id}`` removed, table by table (rows or vectors)."""

    customer_id: str
    tenant: str
    erased_at: float
    removed: dict[str, int] = Field(
        description="customers, customer_events, conversations, turns, tickets, feedback, "
        "history_entries (rows and their vectors)"
    )
    total: int


# ---------------------------------------------------------------------- catalog


class ProductIn(_Strict):
    name: str = Field(min_length=1, max_length=300)
    category: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=5_000)
    price: float | None = Field(None, ge=0, le=MAX_AMOUNT)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    tags: list[str] = Field(default_factory=list, max_length=50)


class BulkProductIn(ProductIn):
    product_id: str = Field(pattern=PRODUCT_ID_PATTERN)


class BulkProductsIn(_Strict):
    products: list[BulkProductIn] = Field(min_length=1, max_length=MAX_PRODUCTS)

    @field_validator("products")
    @classmethod
    def _one_entry_per_id(cls, value: list[BulkProductIn]) -> list[BulkProductIn]:
        # Two entries for one id would both be inserted; refusing is clearer than
        # silently keeping one of them.
        seen: set[str] = set()
        for product in value:
            if product.product_id in seen:
                raise ValueError(f"product_id {product.product_id!r} appears more than once")
            seen.add(product.product_id)
        return value


class ProductOut(ProductIn):
    product_id: str


class ProductsOut(BaseModel):
    tenant: str
    products: list[ProductOut]


class ProductsChangedOut(BaseModel):
    tenant: str
    upserted: int
