"""Customer history: orders, tickets, conversation summaries and notes, per customer.

Entries are embedded when they are added and stored with their vector in SQL (the
durable copy, committed before ``add`` returns); the vectors are searched through the
process's ``VectorStore`` (``retrieval/vector_store.py``): in memory with FAISS on SQLite,
in ``vector_items`` with pgvector on PostgreSQL, where every replica sees an entry or an
erasure as soon as it commits. A search names one customer and is restricted to that
customer's vectors inside the search, so no other customer's entry can be scored, let alone
returned; the texts of the hits are then read back from SQL and decrypted, so no process
keeps customers' history in clear in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    distinct,
    func,
    select,
)

from core import metrics
from core.crypto import Keyring, column_purpose
from core.db import METADATA
from core.errors import InvalidRequestError
from core.ids import check_tenant
from models.embedder import Embedder
from retrieval.vector_store import StoredVector, VectorSpace, VectorStore, open_vector_store

COLLECTION = "history"
MAX_CUSTOMER_ID_CHARS = 128

HISTORY_ENTRIES = Table(
    "history_entries",
    METADATA,
    Column("entry_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tenant", String(64), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID_CHARS), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("occurred_at", Float, nullable=False),
    Column("text", Text, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Column("model", String(200), nullable=False),
    Index("ix_history_tenant_customer", "tenant", "customer_id"),
)


ENCRYPTED_COLUMNS = ((HISTORY_ENTRIES.c.text, False),)
"""Columns stored encrypted, and whether each holds JSON (see ``core/crypto.py``)."""

_TEXT = column_purpose(HISTORY_ENTRIES.c.text)


class HistoryKind(StrEnum):
    ORDER = "order"
    TICKET = "ticket"
    CONVERSATION = "conversation_summary"
    NOTE = "note"


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened with a customer, as text the model can read."""

    kind: HistoryKind
    text: str
    occurred_at: float


@dataclass(frozen=True)
class HistoryHit:
    entry_id: int
    customer_id: str
    kind: HistoryKind
    text: str
    occurred_at: float
    score: float


class CustomerHistory:
    """Add, search and forget per-customer history entries."""

    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        keyring: Keyring,
        vectors: VectorStore | None = None,
    ) -> None:
        """``vectors`` defaults to the store the database calls for (``open_vector_store``)."""
        self._engine = engine
        self._embedder = embedder
        self._keyring = keyring  # entry texts are stored encrypted and decrypted per hit
        self._vectors = vectors if vectors is not None else open_vector_store(engine)
        self._vectors.register_source(COLLECTION, _stored_vectors)

    def add(
        self,
        tenant: str,
        customer_id: str,
        entries: Sequence[HistoryEntry],
        vectors: npt.NDArray[np.float32] | None = None,
    ) -> list[int]:
        """Embed and store entries (committed before returning); return their ids.

        ``vectors`` skips the embedding when the caller already has one per entry (the
        reply pipeline files a conversation under its first message's vector).
        """
        check_tenant(tenant)
        _check_customer(customer_id)
        if not entries:
            return []
        if vectors is None:
            vectors = self._embedder.embed_sync([e.text for e in entries], purpose="history")
        elif vectors.shape[0] != len(entries):
            raise ValueError(f"{len(entries)} entries but {vectors.shape[0]} vectors")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = [int(i) for i in _new_ids(len(entries))]
        rows = [
            {
                "entry_id": entry_id,
                "tenant": tenant,
                "customer_id": customer_id,
                "kind": str(entry.kind),
                "occurred_at": entry.occurred_at,
                "text": self._keyring.encrypt(entry.text, _TEXT),
                "embedding": vector.astype(np.float32).tobytes(),
                "model": self._embedder.model_name,
            }
            for entry_id, entry, vector in zip(ids, entries, vectors, strict=True)
        ]
        space = self._space(tenant, vectors.shape[1])
        with self._engine.begin() as conn:
            conn.execute(HISTORY_ENTRIES.insert(), rows)
            self._vectors.add(conn, space, ids, vectors, [customer_id] * len(ids))
        return ids

    @property
    def tables(self) -> tuple[str, ...]:
        """Every SQL table an entry is stored in (its row, and its vector's where separate)."""
        return (HISTORY_ENTRIES.name, *self._vectors.tables)

    @property
    def vector_store(self) -> str:
        return self._vectors.kind

    def search(
        self,
        tenant: str,
        customer_id: str,
        query_vector: npt.NDArray[np.float32],
        top_k: int = 5,
        kinds: Sequence[HistoryKind] | None = None,
    ) -> list[HistoryHit]:
        """The customer's entries closest to the query; never another customer's."""
        check_tenant(tenant)
        _check_customer(customer_id)
        started = time.perf_counter()
        space = self._space(tenant, query_vector.shape[-1])
        allowed = self._ids_of_kinds(tenant, customer_id, kinds) if kinds else None
        scored = self._vectors.search(
            space, query_vector, top_k, owner=customer_id, allowed=allowed
        )
        hits = self._hits(tenant, customer_id, scored)
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode="dense").observe(
            time.perf_counter() - started
        )
        if not hits:
            metrics.SEARCH_EMPTY_RESULTS.labels(collection=COLLECTION).inc()
        return hits

    def forget_customer(self, tenant: str, customer_id: str) -> int:
        """Delete every entry of the customer (rows and vectors); return how many."""
        check_tenant(tenant)
        with self._engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(HISTORY_ENTRIES.c.entry_id).where(
                        HISTORY_ENTRIES.c.tenant == tenant,
                        HISTORY_ENTRIES.c.customer_id == customer_id,
                    )
                ).scalars()
            )
            for batch in _batches(ids):
                conn.execute(delete(HISTORY_ENTRIES).where(HISTORY_ENTRIES.c.entry_id.in_(batch)))
                self._vectors.remove(conn, COLLECTION, tenant, batch)
        return len(ids)

    def purge_before(self, kind: HistoryKind, cutoff: float) -> int:
        """Delete every tenant's entries of ``kind`` that happened before ``cutoff``."""
        with self._engine.begin() as conn:
            doomed = conn.execute(
                select(HISTORY_ENTRIES.c.entry_id, HISTORY_ENTRIES.c.tenant).where(
                    HISTORY_ENTRIES.c.kind == str(kind),
                    HISTORY_ENTRIES.c.occurred_at < cutoff,
                )
            ).all()
            for tenant in sorted({row.tenant for row in doomed}):
                ids = [int(row.entry_id) for row in doomed if row.tenant == tenant]
                for batch in _batches(ids):
                    conn.execute(
                        delete(HISTORY_ENTRIES).where(HISTORY_ENTRIES.c.entry_id.in_(batch))
                    )
                    self._vectors.remove(conn, COLLECTION, tenant, batch)
        return len(doomed)

    def stats(self, tenant: str) -> dict[str, Any]:
        """Entries and customers of the tenant, counted in SQL (the same on every replica)."""
        check_tenant(tenant)
        with self._engine.connect() as conn:
            entries, customers = conn.execute(
                select(func.count(), func.count(distinct(HISTORY_ENTRIES.c.customer_id))).where(
                    HISTORY_ENTRIES.c.tenant == tenant
                )
            ).one()
        return {"entries": int(entries), "customers": int(customers)}

    def _space(self, tenant: str, dimension: int) -> VectorSpace:
        return VectorSpace(COLLECTION, tenant, self._embedder.model_name, int(dimension))

    def _ids_of_kinds(
        self, tenant: str, customer_id: str, kinds: Sequence[HistoryKind]
    ) -> list[int]:
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    select(HISTORY_ENTRIES.c.entry_id).where(
                        HISTORY_ENTRIES.c.tenant == tenant,
                        HISTORY_ENTRIES.c.customer_id == customer_id,
                        HISTORY_ENTRIES.c.kind.in_([str(k) for k in kinds]),
                    )
                ).scalars()
            )

    def _hits(
        self, tenant: str, customer_id: str, scored: Sequence[tuple[int, float]]
    ) -> list[HistoryHit]:
        """The rows of the scored ids, best first; an id without a row is dropped."""
        if not scored:
            return []
        with self._engine.connect() as conn:
            rows = {
                int(row.entry_id): row
                for row in conn.execute(
                    select(
                        HISTORY_ENTRIES.c.entry_id,
                        HISTORY_ENTRIES.c.kind,
                        HISTORY_ENTRIES.c.text,
                        HISTORY_ENTRIES.c.occurred_at,
                    ).where(
                        HISTORY_ENTRIES.c.tenant == tenant,
                        HISTORY_ENTRIES.c.customer_id == customer_id,
                        HISTORY_ENTRIES.c.entry_id.in_([entry_id for entry_id, _ in scored]),
                    )
                )
            }
        return [
            HistoryHit(
                entry_id,
                customer_id,
                HistoryKind(rows[entry_id].kind),
                self._keyring.decrypt(rows[entry_id].text, _TEXT),
                float(rows[entry_id].occurred_at),
                score,
            )
            for entry_id, score in scored
            if entry_id in rows
        ]


def _stored_vectors(conn: Connection, tenant: str, model: str) -> Iterator[StoredVector]:
    """The tenant's stored history vectors of one model (what the FAISS store loads)."""
    query = select(
        HISTORY_ENTRIES.c.entry_id, HISTORY_ENTRIES.c.customer_id, HISTORY_ENTRIES.c.embedding
    ).where(HISTORY_ENTRIES.c.tenant == tenant, HISTORY_ENTRIES.c.model == model)
    for row in conn.execute(query):
        yield int(row.entry_id), row.customer_id, bytes(row.embedding)


def _batches(ids: Sequence[int], size: int = 1000) -> Iterator[list[int]]:
    """Ids in slices small enough for one ``IN (...)`` on either backend."""
    for start in range(0, len(ids), size):
        yield [int(i) for i in ids[start : start + size]]


def _check_customer(customer_id: str) -> None:
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID_CHARS:
        raise InvalidRequestError(
            f"customer id must be 1-{MAX_CUSTOMER_ID_CHARS} characters", param="customer_id"
        )


def _new_ids(count: int) -> npt.NDArray[np.int64]:
    """Random positive 63-bit ids: unique without a round trip to the database."""
    return np.random.default_rng().integers(1, 2**63 - 1, size=count, dtype=np.int64)
