"""Customers and what happened with them: attributes plus a time-ordered event log.

The event log (orders, shipments, returns, tickets, bookings and rentals, service jobs,
payment plans, memberships, page views, notes) is the one source the
derived profile, the recommendations ("already owns") and the customer-history index
are computed from, so a correction is a new event, never an edit in three places.
Every write is committed before the call returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Index,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.crypto import Keyring, column_purpose
from core.db import METADATA, ROW_ID, release_deleted_bytes

log = logging.getLogger(__name__)

MAX_CUSTOMER_ID_CHARS = 128

CUSTOMERS = Table(
    "customers",
    METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tier", String(32), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("consent", JSON, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

CUSTOMER_EVENTS = Table(
    "customer_events",
    METADATA,
    Column("event_id", ROW_ID, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_customer_events_owner", "tenant", "customer_id", "occurred_at"),
)


ENCRYPTED_COLUMNS = ((CUSTOMERS.c.attributes, True), (CUSTOMER_EVENTS.c.payload, True))
"""Columns stored encrypted, and whether each holds JSON (see ``core/crypto.py``).
Attributes and event payloads carry what a customer or an agent wrote (notes, return
reasons, e-mail addresses); names, tiers, consent and kinds stay readable for SQL."""

_ATTRIBUTES = column_purpose(CUSTOMERS.c.attributes)
_PAYLOAD = column_purpose(CUSTOMER_EVENTS.c.payload)


class EventKind(StrEnum):
    """What happened; each kind's payload is described in ``server/schemas/records.py``."""

    ORDER = "order"
    SHIPMENT = "shipment"
    RETURN = "return"
    TICKET = "ticket"
    BOOKING = "booking"
    SERVICE_JOB = "service_job"
    PAYMENT_PLAN = "payment_plan"
    MEMBERSHIP = "membership"
    PAGE_VIEW = "page_view"
    NOTE = "note"


@dataclass(frozen=True)
class Customer:
    tenant: str
    customer_id: str
    name: str
    tier: str
    locale: str
    consent: dict[str, bool]
    attributes: dict[str, Any]
    created_at: float
    updated_at: float

    def allows(self, purpose: str) -> bool:
        """Consent for ``purpose`` ("personalization", "marketing"); absent means no."""
        return bool(self.consent.get(purpose, False))


@dataclass(frozen=True)
class CustomerEvent:
    kind: EventKind
    occurred_at: float
    payload: dict[str, Any] = field(default_factory=dict)
    event_id: int | None = None


class CustomerStore:
    """Customer rows and events of every tenant, in SQL; attributes and event payloads
    encrypted with ``keyring``."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

    def upsert(
        self,
        tenant: str,
        customer_id: str,
        *,
        name: str,
        tier: str,
        locale: str,
        consent: dict[str, bool],
        attributes: dict[str, Any],
    ) -> tuple[Customer, bool]:
        """Create or replace the customer's attributes; return it and whether it is new."""
        now = time.time()
        values = {
            "tenant": tenant,
            "customer_id": customer_id,
            "name": name,
            "tier": tier,
            "locale": locale,
            "consent": consent,
            "attributes": self._keyring.encrypt_json(attributes, _ATTRIBUTES),
            "created_at": now,
            "updated_at": now,
        }
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(CUSTOMERS).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["tenant", "customer_id"],
            set_={k: statement.excluded[k] for k in values if k != "created_at"},
        )
        with self._engine.begin() as conn:
            existed = conn.execute(
                select(func.count())
                .select_from(CUSTOMERS)
                .where(CUSTOMERS.c.tenant == tenant, CUSTOMERS.c.customer_id == customer_id)
            ).scalar_one()
            conn.execute(statement)
        customer = self.get(tenant, customer_id)
        assert customer is not None
        return customer, not existed

    def get(self, tenant: str, customer_id: str) -> Customer | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(CUSTOMERS).where(
                    CUSTOMERS.c.tenant == tenant, CUSTOMERS.c.customer_id == customer_id
                )
            ).first()
        if row is None:
            return None
        values = row._asdict()
        values["attributes"] = self._keyring.decrypt_json(values["attributes"], _ATTRIBUTES)
        return Customer(**values)

    def add_events(
        self, tenant: str, customer_id: str, events: Sequence[CustomerEvent]
    ) -> list[int]:
        """Append events (committed before returning); return their ids."""
        if not events:
            return []
        now = time.time()
        ids = []
        with self._engine.begin() as conn:
            for event in events:
                result = conn.execute(
                    CUSTOMER_EVENTS.insert().values(
                        tenant=tenant,
                        customer_id=customer_id,
                        kind=str(event.kind),
                        occurred_at=event.occurred_at,
                        payload=self._keyring.encrypt_json(event.payload, _PAYLOAD),
                        recorded_at=now,
                    )
                )
                ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
        return ids

    def events(
        self,
        tenant: str,
        customer_id: str,
        kinds: Sequence[EventKind] | None = None,
        limit: int = 1000,
    ) -> list[CustomerEvent]:
        """The customer's events, newest first."""
        query = select(CUSTOMER_EVENTS).where(
            CUSTOMER_EVENTS.c.tenant == tenant, CUSTOMER_EVENTS.c.customer_id == customer_id
        )
        if kinds:
            query = query.where(CUSTOMER_EVENTS.c.kind.in_([str(k) for k in kinds]))
        query = query.order_by(
            CUSTOMER_EVENTS.c.occurred_at.desc(), CUSTOMER_EVENTS.c.event_id.desc()
        ).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            CustomerEvent(
                EventKind(r.kind),
                r.occurred_at,
                dict(self._keyring.decrypt_json(r.payload, _PAYLOAD)),
                int(r.event_id),
            )
            for r in rows
        ]

    def forget(
        self, tenant: str, customer_id: str, erased_elsewhere: Sequence[str] = ()
    ) -> dict[str, int]:
        """Delete the customer and every event; return counts per table.

        It runs last in an erasure, so it also releases the deleted rows' bytes of every
        store (``release_deleted_bytes``): SQLite's write-ahead log is emptied, PostgreSQL's
        ``erased_elsewhere`` tables and its own are vacuumed.
        """
        with self._engine.begin() as conn:
            events = conn.execute(
                delete(CUSTOMER_EVENTS).where(
                    CUSTOMER_EVENTS.c.tenant == tenant,
                    CUSTOMER_EVENTS.c.customer_id == customer_id,
                )
            ).rowcount
            customers = conn.execute(
                delete(CUSTOMERS).where(
                    CUSTOMERS.c.tenant == tenant, CUSTOMERS.c.customer_id == customer_id
                )
            ).rowcount
        erased = [*erased_elsewhere, CUSTOMER_EVENTS.name, CUSTOMERS.name]
        if not release_deleted_bytes(self._engine, erased):
            log.warning("erasure: the write-ahead log could not be emptied yet (a reader was busy)")
        return {"customers": int(customers or 0), "customer_events": int(events or 0)}
