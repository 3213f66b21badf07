"""Stage 2c, the customer's record as facts: every kind of event as one readable line,
and the ones that bear on this message picked within a token budget.

A customer's record can hold dozens of events (orders and their shipments, returns,
tickets, rentals, repairs, payment plans, a membership); the prompt of a small model
has room for a handful. Each event becomes a ``RecordFact``: one line with its dates
written out ("1 December 2026, 3 days ago", so the model can tell that a promised date
has passed without doing date arithmetic), its amounts with their currency, free text
with personal data masked, and the keys a message may name it by (ids, tracking numbers,
product names). ``record_ranking.select_facts`` picks the ones that bear on the message
within the budget. The newest event of an entity (an order, a shipment, a job) speaks for
it: a status update is a new event.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.security.privacy import redact_text
from server.store.customers import Customer, CustomerEvent, EventKind

HIDDEN_ATTRIBUTES = re.compile(
    r"(e-?mail|phone|mobile|street|address|postcode|zip|iban|card|password|birth|passport|"
    r"tax|ssn|social)",
    re.IGNORECASE,
)
"""Attributes that identify or reach the customer: never needed to answer, so never shown
(data minimisation; the model cannot leak what it never saw)."""

FINISHED_STATUSES = frozenset(
    {
        "delivered",
        "cancelled",
        "canceled",
        "closed",
        "completed",
        "collected",
        "returned",
        "refunded",
        "rejected",
        "lapsed",
    }
)

ID_FIELDS = (
    "order_id",
    "tracking_number",
    "investigation_reference",
    "ticket_id",
    "booking_id",
    "job_id",
    "serial_number",
    "plan_id",
    "membership_id",
)


@dataclass(frozen=True)
class RecordFact:
    """One line of the customer's record and what ranks it."""

    kind: str
    text: str
    occurred_at: float = 0.0
    active: bool = False
    keys: frozenset[str] = field(default_factory=frozenset)
    words: tuple[str, ...] = ()
    essential: bool = False


def format_date(day: dt.date) -> str:
    """``1 December 2026``: unambiguous in every locale, and what the prompt writes."""
    return f"{day.day} {day.strftime('%B')} {day.year}"


def relative_day(day: dt.date, today: dt.date) -> str:
    days = (day - today).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days == -1:
        return "yesterday"
    return f"in {days} days" if days > 0 else f"{-days} days ago"


def dated(day: dt.date, today: dt.date) -> str:
    """``1 December 2026 (3 days ago)``."""
    return f"{format_date(day)} ({relative_day(day, today)})"


def money(amount: object, currency: object = None) -> str:
    """``69.00 EUR``; the tenant's currency when the record names none."""
    return f"{float(amount):.2f} {currency or 'EUR'}"  # type: ignore[arg-type]


def status_text(status: object) -> str:
    return str(status).replace("_", " ")


def _free(text: object) -> str:
    """Free text someone wrote (a note, a ticket summary, a return reason, an attribute):
    personal data in it is masked before the prompt sees it, as in the history index.
    Ids and tracking numbers are structured fields and stay as they are."""
    return redact_text(str(text), where="profile")


def _date(value: object) -> dt.date | None:
    if isinstance(value, str) and value:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _moment(value: object, zone: dt.tzinfo) -> dt.datetime | None:
    if isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(zone)
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Facts:
    """Builds the facts of one customer's events against one ``today``."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.today = now.date()
        self.zone = now.tzinfo or dt.UTC

    def day_of(self, event: CustomerEvent) -> str:
        return format_date(dt.datetime.fromtimestamp(event.occurred_at, self.zone).date())

    def when(self, value: object) -> str | None:
        day = _date(value)
        return dated(day, self.today) if day else None

    def order(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        items = [i for i in p.get("items", []) if isinstance(i, dict)]
        names = [str(i.get("name") or i.get("product_id") or "an item") for i in items]
        listed = ", ".join(
            f"{name} x{item.get('quantity', 1)}" for name, item in zip(names, items, strict=True)
        )
        parts = [f"Order {p['order_id']} placed {self.day_of(event)}: {listed or 'no items'}"]
        total = p.get("total")
        if not _is_number(total):
            total = sum(
                float(i.get("price", 0) or 0) * int(i.get("quantity", 1) or 1) for i in items
            )
        parts.append(f"total {money(total, p.get('currency'))}")
        status = str(p.get("status", "processing"))
        parts.append(f"status {status_text(status)}")
        if expected := self.when(p.get("expected_on")):
            parts.append(f"expected {expected}")
        if delivered := self.when(p.get("delivered_on")):
            parts.append(f"delivered {delivered}")
        words = names + [str(i.get("product_id", "")) for i in items]
        return self._fact(event, "; ".join(parts), status, words)

    def shipment(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        parts = [
            f"Shipment of order {p['order_id']} with {p['carrier']}: tracking number "
            f"{p['tracking_number']}, status {status_text(p['status'])}"
        ]
        if eta := self.when(p.get("eta")):
            parts.append(f"estimated delivery {eta}")
        if delivered := self.when(p.get("delivered_on")):
            parts.append(f"delivered {delivered}")
        if reference := p.get("investigation_reference"):
            state = status_text(p.get("investigation_status") or "open")
            parts.append(f"carrier investigation {reference} ({state})")
        if note := p.get("note"):
            parts.append(_free(note))
        return self._fact(event, "; ".join(parts), str(p["status"]), [str(p["carrier"])])

    def return_(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        what = p.get("product_id") or "an item"
        parts = [f"Return of {what} from order {p['order_id']} ({self.day_of(event)})"]
        if reason := p.get("reason"):
            parts.append(f"reason: {_free(reason)}")
        status = str(p.get("status", "requested"))
        parts.append(f"status {status_text(status)}")
        if _is_number(p.get("refund_amount")):
            parts.append(f"refund {money(p['refund_amount'], p.get('currency'))}")
        if refunded := self.when(p.get("refunded_on")):
            parts.append(f"refunded {refunded}")
        return self._fact(event, "; ".join(parts), status, [str(what)])

    def ticket(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        status = str(p.get("status", "open"))
        text = f"{status.capitalize()} ticket {p['ticket_id']} ({self.day_of(event)}): "
        text += _free(p.get("subject", ""))
        if summary := p.get("summary"):
            text += f". {_free(summary)}"
        return self._fact(event, text, status, [str(p.get("subject", ""))])

    def booking(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        starts = _moment(p.get("starts_at"), self.zone)
        ends = _moment(p.get("ends_at"), self.zone)
        parts = [f"Booking {p['booking_id']}: {p['item']}"]
        if starts is not None:
            span = f"from {dated(starts.date(), self.today)} {starts:%H:%M}"
            if ends is not None:
                span += f" to {dated(ends.date(), self.today)} {ends:%H:%M}"
            parts.append(span)
        if place := p.get("place"):
            parts.append(f"at {place}")
        parts.append(f"status {status_text(p['status'])}")
        if _is_number(p.get("deposit")):
            deposit = f"deposit {money(p['deposit'], p.get('currency'))}"
            if state := p.get("deposit_status"):
                deposit += f" {status_text(state)}"
            if released := self.when(p.get("deposit_released_on")):
                deposit += f" on {released}"
            parts.append(deposit)
        status = str(p["status"])
        active = status not in FINISHED_STATUSES or p.get("deposit_status") == "held"
        return self._fact(event, "; ".join(parts), status, [str(p["item"])], active=active)

    def service_job(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        item = str(p["item"])
        if serial := p.get("serial_number"):
            item += f" (serial number {serial})"
        parts = [f"Service job {p['job_id']} for {item}: status {status_text(p['status'])}"]
        if diagnosis := p.get("diagnosis"):
            parts.append(f"diagnosis: {_free(diagnosis)}")
        if promised := _date(p.get("promised_on")):
            late = promised < self.today and str(p["status"]) not in FINISHED_STATUSES
            parts.append(
                f"promised for {dated(promised, self.today)}" + (", now overdue" if late else "")
            )
        if loan := p.get("loan_item"):
            parts.append(f"loan item: {loan}")
        if _is_number(p.get("cost")):
            parts.append(f"cost {money(p['cost'], p.get('currency'))}")
        return self._fact(event, "; ".join(parts), str(p["status"]), [str(p["item"])])

    def payment_plan(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        currency = p.get("currency")
        parts = [
            f"Payment plan {p['plan_id']} with {p['provider']}: {p['instalments']} instalments "
            f"of {money(p['instalment'], currency)}"
        ]
        if schedule := p.get("schedule"):
            parts.append(str(schedule))
        if p.get("order_id"):
            parts.append(f"for order {p['order_id']}")
        if isinstance(p.get("paid_instalments"), int):
            paid = int(p["paid_instalments"])
            left = max(0, int(p["instalments"]) - paid)
            parts.append(
                f"{paid} of {p['instalments']} paid, "
                f"{money(left * float(p['instalment']), currency)} left"
            )
        if due := self.when(p.get("next_due_on")):
            parts.append(f"next instalment due {due}")
        status = str(p.get("status", "active"))
        parts.append(f"status {status_text(status)}")
        return self._fact(event, "; ".join(parts), status, [str(p["provider"])])

    def membership(self, event: CustomerEvent) -> RecordFact:
        p = event.payload
        parts = [f"Membership {p['membership_id']}: {p['plan']}, status {status_text(p['status'])}"]
        if since := _date(p.get("since")):
            parts.append(f"member since {format_date(since)}")
        if renews := self.when(p.get("renews_on")):
            parts.append(f"renews {renews}")
        if _is_number(p.get("price")):
            per = f" per {p['period']}" if p.get("period") else ""
            parts.append(f"{money(p['price'], p.get('currency'))}{per}")
        if benefits := p.get("benefits"):
            parts.append(f"benefits: {_free(benefits)}")
        return self._fact(event, "; ".join(parts), str(p["status"]), [str(p["plan"])])

    def note(self, event: CustomerEvent) -> RecordFact:
        text = f"Agent note ({self.day_of(event)}): {_free(event.payload['text'])}"
        return self._fact(event, text, "note", [], active=False)

    def _fact(
        self,
        event: CustomerEvent,
        text: str,
        status: str,
        words: Iterable[str],
        active: bool | None = None,
    ) -> RecordFact:
        keys = {str(event.payload[name]).lower() for name in ID_FIELDS if event.payload.get(name)}
        return RecordFact(
            kind=str(event.kind),
            text=text,
            occurred_at=event.occurred_at,
            active=status not in FINISHED_STATUSES if active is None else active,
            keys=frozenset(keys),
            words=tuple(w for w in words if w),
        )


_BUILDERS: dict[EventKind, Callable[[_Facts, CustomerEvent], RecordFact]] = {
    EventKind.ORDER: _Facts.order,
    EventKind.SHIPMENT: _Facts.shipment,
    EventKind.RETURN: _Facts.return_,
    EventKind.TICKET: _Facts.ticket,
    EventKind.BOOKING: _Facts.booking,
    EventKind.SERVICE_JOB: _Facts.service_job,
    EventKind.PAYMENT_PLAN: _Facts.payment_plan,
    EventKind.MEMBERSHIP: _Facts.membership,
    EventKind.NOTE: _Facts.note,
}
"""Page views are behaviour, not record: they feed recommendations, not the prompt."""

_ENTITY_ID = {
    EventKind.ORDER: "order_id",
    EventKind.SHIPMENT: "tracking_number",
    EventKind.TICKET: "ticket_id",
    EventKind.BOOKING: "booking_id",
    EventKind.SERVICE_JOB: "job_id",
    EventKind.PAYMENT_PLAN: "plan_id",
    EventKind.MEMBERSHIP: "membership_id",
}


def attribute_line(attributes: dict[str, Any]) -> str | None:
    """The customer's own attributes worth knowing (household, preferred language...),
    without contact or identity details."""
    shown = [
        f"{key.replace('_', ' ')}: {_free(value)}"
        for key, value in attributes.items()
        if not HIDDEN_ATTRIBUTES.search(key) and value not in ("", None)
    ]
    return "Details: " + "; ".join(shown) if shown else None


def record_facts(
    customer: Customer, events: Sequence[CustomerEvent], now: dt.datetime
) -> list[RecordFact]:
    """Every fact of the record (events newest first); the header lines are essential."""
    facts = [
        RecordFact("customer", f"Name: {customer.name}", essential=True),
        RecordFact("customer", f"Loyalty tier: {customer.tier}", essential=True),
    ]
    if not customer.allows("personalization"):
        return facts
    if details := attribute_line(customer.attributes):
        facts.append(RecordFact("customer", details, active=True))
    builder = _Facts(now)
    seen: set[tuple[EventKind, str]] = set()
    for event in events:
        build = _BUILDERS.get(event.kind)
        if build is None:
            continue
        id_field = _ENTITY_ID.get(event.kind)
        if id_field is not None and event.payload.get(id_field):
            entity = (event.kind, str(event.payload[id_field]))
            if entity in seen:  # an older state of something already shown
                continue
            seen.add(entity)
        facts.append(build(builder, event))
    return facts
