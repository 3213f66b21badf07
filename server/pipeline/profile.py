"""Stage 2a, recall the customer: a profile derived from attributes and the event log.

The profile is computed, never stored, so it cannot drift from the events it
summarizes. ``facts_for(message, ...)`` is the short list of lines the prompt shows the
model (the record's facts that bear on the message, see ``record.py``); it respects the
customer's personalization consent (without it the model only learns the customer's
name and tier, which every support agent would see anyway).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from retrieval.catalog import ProductCatalog
from server.pipeline.record import RecordFact, record_facts
from server.pipeline.record_ranking import answering_facts, select_facts
from server.store.conversations import ConversationStore
from server.store.customers import Customer, CustomerEvent, CustomerStore, EventKind

RECENT_SENTIMENT_TURNS = 10
TREND_MARGIN = 0.15


@dataclass(frozen=True)
class OrderSummary:
    order_id: str
    occurred_at: float
    total: float
    status: str
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class CustomerProfile:
    customer: Customer
    lifetime_orders: int
    lifetime_spend: float
    favourite_categories: list[str]
    open_tickets: list[dict[str, Any]]
    last_contact: float | None
    sentiment_trend: str
    recent_sentiment: list[float]
    owned_products: list[str]
    viewed_products: list[str]
    recent_orders: list[OrderSummary] = field(default_factory=list)
    events: list[CustomerEvent] = field(default_factory=list)
    """The whole event log, newest first, that the record's facts are drawn from."""

    def facts_for(
        self,
        message: str,
        now: dt.datetime,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
    ) -> list[str]:
        """What the model may know about this customer for ``message``: the record's facts
        that bear on it, most relevant first, within ``budget_tokens``. Without consent to
        personalization, only the name and tier (which every support agent would see)."""
        facts = record_facts(self.customer, self.events, now)
        if self.customer.allows("personalization"):
            facts.append(
                RecordFact(
                    "summary",
                    f"Lifetime: {self.lifetime_orders} orders, {self.lifetime_spend:.2f} EUR spent",
                )
            )
            if self.favourite_categories:
                facts.append(
                    RecordFact(
                        "summary", "Favourite categories: " + ", ".join(self.favourite_categories)
                    )
                )
            if self.sentiment_trend in ("worsening", "negative"):
                facts.append(
                    RecordFact(
                        "summary",
                        "Recent conversations with this customer have been negative.",
                        active=True,
                    )
                )
        return select_facts(facts, message, now.timestamp(), budget_tokens, count_tokens)

    def answering_facts(self, message: str, now: dt.datetime) -> list[str]:
        """The record lines a composed answer quotes for ``message`` (``answering_facts``);
        none without consent to personalization."""
        if not self.customer.allows("personalization"):
            return []
        facts = record_facts(self.customer, self.events, now)
        return [fact.text for fact in answering_facts(facts, message, now.timestamp())]

    def as_dict(self) -> dict[str, Any]:
        c = self.customer
        return {
            "customer_id": c.customer_id,
            "name": c.name,
            "tier": c.tier,
            "locale": c.locale,
            "consent": c.consent,
            "lifetime_orders": self.lifetime_orders,
            "lifetime_spend": round(self.lifetime_spend, 2),
            "favourite_categories": self.favourite_categories,
            "open_tickets": self.open_tickets,
            "last_contact": iso(self.last_contact) if self.last_contact else None,
            "sentiment_trend": self.sentiment_trend,
            "recent_sentiment": [round(s, 3) for s in self.recent_sentiment],
            "owned_products": self.owned_products,
            "recent_orders": [
                {
                    "order_id": o.order_id,
                    "occurred_at": iso(o.occurred_at),
                    "total": o.total,
                    "status": o.status,
                    "items": o.items,
                }
                for o in self.recent_orders
            ],
        }


def format_day(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat().replace("+00:00", "Z")


def sentiment_trend(scores_newest_first: list[float]) -> str:
    """ "improving", "worsening", "steady", "negative" or "unknown" from recent turn scores."""
    if not scores_newest_first:
        return "unknown"
    if len(scores_newest_first) < 4:
        mean = sum(scores_newest_first) / len(scores_newest_first)
        return "negative" if mean < -0.3 else "steady"
    half = len(scores_newest_first) // 2
    recent = sum(scores_newest_first[:half]) / half
    older = sum(scores_newest_first[half:]) / (len(scores_newest_first) - half)
    if recent - older > TREND_MARGIN:
        return "improving"
    if older - recent > TREND_MARGIN:
        return "worsening"
    return "negative" if recent < -0.3 else "steady"


def build_profile(
    customer: Customer,
    events: list[CustomerEvent],
    sentiments: list[float],
    last_turn_at: float | None,
    catalog: ProductCatalog | None,
) -> CustomerProfile:
    """Fold the event log (newest first) into a profile."""
    orders: list[OrderSummary] = []
    categories: Counter[str] = Counter()
    owned: list[str] = []
    viewed: list[str] = []
    tickets: dict[str, dict[str, Any]] = {}
    last_contact = last_turn_at
    for event in events:
        payload = event.payload
        if event.kind is EventKind.ORDER:
            items = [item for item in payload.get("items", []) if isinstance(item, dict)]
            total = payload.get("total")
            if not isinstance(total, int | float):
                total = sum(
                    float(i.get("price", 0) or 0) * int(i.get("quantity", 1) or 1) for i in items
                )
            orders.append(
                OrderSummary(
                    str(payload.get("order_id", "?")),
                    event.occurred_at,
                    float(total),
                    str(payload.get("status", "unknown")),
                    items,
                )
            )
            for item in items:
                product_id = str(item.get("product_id", ""))
                if product_id and product_id not in owned:
                    owned.append(product_id)
                category = item.get("category")
                if not category and catalog is not None and product_id:
                    product = catalog.get(customer.tenant, product_id)
                    category = product.category if product else None
                if category:
                    categories[str(category)] += int(item.get("quantity", 1) or 1)
        elif event.kind is EventKind.TICKET:
            ticket_id = str(payload.get("ticket_id", ""))
            if ticket_id and ticket_id not in tickets:  # newest event wins
                tickets[ticket_id] = {
                    "ticket_id": ticket_id,
                    "subject": str(payload.get("subject", "")),
                    "status": str(payload.get("status", "open")),
                }
            last_contact = max(last_contact or 0.0, event.occurred_at)
        elif event.kind is EventKind.PAGE_VIEW:
            product_id = str(payload.get("product_id", ""))
            if product_id and product_id not in viewed:
                viewed.append(product_id)
        elif event.kind is EventKind.NOTE:
            last_contact = max(last_contact or 0.0, event.occurred_at)
    return CustomerProfile(
        customer=customer,
        lifetime_orders=len(orders),
        lifetime_spend=sum(o.total for o in orders),
        favourite_categories=[c for c, _ in categories.most_common(3)],
        open_tickets=[t for t in tickets.values() if t["status"] == "open"],
        last_contact=last_contact,
        sentiment_trend=sentiment_trend(sentiments),
        recent_sentiment=sentiments,
        owned_products=owned,
        viewed_products=[p for p in viewed if p not in owned],
        recent_orders=orders[:5],
        events=list(events),
    )


class ProfileBuilder:
    """Loads what a profile needs from the stores (runs in a worker thread)."""

    def __init__(
        self,
        customers: CustomerStore,
        conversations: ConversationStore,
        catalog: ProductCatalog | None,
    ) -> None:
        self._customers = customers
        self._conversations = conversations
        self._catalog = catalog

    def load_sync(self, customer: Customer) -> CustomerProfile:
        tenant, customer_id = customer.tenant, customer.customer_id
        return build_profile(
            customer,
            self._customers.events(tenant, customer_id),
            self._conversations.customer_sentiments(tenant, customer_id, RECENT_SENTIMENT_TURNS),
            self._conversations.last_turn_at(tenant, customer_id),
            self._catalog,
        )
