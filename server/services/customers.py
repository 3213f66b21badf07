"""The work behind the customer routes: attributes, the event log, profiles, erasure.

Routes stay thin; this class checks that the customer exists (404 otherwise) and keeps
the event loop free (store calls and embeddings run in worker threads). Orders, returns,
tickets and notes are also written to the customer-history index as readable text, so
a later reply can recall "your order of the Aurora espresso machine in September".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from core import metrics
from core.errors import NotFoundError
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from server.pipeline.profile import ProfileBuilder, format_day
from server.schemas.support import (
    CustomerIn,
    CustomerOut,
    ErasureReceipt,
    EventIn,
    EventsOut,
    ProfileOut,
)
from server.security.privacy import redact_text
from server.store.conversations import ConversationStore
from server.store.customers import Customer, CustomerEvent, CustomerStore, EventKind


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


@dataclass
class CustomerService:
    customers: CustomerStore
    conversations: ConversationStore
    history: CustomerHistory
    profiles: ProfileBuilder

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
        erased = [table for table, count in removed.items() if count]  # keyed by table name
        if removed["history_entries"]:  # pgvector keeps the vectors in a table of its own
            erased.extend(self.history.tables[1:])
        removed.update(self.customers.forget(tenant, customer_id, erased))
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

    async def profile(self, tenant: str, customer_id: str) -> ProfileOut:
        customer = await self.get_customer(tenant, customer_id)
        profile = await asyncio.to_thread(self.profiles.load_sync, customer)
        return ProfileOut.model_validate(profile.as_dict())


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
