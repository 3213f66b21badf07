"""The work behind the customer, catalog, conversation and analytics routes.

Routes stay thin; this class validates ownership (tenant and customer) and keeps the
event loop free (store calls and embeddings run in worker threads). Orders, returns,
tickets and notes are also written to the customer-history index as readable text,
so a later reply can recall "your order of the Aurora espresso machine in September".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from core import metrics
from core.crypto import Keyring
from core.errors import NotFoundError
from models.embedder import Embedder
from retrieval.catalog import Product, ProductCatalog
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from server.pipeline.profile import ProfileBuilder, format_day
from server.schemas.support import (
    BulkProductIn,
    ConversationOut,
    CustomerIn,
    CustomerOut,
    ErasureReceipt,
    EventIn,
    EventsOut,
    FeedbackIn,
    FeedbackOut,
    ProductIn,
    ProductOut,
    ProductsChangedOut,
    ProductsOut,
)
from server.security.privacy import redact_text
from server.store.conversations import Conversation, ConversationStore, Ticket
from server.store.customers import Customer, CustomerEvent, CustomerStore, EventKind

ANALYTICS_DEFAULT_DAYS = 30


def history_text(event: CustomerEvent) -> tuple[HistoryKind, str] | None:
    """The sentence the history index keeps for an event, or None for page views."""
    p = event.payload
    day = format_day(event.occurred_at)
    if event.kind is EventKind.ORDER:
        items = ", ".join(
            f"{i.get('name') or i.get('product_id')} (x{i.get('quantity', 1)})"
            for i in p.get("items", [])
        )
        total = p.get("total")
        cost = f", total {float(total):.2f} EUR" if isinstance(total, int | float) else ""
        status = p.get("status", "unknown")
        return HistoryKind.ORDER, f"Order {p['order_id']} on {day}: {items}{cost}; {status}."
    if event.kind is EventKind.RETURN:
        return (
            HistoryKind.ORDER,
            f"Return on {day} of {p.get('product_id', 'an item')} from order {p['order_id']}: "
            f"{p.get('reason', 'no reason given')}; status {p.get('status', 'requested')}.",
        )
    if event.kind is EventKind.TICKET:
        return (
            HistoryKind.TICKET,
            f"Ticket {p['ticket_id']} on {day} ({p.get('status', 'open')}): "
            f"{p.get('subject', '')}. {p.get('summary', '')}".strip(),
        )
    if event.kind is EventKind.NOTE:
        return HistoryKind.NOTE, f"Agent note on {day}: {p['text']}"
    return None


FEEDBACK_KINDS = ("csat", "thumbs_up", "thumbs_down", "comment")
"""Label values of ``concierge_feedback_total``."""


@dataclass
class SupportService:
    customers: CustomerStore
    conversations: ConversationStore
    catalog: ProductCatalog
    history: CustomerHistory
    profiles: ProfileBuilder

    @classmethod
    def over(
        cls, database: Engine, embedder: Embedder, history: CustomerHistory, keyring: Keyring
    ) -> SupportService:
        """The stores, the catalog and the profile builder on one database; customer text
        is encrypted at rest with ``keyring``."""
        customers = CustomerStore(database, keyring)
        conversations = ConversationStore(database, keyring)
        catalog = ProductCatalog(database, embedder)
        metrics.export_at_zero(metrics.FEEDBACK, "kind", FEEDBACK_KINDS)
        return cls(
            customers,
            conversations,
            catalog,
            history,
            ProfileBuilder(customers, conversations, catalog),
        )

    # ------------------------------------------------------------------ customers

    async def put_customer(self, tenant: str, customer_id: str, body: CustomerIn) -> CustomerOut:
        customer, created = await asyncio.to_thread(
            self.customers.upsert,
            tenant,
            customer_id,
            name=body.name,
            tier=body.tier,
            locale=body.locale,
            consent=dict(body.consent),
            attributes=dict(body.attributes),
        )
        return _customer_out(customer, created)

    async def customer(self, tenant: str, customer_id: str) -> CustomerOut:
        return _customer_out(await self.get_customer(tenant, customer_id))

    async def get_customer(self, tenant: str, customer_id: str) -> Customer:
        customer = await asyncio.to_thread(self.customers.get, tenant, customer_id)
        if customer is None:
            raise NotFoundError(f"customer {customer_id!r} not found", param="customer_id")
        return customer

    async def erase_customer(self, tenant: str, customer_id: str) -> ErasureReceipt:
        """Forget a customer: rows, events, conversations, tickets, feedback, history vectors.

        The profile is derived from these rows on every read, so nothing else holds the
        customer. Each store deletes in its own transaction; a retry after a failure
        removes what is left. Nothing at all to remove is a 404, so a typo in the id is
        not mistaken for an erasure.
        """
        removed = await asyncio.to_thread(self._erase_sync, tenant, customer_id)
        total = sum(removed.values())
        if total == 0:
            raise NotFoundError(
                f"customer {customer_id!r} not found (nothing to erase)", param="customer_id"
            )
        metrics.CUSTOMER_ERASURES.inc()
        return ErasureReceipt(
            customer_id=customer_id,
            tenant=tenant,
            erased_at=time.time(),
            removed=removed,
            total=total,
        )

    def _erase_sync(self, tenant: str, customer_id: str) -> dict[str, int]:
        removed = self.conversations.forget_customer(tenant, customer_id)
        removed["history_entries"] = self.history.forget_customer(tenant, customer_id)
        removed.update(self.customers.forget(tenant, customer_id))
        return removed

    def purge_expired_sync(self, retention_days: float, now: float | None = None) -> dict[str, int]:
        """Delete conversations (turns, tickets, feedback) idle for ``retention_days``, and
        the conversation summaries in the history index from before the same cutoff."""
        cutoff = (now if now is not None else time.time()) - retention_days * 86_400
        removed = self.conversations.purge_inactive_before(cutoff)
        removed["history_entries"] = self.history.purge_before(HistoryKind.CONVERSATION, cutoff)
        for table, count in removed.items():
            metrics.RETENTION_PURGED.labels(table=table).inc(count)
        return removed

    async def add_events(
        self, tenant: str, customer_id: str, events: Sequence[EventIn]
    ) -> EventsOut:
        await self.get_customer(tenant, customer_id)
        stored = [CustomerEvent(e.kind, e.timestamp(), dict(e.payload)) for e in events]
        return await asyncio.to_thread(self.add_events_sync, tenant, customer_id, stored)

    def add_events_sync(
        self, tenant: str, customer_id: str, events: Sequence[CustomerEvent]
    ) -> EventsOut:
        """Store events and their history entries (also used by the CLI import)."""
        ids = self.customers.add_events(tenant, customer_id, events)
        entries = []
        for event in events:
            described = history_text(event)
            if described is not None:
                text = redact_text(described[1], where="history")
                entries.append(HistoryEntry(described[0], text, event.occurred_at))
        self.history.add(tenant, customer_id, entries)
        return EventsOut(customer_id=customer_id, event_ids=ids, history_entries=len(entries))

    async def profile(self, tenant: str, customer_id: str) -> dict[str, Any]:
        customer = await self.get_customer(tenant, customer_id)
        profile = await asyncio.to_thread(self.profiles.load_sync, customer)
        return profile.as_dict()

    # ------------------------------------------------------------------ catalog

    async def put_products(
        self, tenant: str, products: Sequence[BulkProductIn]
    ) -> ProductsChangedOut:
        count = await asyncio.to_thread(
            self.catalog.put, tenant, [product_from(p.product_id, p) for p in products]
        )
        return ProductsChangedOut(tenant=tenant, upserted=count)

    async def put_product(self, tenant: str, product_id: str, body: ProductIn) -> ProductOut:
        await asyncio.to_thread(self.catalog.put, tenant, [product_from(product_id, body)])
        return ProductOut(product_id=product_id, **body.model_dump())

    async def delete_product(self, tenant: str, product_id: str) -> None:
        if not await asyncio.to_thread(self.catalog.delete, tenant, product_id):
            raise NotFoundError(f"product {product_id!r} not found", param="product_id")

    async def list_products(self, tenant: str) -> ProductsOut:
        products = await asyncio.to_thread(self.catalog.products, tenant)
        return ProductsOut(tenant=tenant, products=[_product_out(p) for p in products])

    async def get_product(self, tenant: str, product_id: str) -> ProductOut:
        product = await asyncio.to_thread(self.catalog.get, tenant, product_id)
        if product is None:
            raise NotFoundError(f"product {product_id!r} not found", param="product_id")
        return _product_out(product)

    # ------------------------------------------------------------------ conversations

    async def conversation(self, tenant: str, conversation_id: str) -> ConversationOut:
        found = await asyncio.to_thread(self.conversations.get, tenant, None, conversation_id)
        return _conversation_out(found)

    async def release(self, tenant: str, conversation_id: str) -> ConversationOut:
        released = await asyncio.to_thread(self.conversations.release, tenant, conversation_id)
        return _conversation_out(released)

    async def feedback(self, tenant: str, conversation_id: str, body: FeedbackIn) -> FeedbackOut:
        found = await asyncio.to_thread(self.conversations.get, tenant, None, conversation_id)
        feedback_id = await asyncio.to_thread(
            self.conversations.add_feedback,
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

    async def tickets(self, tenant: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(self.conversations.tickets, tenant, status, limit)
        return [_ticket_out(t) for t in found]

    async def ticket(self, tenant: str, ticket_id: str) -> dict[str, Any]:
        return _ticket_out(await asyncio.to_thread(self.conversations.ticket, tenant, ticket_id))

    async def analytics(self, tenant: str, days: int) -> dict[str, Any]:
        since = time.time() - days * 86_400
        report = await asyncio.to_thread(self.conversations.analytics, tenant, since)
        return {"tenant": tenant, "days": days, **report}


def _customer_out(customer: Customer, created: bool = False) -> CustomerOut:
    return CustomerOut(
        customer_id=customer.customer_id,
        name=customer.name,
        tier=customer.tier,
        locale=customer.locale,
        consent=customer.consent,
        attributes=customer.attributes,
        created=created,
    )


def product_from(product_id: str, body: ProductIn) -> Product:
    return Product(
        product_id=product_id,
        name=body.name,
        category=body.category,
        description=body.description,
        price=body.price,
        currency=body.currency,
        tags=tuple(body.tags),
    )


def _product_out(product: Product) -> ProductOut:
    return ProductOut(
        product_id=product.product_id,
        name=product.name,
        category=product.category,
        description=product.description,
        price=product.price,
        currency=product.currency,
        tags=list(product.tags),
    )


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


def _ticket_out(ticket: Ticket) -> dict[str, Any]:
    return {
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
