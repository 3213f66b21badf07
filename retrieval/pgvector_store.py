"""``PgVectorStore``: vectors as rows of ``vector_items`` in PostgreSQL with pgvector.

Every replica reads and writes the same rows, in the callers' transactions: an entry
committed through one replica is found by the next search on any other, and an erasure is
a ``DELETE`` that no process can outlive with a copy in memory.

The table holds every collection and tenant, under any model and dimension (a tenant may
have its own embedder): ``embedding`` is an unsized ``vector`` and each dimension gets its
own partial HNSW index over ``embedding::vector(<dim>)`` (created by migration 0007 for the
shipped embedders' 384 and 768, and on first use for any other).

Two ways to search, chosen by the filter and the size of what it leaves
(``bench/vector_stores.py`` measured both; docs/benchmarks.md):

* **Exact** for a narrow filter (an ``owner`` or an ``allowed`` list: one customer's
  history), for a space of at most ``EXACT_MAX_ROWS`` vectors, and for one that is a small
  share of the table (under ``SELECTIVE_SHARE`` of it and at most ``SELECTIVE_MAX_ROWS``).
  The query orders by the uncast column, which no HNSW index matches, so PostgreSQL reads
  the rows through the ``(collection, tenant, owner)`` or primary-key b-tree and sorts
  them. A graph search filtered down to 100 of a million rows would miss most of them; one
  filtered to a 37,500-row tenant of a million walks mostly other tenants' vectors (78 ms
  at recall@10 0.91, against 23 ms and 1.0 exact), while a tenant holding half the table
  is served by the graph (8 ms at 0.97 against 33 ms exact at 100k rows).
* **HNSW** for a large space: the index with pgvector's iterative scan
  (``hnsw.iterative_scan = relaxed_order``), so the tenant filter and the excluded ids are
  applied while the graph is walked and the scan goes on until enough rows pass them.
  Relaxed order returns neighbours roughly best first, so ``ef_search`` candidates are
  fetched and the exact distances of those rows pick the top ``k``: on the benchmark's
  vectors that lifts recall@10 from 0.92 to 0.97 at ``ef_search`` 200.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    text,
)

from retrieval.vector_store import Vectors, VectorSource, VectorSpace

TABLE = "vector_items"
SHIPPED_DIMENSIONS = (384, 768)
"""The dimensions of the registry's embedders: their HNSW indexes come with the schema."""

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
EF_SEARCH = 200
"""Candidates the graph walk keeps, and rows fetched to rank exactly; pgvector's default
is 40. Measured in bench/vector_stores.py."""
EXACT_MAX_ROWS = 20_000
"""A space this small is scanned exactly (no approximation, and about as fast as the graph)."""
SELECTIVE_SHARE = 0.1
SELECTIVE_MAX_ROWS = 100_000
"""A space under this share of the table, up to this many rows, is scanned exactly too."""
SIZE_TTL_S = 30.0
"""How long a space's row count, which picks the way to search, is trusted."""
INDEX_LOCK_KEY = 0x76656374  # "vect": one advisory-lock key for building an HNSW index
MAX_SCAN_TUPLES = 20_000
"""How far an iterative scan may walk before it gives up on filling ``top_k``."""

_METADATA = MetaData()
"""Not ``core.db.METADATA``: this table exists on PostgreSQL only (migration 0007)."""

VECTOR_ITEMS = Table(
    TABLE,
    _METADATA,
    Column("collection", String(16), primary_key=True),
    Column("tenant", String(64), primary_key=True),
    Column("item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner", String(128), nullable=True),
    Column("model", String(200), nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("embedding", VECTOR(), nullable=False),
)


def hnsw_index_name(dimension: int) -> str:
    return f"ix_{TABLE}_hnsw_{int(dimension)}"


def create_hnsw_index_sql(dimension: int) -> str:
    """The partial HNSW index of one dimension (inner product, as FAISS's ``IndexFlatIP``)."""
    dim = int(dimension)
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(dim)} ON {TABLE} "
        f"USING hnsw ((embedding::vector({dim})) vector_ip_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE dimension = {dim}"
    )


def vector_literal(vector: Vectors) -> str:
    """pgvector's text form, ``[0.1,0.2,...]``: what a bound ``vector`` parameter carries."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


class PgVectorStore:
    """The shared store of every replica on one PostgreSQL database."""

    kind = "pgvector"
    tables: tuple[str, ...] = (TABLE,)
    caches = False  # every search reads the shared table

    def __init__(
        self, engine: Engine, ef_search: int = EF_SEARCH, exact_max_rows: int = EXACT_MAX_ROWS
    ) -> None:
        self._engine = engine
        self._ef_search = int(ef_search)
        self._exact_max_rows = int(exact_max_rows)
        self._indexed = set(SHIPPED_DIMENSIONS)
        self._sizes: dict[VectorSpace, tuple[float, int]] = {}
        self._table_estimate = (-SIZE_TTL_S, 0.0)
        self._lock = threading.Lock()

    def register_source(self, collection: str, source: VectorSource) -> None:
        del collection, source  # the rows of vector_items are read directly

    def forget(self, collection: str, tenant: str) -> None:
        del collection, tenant  # nothing is held in memory

    def add(
        self,
        conn: Connection,
        space: VectorSpace,
        ids: Sequence[int],
        vectors: Vectors,
        owners: Sequence[str | None],
    ) -> None:
        if not ids:
            return
        self._ensure_index(space.dimension)
        rows = [
            {
                "collection": space.collection,
                "tenant": space.tenant,
                "item_id": int(item_id),
                "owner": owner,
                "model": space.model,
                "dimension": space.dimension,
                "embedding": np.asarray(vector, dtype=np.float32),
            }
            for item_id, vector, owner in zip(ids, vectors, owners, strict=True)
        ]
        conn.execute(VECTOR_ITEMS.insert(), rows)

    def remove(self, conn: Connection, collection: str, tenant: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        conn.execute(
            delete(VECTOR_ITEMS).where(
                VECTOR_ITEMS.c.collection == collection,
                VECTOR_ITEMS.c.tenant == tenant,
                VECTOR_ITEMS.c.item_id.in_([int(i) for i in ids]),
            )
        )

    def search(
        self,
        space: VectorSpace,
        query: Vectors,
        top_k: int,
        *,
        allowed: Sequence[int] | None = None,
        owner: str | None = None,
        excluded: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        if top_k <= 0 or (allowed is not None and not allowed):
            return []
        graph = owner is None and allowed is None and self._graph_pays(space)
        dim = int(space.dimension)
        # exact: the uncast column matches no HNSW index, so the filtered rows are sorted
        column = f"embedding::vector({dim})" if graph else "embedding"
        filters = [
            "collection = :collection",
            "tenant = :tenant",
            "model = :model",
            f"dimension = {dim}",  # a literal, so the planner matches the partial index
        ]
        params: dict[str, Any] = {
            "collection": space.collection,
            "tenant": space.tenant,
            "model": space.model,
            "query": vector_literal(query),
            "fetch": max(int(top_k), self._ef_search) if graph else int(top_k),
        }
        if owner is not None:
            filters.append("owner = :owner")
            params["owner"] = owner
        if allowed is not None:
            filters.append("item_id = ANY(:allowed)")
            params["allowed"] = [int(i) for i in allowed]
        if excluded:
            filters.append("NOT (item_id = ANY(:excluded))")
            params["excluded"] = [int(i) for i in excluded]
        statement = text(
            f"SELECT item_id, {column} <#> CAST(:query AS vector({dim})) AS distance "
            f"FROM {TABLE} WHERE {' AND '.join(filters)} "
            f"ORDER BY {column} <#> CAST(:query AS vector({dim})) LIMIT :fetch"
        )
        with self._engine.begin() as conn:
            if graph:
                conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
                conn.execute(text(f"SET LOCAL hnsw.ef_search = {self._ef_search}"))
                conn.execute(text(f"SET LOCAL hnsw.max_scan_tuples = {MAX_SCAN_TUPLES}"))
            rows = conn.execute(statement, params).all()
        # relaxed order: an iterative scan returns neighbours roughly best first
        hits = [(int(row.item_id), -float(row.distance)) for row in rows]  # <#> is -(a . b)
        hits.sort(key=lambda hit: -hit[1])
        return hits[:top_k]

    def count(self, space: VectorSpace) -> int:
        with self._engine.connect() as conn:
            found = conn.execute(
                select(func.count()).where(
                    VECTOR_ITEMS.c.collection == space.collection,
                    VECTOR_ITEMS.c.tenant == space.tenant,
                    VECTOR_ITEMS.c.model == space.model,
                )
            ).scalar_one()
        return int(found)

    def _graph_pays(self, space: VectorSpace) -> bool:
        """Whether the HNSW index beats an exact scan of the space (see the module doc)."""
        size = self._size(space)
        if size <= self._exact_max_rows:
            return False
        selective = size < SELECTIVE_SHARE * self._table_rows() and size <= SELECTIVE_MAX_ROWS
        return not selective

    def _table_rows(self) -> float:
        """PostgreSQL's estimate of the rows in the table (``ANALYZE`` keeps it current),
        read at most every ``SIZE_TTL_S`` seconds."""
        now = time.monotonic()
        if now - self._table_estimate[0] >= SIZE_TTL_S:
            with self._engine.connect() as conn:
                estimate = conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE relname = :table"), {"table": TABLE}
                ).scalar()
            self._table_estimate = (now, max(float(estimate or 0.0), 0.0))
        return self._table_estimate[1]

    def _size(self, space: VectorSpace) -> int:
        """The space's row count, counted at most every ``SIZE_TTL_S`` seconds."""
        now = time.monotonic()
        cached = self._sizes.get(space)
        if cached is not None and now - cached[0] < SIZE_TTL_S:
            return cached[1]
        size = self.count(space)
        self._sizes[space] = (now, size)
        return size

    def _ensure_index(self, dimension: int) -> None:
        """A dimension no shipped embedder has gets its HNSW index before its first row."""
        if dimension in self._indexed:
            return
        with self._lock:
            if dimension in self._indexed:
                return
            with self._engine.begin() as conn:
                # one replica builds it; the others wait here, then find it there
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INDEX_LOCK_KEY})
                conn.execute(text(create_hnsw_index_sql(dimension)))
            self._indexed.add(dimension)
