"""Work the server owes, written down before it is acknowledged: ``pending_work``.

A write that answers "accepted, indexing in the background" promises work that so far
lives only in memory; a crash between the answer and the work broke that promise (a trust
probe killed the server during a 200-document bulk: 604 acknowledged documents stayed
unsearchable until some unrelated later write). So the promise is a row first: a caller
``request``s the work before it acknowledges, whoever does the work marks it ``done`` with
the version it started from, and at start-up every row still present is work to resume.

One row per (kind, tenant): requests coalesce, as the work does (one reindex covers every
write before it). ``version`` grows with each request, so finishing work that started
before a newer request leaves that request pending. Kinds today: ``reindex``; the same
table can carry jobs and webhook deliveries when several replicas share a database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, Integer, String, Table, delete, select, update
from sqlalchemy.exc import IntegrityError

from core.db import METADATA

PENDING_WORK = Table(
    "pending_work",
    METADATA,
    Column("kind", String(32), primary_key=True),
    Column("tenant", String(64), primary_key=True),
    Column("detail", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("requested_at", Float, nullable=False),
)


@dataclass(frozen=True)
class PendingItem:
    """One piece of owed work, as the table holds it."""

    kind: str
    tenant: str
    detail: dict[str, Any]
    version: int
    requested_at: float


class PendingWork:
    """Durable requests for work, per kind and tenant. Synchronous: call from a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def request(self, kind: str, tenant: str, detail: dict[str, Any] | None = None) -> int:
        """Record that ``kind`` work is owed to ``tenant``; the request's version.

        ``detail`` replaces the row's detail when given (the caller merges: a full reindex
        asked after an incremental one stays full because the caller says so).
        """
        for _ in range(2):  # a concurrent first request may insert between our two steps
            with self._engine.begin() as conn:
                row = conn.execute(
                    select(PENDING_WORK.c.version, PENDING_WORK.c.detail).where(
                        PENDING_WORK.c.kind == kind, PENDING_WORK.c.tenant == tenant
                    )
                ).first()
                now = time.time()
                if row is not None:
                    version = int(row.version) + 1
                    values: dict[str, Any] = {"version": version, "requested_at": now}
                    if detail is not None:
                        values["detail"] = detail
                    conn.execute(
                        update(PENDING_WORK)
                        .where(PENDING_WORK.c.kind == kind, PENDING_WORK.c.tenant == tenant)
                        .values(**values)
                    )
                    return version
                try:
                    conn.execute(
                        PENDING_WORK.insert().values(
                            kind=kind,
                            tenant=tenant,
                            detail=detail or {},
                            version=1,
                            requested_at=now,
                        )
                    )
                except IntegrityError:
                    continue
                return 1
        raise RuntimeError(f"could not record pending {kind} work for {tenant}")

    def done(self, kind: str, tenant: str, version: int) -> bool:
        """The work asked for up to ``version`` is done; False when a newer request keeps
        the row (its work is still owed)."""
        with self._engine.begin() as conn:
            removed = conn.execute(
                delete(PENDING_WORK).where(
                    PENDING_WORK.c.kind == kind,
                    PENDING_WORK.c.tenant == tenant,
                    PENDING_WORK.c.version <= version,
                )
            ).rowcount
        return bool(removed)

    def owed(self, kind: str) -> list[PendingItem]:
        """Every request of ``kind`` still pending, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(PENDING_WORK)
                .where(PENDING_WORK.c.kind == kind)
                .order_by(PENDING_WORK.c.requested_at)
            ).mappings()
            return [
                PendingItem(
                    kind=row["kind"],
                    tenant=row["tenant"],
                    detail=dict(row["detail"] or {}),
                    version=int(row["version"]),
                    requested_at=float(row["requested_at"]),
                )
                for row in rows
            ]
