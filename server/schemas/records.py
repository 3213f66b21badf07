"""The customer record's event kinds and what each payload must hold.

A business imports what it knows about a customer as typed events: orders and their
shipments, returns, tickets, bookings and rentals, service jobs, payment plans and
memberships, page views and agents' notes. Each kind has a payload model here; the
fields the reply prompt relies on are checked for type (numbers are numbers, dates are
dates), ids are required, and anything else the business sends is kept as it is. A
payload is validated, never rewritten: the stored JSON is what the client sent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.store.customers import EventKind

MAX_AMOUNT = 1e12
"""No order, price or refund is larger: a bigger number is a client's bug, not money."""
MAX_QUANTITY = 1_000_000

ID = Field(min_length=1, max_length=100)
TEXT = Field(None, max_length=2_000)
SHORT = Field(None, max_length=200)


class _Payload(BaseModel):
    """Known fields are checked; unknown ones are the business's own and kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class OrderItem(_Payload):
    product_id: str | None = SHORT
    name: str | None = SHORT
    quantity: int = Field(1, ge=0, le=MAX_QUANTITY)
    price: float = Field(0.0, ge=0, le=MAX_AMOUNT)
    category: str | None = SHORT


class OrderPayload(_Payload):
    order_id: str = ID
    items: list[OrderItem] = Field(default_factory=list, max_length=500)
    total: float | None = Field(None, ge=0, le=MAX_AMOUNT)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    status: str = Field("processing", max_length=40)
    expected_on: dt.date | None = None
    delivered_on: dt.date | None = None


class ShipmentPayload(_Payload):
    order_id: str = ID
    carrier: str = Field(min_length=1, max_length=100)
    tracking_number: str = ID
    status: str = Field(min_length=1, max_length=40)
    eta: dt.date | None = None
    delivered_on: dt.date | None = None
    investigation_reference: str | None = SHORT
    investigation_status: str | None = Field(None, max_length=40)
    note: str | None = TEXT


class ReturnPayload(_Payload):
    order_id: str = ID
    product_id: str | None = SHORT
    reason: str | None = TEXT
    status: str = Field("requested", max_length=40)
    refund_amount: float | None = Field(None, ge=0, le=MAX_AMOUNT)
    refunded_on: dt.date | None = None


class TicketPayload(_Payload):
    ticket_id: str = ID
    subject: str = Field("", max_length=500)
    status: str = Field("open", pattern=r"^(open|closed)$")
    summary: str | None = TEXT


class BookingPayload(_Payload):
    """A rental or a booked appointment: what, when, where, and the deposit."""

    booking_id: str = ID
    item: str = Field(min_length=1, max_length=200)
    product_id: str | None = SHORT
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None
    place: str | None = SHORT
    deposit: float | None = Field(None, ge=0, le=MAX_AMOUNT)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    deposit_status: str | None = Field(None, max_length=40)
    deposit_released_on: dt.date | None = None
    status: str = Field(min_length=1, max_length=40)


class ServiceJobPayload(_Payload):
    """A repair or a service: its state, the promised date and any loan item."""

    job_id: str = ID
    item: str = Field(min_length=1, max_length=200)
    product_id: str | None = SHORT
    serial_number: str | None = SHORT
    status: str = Field(min_length=1, max_length=40)
    diagnosis: str | None = TEXT
    promised_on: dt.date | None = None
    loan_item: str | None = SHORT
    cost: float | None = Field(None, ge=0, le=MAX_AMOUNT)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class PaymentPlanPayload(_Payload):
    plan_id: str = ID
    provider: str = Field(min_length=1, max_length=100)
    instalment: float = Field(ge=0, le=MAX_AMOUNT)
    instalments: int = Field(ge=1, le=1000)
    paid_instalments: int | None = Field(None, ge=0, le=1000)
    order_id: str | None = SHORT
    schedule: str | None = SHORT
    next_due_on: dt.date | None = None
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    status: str = Field("active", max_length=40)


class MembershipPayload(_Payload):
    membership_id: str = ID
    plan: str = Field(min_length=1, max_length=100)
    since: dt.date
    status: str = Field(min_length=1, max_length=40)
    renews_on: dt.date | None = None
    price: float | None = Field(None, ge=0, le=MAX_AMOUNT)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    period: str | None = Field(None, max_length=20)
    benefits: str | None = TEXT


class PageViewPayload(_Payload):
    url: str | None = Field(None, max_length=2_000)
    product_id: str | None = SHORT


class NotePayload(_Payload):
    text: str = Field(min_length=1, max_length=10_000)


PAYLOADS: dict[EventKind, type[_Payload]] = {
    EventKind.ORDER: OrderPayload,
    EventKind.SHIPMENT: ShipmentPayload,
    EventKind.RETURN: ReturnPayload,
    EventKind.TICKET: TicketPayload,
    EventKind.BOOKING: BookingPayload,
    EventKind.SERVICE_JOB: ServiceJobPayload,
    EventKind.PAYMENT_PLAN: PaymentPlanPayload,
    EventKind.MEMBERSHIP: MembershipPayload,
    EventKind.PAGE_VIEW: PageViewPayload,
    EventKind.NOTE: NotePayload,
}
"""Every kind has its model: adding a kind without one fails at import."""

assert set(PAYLOADS) == set(EventKind), "every event kind needs a payload model"


def parse_payload(kind: EventKind, payload: dict[str, Any]) -> _Payload:
    """The payload as its kind's model; ValueError naming the field when it does not fit."""
    try:
        return PAYLOADS[kind].model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise ValueError(f"a {kind} event's payload.{where}: {first['msg']}") from None


def check_event_payload(kind: EventKind, payload: dict[str, Any]) -> None:
    """Raise ValueError when ``payload`` does not fit ``kind`` (see ``parse_payload``)."""
    parse_payload(kind, payload)
    if kind is EventKind.PAGE_VIEW and not (payload.get("url") or payload.get("product_id")):
        raise ValueError("a page_view event needs 'url' or 'product_id'")
