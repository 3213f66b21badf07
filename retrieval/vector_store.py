"""Where stored vectors are searched: one protocol, an in-memory FAISS store and pgvector.

A collection (customer history, the catalog) keeps its rows, with each row's vector as bytes,
in its own SQL table: that copy is durable on every backend. The ``VectorStore`` is the
searchable side of those vectors, and which implementation serves a process follows from
its database (``open_vector_store``):

* **SQLite, the embedded default: ``FaissVectorStore``.** One process owns the file, so a
  per-(collection, tenant, model) exact FAISS index in memory, loaded from the owning
  table at first use and edited in place by the same process's writes, is current for
  that process; a collection another process also writes (the CLI's catalog import) asks
  the store to ``forget`` what it holds when the rows changed.
* **PostgreSQL: ``PgVectorStore``** (``retrieval/pgvector_store.py``). Vectors are rows of
  ``vector_items`` written in the caller's transaction, so every replica sees a committed
  write at once and an erasure is a ``DELETE``; nothing is cached in a process.

Both rank by inner product (the cosine, for unit vectors; the KB's field vectors are
deliberately not unit length, ``knowledge/reindex.field_vectors``) inside the filters given,
never as a post-filter of a global top k: ``allowed`` (these ids only), ``owner`` (one
customer's vectors) and ``excluded`` (never these ids).

Writes take the caller's open ``Connection``, so the row and its vector commit together on
PostgreSQL. The FAISS store edits memory at once; if the caller's transaction then rolls
back, the index holds an id without a row, which every caller drops when it reads the rows
by id (reads always go back to the table).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import faiss
import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from retrieval.index import id_selector, search_parameters

Vectors = npt.NDArray[np.float32]

StoredVector = tuple[int, str | None, bytes]
"""``(item_id, owner, float32 bytes)``: one vector as its collection's table stores it."""

VectorSource = Callable[[Connection, str, str], Iterable[StoredVector]]
"""Reads a collection's stored vectors of one ``(tenant, model)`` from its own table."""


@dataclass(frozen=True)
class VectorSpace:
    """The vectors one search may compare: a collection of one tenant, under one model.

    Vectors of different models are not comparable, so a tenant whose embedder changed
    searches only what its current model wrote (the schema allows a model and dimension
    per tenant).
    """

    collection: str
    tenant: str
    model: str
    dimension: int


class VectorStore(Protocol):
    """Add, remove and search vectors by stable 64-bit ids."""

    kind: str
    """``faiss`` or ``pgvector``: reported by ``/v1/admin/stats`` and the docs."""

    tables: tuple[str, ...]
    """SQL tables the store keeps vectors in: an erasure vacuums them too."""

    caches: bool
    """Whether this process holds vectors in memory, where another process's writes to the
    owning table do not reach (see ``forget``)."""

    def forget(self, collection: str, tenant: str) -> None:
        """Drop what this process holds of a tenant's collection, so the next search reads
        the owning table again: a collection that other processes write (the catalog, which
        the CLI imports into) calls it when its rows changed."""

    def register_source(self, collection: str, source: VectorSource) -> None:
        """Where the collection's stored vectors are read from (the FAISS store's loader)."""

    def add(
        self,
        conn: Connection,
        space: VectorSpace,
        ids: Sequence[int],
        vectors: Vectors,
        owners: Sequence[str | None],
    ) -> None:
        """Store vectors under ids (in the caller's transaction where the store has one)."""

    def remove(self, conn: Connection, collection: str, tenant: str, ids: Sequence[int]) -> None:
        """Forget the ids, whatever model wrote them."""

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
        """Up to ``top_k`` ``(id, inner product)`` pairs, best first, inside the filters."""

    def count(self, space: VectorSpace) -> int:
        """How many vectors the space holds."""


@dataclass
class _Loaded:
    """One space's vectors in memory; changed only under the store's lock."""

    index: Any  # faiss.IndexIDMap2 over IndexFlatIP: exact, edited in place
    owners: dict[int, str | None] = field(default_factory=dict)
    by_owner: dict[str | None, set[int]] = field(default_factory=dict)

    def add(self, ids: Sequence[int], vectors: Vectors, owners: Sequence[str | None]) -> None:
        self.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        for item_id, owner in zip(ids, owners, strict=True):
            self.owners[int(item_id)] = owner
            self.by_owner.setdefault(owner, set()).add(int(item_id))

    def remove(self, ids: Sequence[int]) -> None:
        present = [int(i) for i in ids if int(i) in self.owners]
        if not present:
            return
        self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(present, dtype=np.int64)))
        for item_id in present:
            owned = self.by_owner.get(self.owners.pop(item_id))
            if owned is not None:
                owned.discard(item_id)


class FaissVectorStore:
    """Exact in-memory FAISS indexes, one per space, loaded from the owning table.

    Exact (flat) because what this store serves is filtered to one customer or a small
    collection: a customer filter over IVF would probe every list anyway
    (``bench/retrieval_speed.py``), and flat needs no training.
    """

    kind = "faiss"
    tables: tuple[str, ...] = ()  # the owning tables hold the vectors
    caches = True

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sources: dict[str, VectorSource] = {}
        self._spaces: dict[VectorSpace, _Loaded] = {}
        self._lock = threading.Lock()

    def register_source(self, collection: str, source: VectorSource) -> None:
        self._sources[collection] = source

    def add(
        self,
        conn: Connection,
        space: VectorSpace,
        ids: Sequence[int],
        vectors: Vectors,
        owners: Sequence[str | None],
    ) -> None:
        del conn  # the owning table's row is the durable copy of the vector
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        with self._lock:
            loaded = self._spaces.get(space)
            if loaded is not None:  # a space not loaded yet reads the rows when it loads
                loaded.add(ids, vectors, owners)

    def remove(self, conn: Connection, collection: str, tenant: str, ids: Sequence[int]) -> None:
        del conn
        with self._lock:
            for space, loaded in self._spaces.items():
                if space.collection == collection and space.tenant == tenant:
                    loaded.remove(ids)

    def forget(self, collection: str, tenant: str) -> None:
        with self._lock:
            for space in [
                s for s in self._spaces if (s.collection, s.tenant) == (collection, tenant)
            ]:
                del self._spaces[space]

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
        loaded = self._loaded(space)
        with self._lock:
            candidates = _allowed_ids(loaded, allowed, owner)
            size = int(loaded.index.ntotal) if candidates is None else len(candidates)
            if size == 0 or top_k <= 0:
                return []
            selector, _keep_alive = id_selector(
                None if candidates is None else np.asarray(sorted(candidates), dtype=np.int64),
                np.asarray(excluded, dtype=np.int64) if excluded else None,
            )
            vector = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
            scores, ids = loaded.index.search(
                vector, min(top_k, size), params=search_parameters(selector)
            )
        found = ids[0] >= 0
        return list(zip(ids[0][found].tolist(), scores[0][found].tolist(), strict=True))

    def count(self, space: VectorSpace) -> int:
        return int(self._loaded(space).index.ntotal)

    def _loaded(self, space: VectorSpace) -> _Loaded:
        with self._lock:
            loaded = self._spaces.get(space)
            if loaded is None:
                loaded = self._load(space)
                self._spaces[space] = loaded
            return loaded

    def _load(self, space: VectorSpace) -> _Loaded:
        """Read the space's stored vectors (nothing is re-embedded)."""
        source = self._sources.get(space.collection)
        if source is None:
            raise LookupError(f"no vector source registered for {space.collection!r}")
        ids: list[int] = []
        owners: list[str | None] = []
        vectors: list[Vectors] = []
        with self._engine.connect() as conn:
            for item_id, owner, stored in source(conn, space.tenant, space.model):
                ids.append(item_id)
                owners.append(owner)
                vectors.append(np.frombuffer(stored, dtype=np.float32))
        loaded = _Loaded(faiss.IndexIDMap2(faiss.IndexFlatIP(space.dimension)))
        if ids:
            loaded.add(ids, np.vstack(vectors), owners)
        return loaded


def _allowed_ids(
    loaded: _Loaded, allowed: Sequence[int] | None, owner: str | None
) -> set[int] | None:
    """The ids a search may score, or ``None`` for all of them."""
    candidates: set[int] | None = None
    if owner is not None:
        candidates = set(loaded.by_owner.get(owner, ()))
    if allowed is not None:
        wanted = {int(i) for i in allowed}
        candidates = wanted if candidates is None else candidates & wanted
    return candidates


def open_vector_store(engine: Engine) -> VectorStore:
    """pgvector on PostgreSQL (shared by every replica), FAISS in memory on SQLite."""
    if engine.dialect.name == "postgresql":
        from retrieval.pgvector_store import PgVectorStore

        return PgVectorStore(engine)
    return FaissVectorStore(engine)
