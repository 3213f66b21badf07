"""The audit log: who changed what, when, under which request.

Admin actions (KB and catalog writes, reindex jobs, conversation releases, customer
erasure) are appended here after they succeed. Rows are never updated; ids of
customers are kept only as a SHA-256 prefix, so the log can answer
"was customer X erased, and when?" for someone who knows X, without holding X.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, Index, String, Table, insert, select

from core.db import METADATA, ROW_ID

AUDIT_EVENTS = Table(
    "audit_events",
    METADATA,
    Column("event_id", ROW_ID, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_tenant_time", "tenant", "at"),
)


def customer_reference(customer_id: str) -> str:
    """How the log names a customer: a digest, never the id itself."""
    return "customer:" + hashlib.sha256(customer_id.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AuditEvent:
    event_id: int
    at: float
    tenant: str
    actor: str
    action: str
    target: str
    request_id: str
    detail: dict[str, Any]


class AuditLog:
    """Append and read audit events (one table, any SQL backend)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        tenant: str,
        actor: str,
        action: str,
        target: str,
        request_id: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                insert(AUDIT_EVENTS).values(
                    at=time.time(),
                    tenant=tenant,
                    actor=actor,
                    action=action,
                    target=target[:200],
                    request_id=request_id,
                    detail=detail or {},
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def events(self, tenant: str, limit: int = 100) -> list[AuditEvent]:
        """The tenant's newest events first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(AUDIT_EVENTS)
                .where(AUDIT_EVENTS.c.tenant == tenant)
                .order_by(AUDIT_EVENTS.c.event_id.desc())
                .limit(limit)
            ).all()
        return [
            AuditEvent(
                int(r.event_id),
                r.at,
                r.tenant,
                r.actor,
                r.action,
                r.target,
                r.request_id,
                dict(r.detail),
            )
            for r in rows
        ]
