"""Customer history: orders, tickets, conversation summaries and notes, per customer.

Entries are embedded when they are added and stored with their vector in SQL (the
durable copy, committed before ``add`` returns). Each tenant's entries are also held
in an in-memory FAISS ``IndexIDMap2``, rebuilt from SQL at first use without
re-embedding. A search names one customer and is restricted to that customer's ids by
a FAISS id selector evaluated inside the scan, so no other customer's entry can be
scored, let alone returned; tenants have separate indexes altogether.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    select,
)

from core import metrics
from core.crypto import Keyring, column_purpose
from core.db import METADATA
from core.errors import InvalidRequestError
from core.ids import check_tenant
from models.embedder import Embedder
from retrieval.index import id_selector, search_parameters

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


@dataclass
class _TenantHistory:
    """One tenant's entries in memory. Mutated in place, always under the history lock."""

    index: Any  # faiss.IndexIDMap2 over IndexFlatIP: exact, edited in place
    customers: dict[str, list[int]]
    rows: dict[int, tuple[str, HistoryKind, str, float]]


class CustomerHistory:
    """Add, search and forget per-customer history entries."""

    def __init__(self, engine: Engine, embedder: Embedder, keyring: Keyring) -> None:
        self._engine = engine
        self._embedder = embedder
        self._keyring = keyring  # entry texts are stored encrypted, held in memory in clear
        self._tenants: dict[str, _TenantHistory] = {}
        self._lock = threading.Lock()

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
        ids = _new_ids(len(entries))
        rows = [
            {
                "entry_id": int(entry_id),
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
        with self._lock:
            with self._engine.begin() as conn:
                conn.execute(HISTORY_ENTRIES.insert(), rows)
            state = self._tenants.get(tenant)
            if state is not None:
                state.index.add_with_ids(vectors, ids)
                state.customers.setdefault(customer_id, []).extend(int(i) for i in ids)
                for entry_id, entry in zip(ids, entries, strict=True):
                    state.rows[int(entry_id)] = (
                        customer_id,
                        entry.kind,
                        entry.text,
                        entry.occurred_at,
                    )
        return [int(i) for i in ids]

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
        state = self._state(tenant)
        allowed = state.customers.get(customer_id, [])
        if kinds:
            wanted = set(kinds)
            allowed = [i for i in allowed if state.rows[i][1] in wanted]
        hits: list[HistoryHit] = []
        if allowed:
            selector, _keep_alive = id_selector(np.array(allowed, dtype=np.int64), None)
            query = np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32)
            with self._lock:
                scores, ids = state.index.search(
                    query, min(top_k, len(allowed)), params=search_parameters(selector)
                )
            found = ids[0] >= 0
            for entry_id, score in zip(
                ids[0][found].tolist(), scores[0][found].tolist(), strict=True
            ):
                owner, kind, text, occurred_at = state.rows[entry_id]
                hits.append(HistoryHit(entry_id, owner, kind, text, occurred_at, score))
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode="dense").observe(
            time.perf_counter() - started
        )
        if not hits:
            metrics.SEARCH_EMPTY_RESULTS.labels(collection=COLLECTION).inc()
        return hits

    def forget_customer(self, tenant: str, customer_id: str) -> int:
        """Delete every entry of the customer (SQL and index); return how many."""
        check_tenant(tenant)
        with self._lock:
            with self._engine.begin() as conn:
                removed = conn.execute(
                    delete(HISTORY_ENTRIES).where(
                        HISTORY_ENTRIES.c.tenant == tenant,
                        HISTORY_ENTRIES.c.customer_id == customer_id,
                    )
                ).rowcount
            state = self._tenants.get(tenant)
            if state is not None:
                owned = state.customers.pop(customer_id, [])
                _drop(state, [(entry_id, customer_id) for entry_id in owned])
        return int(removed or 0)

    def purge_before(self, kind: HistoryKind, cutoff: float) -> int:
        """Delete every tenant's entries of ``kind`` that happened before ``cutoff``."""
        with self._lock:
            with self._engine.begin() as conn:
                doomed = conn.execute(
                    select(
                        HISTORY_ENTRIES.c.entry_id,
                        HISTORY_ENTRIES.c.tenant,
                        HISTORY_ENTRIES.c.customer_id,
                    ).where(
                        HISTORY_ENTRIES.c.kind == str(kind),
                        HISTORY_ENTRIES.c.occurred_at < cutoff,
                    )
                ).all()
                if doomed:
                    conn.execute(
                        delete(HISTORY_ENTRIES).where(
                            HISTORY_ENTRIES.c.entry_id.in_([row.entry_id for row in doomed])
                        )
                    )
            for tenant in {row.tenant for row in doomed}:
                state = self._tenants.get(tenant)
                if state is not None:  # a tenant not loaded yet loads without the rows
                    entries = [(r.entry_id, r.customer_id) for r in doomed if r.tenant == tenant]
                    _drop(state, entries)
        return len(doomed)

    def _state(self, tenant: str) -> _TenantHistory:
        state = self._tenants.get(tenant)
        if state is None:
            with self._lock:
                state = self._tenants.get(tenant) or self._load(tenant)
                self._tenants[tenant] = state
        return state

    def _load(self, tenant: str) -> _TenantHistory:
        """Rebuild the tenant's index from SQL (vectors are stored; nothing is re-embedded)."""
        self._embedder.warm_up()
        ids: list[int] = []
        vectors: list[npt.NDArray[np.float32]] = []
        customers: dict[str, list[int]] = {}
        rows: dict[int, tuple[str, HistoryKind, str, float]] = {}
        query = select(HISTORY_ENTRIES).where(
            HISTORY_ENTRIES.c.tenant == tenant,
            HISTORY_ENTRIES.c.model == self._embedder.model_name,
        )
        with self._engine.connect() as conn:
            for row in conn.execute(query).mappings():
                entry_id = int(row["entry_id"])
                ids.append(entry_id)
                vectors.append(np.frombuffer(row["embedding"], dtype=np.float32))
                customers.setdefault(row["customer_id"], []).append(entry_id)
                rows[entry_id] = (
                    row["customer_id"],
                    HistoryKind(row["kind"]),
                    self._keyring.decrypt(row["text"], _TEXT),
                    float(row["occurred_at"]),
                )
        matrix = (
            np.vstack(vectors)
            if vectors
            else np.zeros((0, self._embedder.dimension), dtype=np.float32)
        )
        # always exact: a customer filter on IVF would have to probe every list anyway
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self._embedder.dimension))
        if ids:
            index.add_with_ids(matrix, np.array(ids, dtype=np.int64))
        return _TenantHistory(index, customers, rows)

    def stats(self, tenant: str) -> dict[str, Any]:
        state = self._state(tenant)
        return {"entries": int(state.index.ntotal), "customers": len(state.customers)}


def _drop(state: _TenantHistory, entries: Sequence[tuple[int, str]]) -> None:
    """Remove ``(entry_id, customer_id)`` entries from a loaded tenant's memory and index."""
    if not entries:
        return
    ids = np.array([entry_id for entry_id, _ in entries], dtype=np.int64)
    state.index.remove_ids(faiss.IDSelectorBatch(ids))
    for entry_id, customer_id in entries:
        state.rows.pop(entry_id, None)
        owned = state.customers.get(customer_id)
        if owned is not None and entry_id in owned:
            owned.remove(entry_id)


def _check_customer(customer_id: str) -> None:
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID_CHARS:
        raise InvalidRequestError(
            f"customer id must be 1-{MAX_CUSTOMER_ID_CHARS} characters", param="customer_id"
        )


def _new_ids(count: int) -> npt.NDArray[np.int64]:
    """Random positive 63-bit ids: unique without a round trip to the database."""
    return np.random.default_rng().integers(1, 2**63 - 1, size=count, dtype=np.int64)
