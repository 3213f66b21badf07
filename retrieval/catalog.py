"""The product catalog of each tenant, embedded for recommendations.

Rows live in SQL with their vector as bytes (a restart does not re-embed), and the
vectors are searched through the process's ``VectorStore`` (``retrieval/vector_store.py``)
like customer history: pgvector on PostgreSQL, where every replica reads the same rows at
once, and exact in-memory FAISS on SQLite. The in-memory copy is the one thing another
process can make stale (``concierge catalog import`` while a server runs), so before a
search a process whose store caches compares the tenant's change stamp (products and
newest ``updated_at``, one indexed query) with the last one it saw and has the store read
the table again when it moved.

A recommendation ranks by a blend: the question's cosine and the closest of the
customer's own products. No vector index ranks by that sum, so a search takes candidates
from the store (the products nearest the question, and those nearest each product the
customer owns or viewed) and scores them exactly. With at most ``QUERY_CANDIDATES``
products (most catalogs) every product is a candidate and the ranking is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    JSON,
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
    func,
    select,
)

from core import metrics
from core.db import METADATA, change_stamp
from core.ids import check_tenant, stable_id
from models.embedder import Embedder
from retrieval.vector_store import StoredVector, VectorSpace, VectorStore, open_vector_store

COLLECTION = "catalog"
QUERY_CANDIDATES = 64
"""Products nearest the question that a search scores exactly (at least ``top_k``)."""
RELATED_CANDIDATES = 16
"""Products nearest each owned or viewed product that a search scores exactly as well."""
MAX_RELATED = 32
"""Owned or viewed products a search looks around (the customer's first ones)."""

PRODUCTS = Table(
    "products",
    METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("product_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("category", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("price", Float, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Column("model", String(200), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("item_id", BigInteger, nullable=False),
    Index("ix_products_item", "tenant", "item_id", unique=True),
)


def product_item_id(product_id: str) -> int:
    """The product's id in the vector store: the first 63 bits of the product id's BLAKE2b
    digest, so a put that replaces a product replaces its vector under the same number
    (migration 0009 wrote the same numbers; two ids of one tenant colliding is a 1 in 10^10
    chance for 50k products, and the unique index refuses it rather than mixing them up)."""
    return stable_id(product_id)


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    description: str = ""
    price: float | None = None
    currency: str = "EUR"
    tags: tuple[str, ...] = field(default_factory=tuple)

    def embedding_text(self) -> str:
        """Name, category, tags and description: what a shopper's question would mention."""
        tags = ", ".join(self.tags)
        return f"{self.name} ({self.category}). {tags}. {self.description}".strip()


@dataclass(frozen=True)
class ProductMatch:
    product: Product
    score: float


class ProductCatalog:
    """Put, delete, list and search products per tenant."""

    def __init__(self, engine: Engine, embedder: Embedder, vectors: VectorStore | None = None):
        """``vectors`` defaults to the store the database calls for (``open_vector_store``)."""
        self._engine = engine
        self._embedder = embedder
        self._vectors = vectors if vectors is not None else open_vector_store(engine)
        self._vectors.register_source(COLLECTION, _stored_vectors)
        self._stamps: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def put(self, tenant: str, products: Sequence[Product]) -> int:
        """Embed and upsert products (committed before returning); return how many."""
        check_tenant(tenant)
        if not products:
            return 0
        vectors = self._embedder.embed_sync(
            [p.embedding_text() for p in products], purpose="catalog"
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        now = time.time()
        item_ids = [product_item_id(p.product_id) for p in products]
        rows = [
            {
                "tenant": tenant,
                "product_id": p.product_id,
                "item_id": item_id,
                "name": p.name,
                "category": p.category,
                "description": p.description,
                "price": p.price,
                "currency": p.currency,
                "tags": list(p.tags),
                "embedding": vector.tobytes(),
                "model": self._embedder.model_name,
                "updated_at": now,
            }
            for p, item_id, vector in zip(products, item_ids, vectors, strict=True)
        ]
        space = self._space(tenant, vectors.shape[1])
        with self._engine.begin() as conn:
            conn.execute(
                delete(PRODUCTS).where(
                    PRODUCTS.c.tenant == tenant,
                    PRODUCTS.c.product_id.in_([p.product_id for p in products]),
                )
            )
            conn.execute(PRODUCTS.insert(), rows)
            self._vectors.remove(conn, COLLECTION, tenant, item_ids)
            self._vectors.add(conn, space, item_ids, vectors, [None] * len(item_ids))
        return len(rows)

    def delete(self, tenant: str, product_id: str) -> bool:
        check_tenant(tenant)
        with self._engine.begin() as conn:
            removed = conn.execute(
                delete(PRODUCTS).where(
                    PRODUCTS.c.tenant == tenant, PRODUCTS.c.product_id == product_id
                )
            ).rowcount
            self._vectors.remove(conn, COLLECTION, tenant, [product_item_id(product_id)])
        return bool(removed)

    def products(self, tenant: str) -> list[Product]:
        check_tenant(tenant)
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(*_PRODUCT_COLUMNS)
                .where(PRODUCTS.c.tenant == tenant)
                .order_by(PRODUCTS.c.product_id)
            ).all()
        return [_product(row) for row in rows]

    def get(self, tenant: str, product_id: str) -> Product | None:
        check_tenant(tenant)
        with self._engine.connect() as conn:
            row = conn.execute(
                select(*_PRODUCT_COLUMNS).where(
                    PRODUCTS.c.tenant == tenant, PRODUCTS.c.product_id == product_id
                )
            ).first()
        return _product(row) if row is not None else None

    def vectors_of(self, tenant: str, product_ids: Sequence[str]) -> npt.NDArray[np.float32]:
        """The stored vectors of the named products that exist, one row per name in the
        order named (a name given twice gives two rows; unknown ids are skipped), so a
        caller that filtered the names by ``get`` can index its list by row."""
        check_tenant(tenant)
        with self._engine.connect() as conn:
            stored = {
                row.product_id: np.frombuffer(row.embedding, dtype=np.float32)
                for row in conn.execute(
                    select(PRODUCTS.c.product_id, PRODUCTS.c.embedding).where(
                        PRODUCTS.c.tenant == tenant,
                        PRODUCTS.c.product_id.in_(list(product_ids)),
                    )
                )
            }
        found = [stored[p] for p in product_ids if p in stored]
        return np.vstack(found) if found else np.zeros((0, self._embedder.dimension), np.float32)

    def search(
        self,
        tenant: str,
        query_vector: npt.NDArray[np.float32],
        top_k: int,
        *,
        exclude: Sequence[str] = (),
        history_vectors: npt.NDArray[np.float32] | None = None,
        history_weight: float = 0.4,
    ) -> list[tuple[ProductMatch, float, float]]:
        """Products closest to the query, blended with closeness to the customer's products.

        Returns ``(match, query_similarity, history_similarity)`` so callers can say why
        a product was chosen. Excluded ids (what the customer owns) never come back.
        """
        check_tenant(tenant)
        started = time.perf_counter()
        query = np.ascontiguousarray(query_vector, dtype=np.float32).reshape(-1)
        related = (
            np.zeros((0, query.shape[0]), np.float32)
            if history_vectors is None
            else np.asarray(history_vectors, dtype=np.float32).reshape(-1, query.shape[0])
        )
        candidates = self._candidates(tenant, query, related[:MAX_RELATED], top_k, exclude)
        rows = sorted(candidates, key=lambda row: row.product_id)  # ties: as listed
        results: list[tuple[ProductMatch, float, float]] = []
        if rows:
            vectors = np.vstack([np.frombuffer(r.embedding, dtype=np.float32) for r in rows])
            query_sim = vectors @ query
            history_sim = np.zeros_like(query_sim)
            score = query_sim
            if related.shape[0]:
                history_sim = (vectors @ related.T).max(axis=1)
                score = (1 - history_weight) * query_sim + history_weight * history_sim
            for row in np.argsort(-score, kind="stable")[:top_k].tolist():
                results.append(
                    (
                        ProductMatch(_product(rows[row]), float(score[row])),
                        float(query_sim[row]),
                        float(history_sim[row]),
                    )
                )
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode="dense").observe(
            time.perf_counter() - started
        )
        return results

    def stats(self, tenant: str) -> dict[str, Any]:
        check_tenant(tenant)
        with self._engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(PRODUCTS).where(PRODUCTS.c.tenant == tenant)
            ).scalar_one()
        return {"products": int(count)}

    def _candidates(
        self,
        tenant: str,
        query: npt.NDArray[np.float32],
        related: npt.NDArray[np.float32],
        top_k: int,
        exclude: Sequence[str],
    ) -> list[Any]:
        """The rows (with vectors) of the products nearest the query and nearest each
        related vector, never an excluded one."""
        if top_k <= 0:
            return []
        self._read_other_writers(tenant)
        space = self._space(tenant, query.shape[0])
        excluded = [product_item_id(p) for p in exclude]
        wanted = max(top_k, QUERY_CANDIDATES)
        ids = {i for i, _ in self._vectors.search(space, query, wanted, excluded=excluded)}
        for vector in related:
            found = self._vectors.search(space, vector, RELATED_CANDIDATES, excluded=excluded)
            ids.update(i for i, _ in found)
        if not ids:
            return []
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    select(*_PRODUCT_COLUMNS, PRODUCTS.c.embedding).where(
                        PRODUCTS.c.tenant == tenant,
                        PRODUCTS.c.model == space.model,
                        PRODUCTS.c.item_id.in_(sorted(ids)),
                    )
                ).all()
            )

    def _read_other_writers(self, tenant: str) -> None:
        """Where the store holds vectors in memory, have it read the table again once the
        tenant's change stamp moved (another process put or deleted products). A stamp read
        before the reload that follows: a change after it is seen next time."""
        if not self._vectors.caches:
            return
        stamp = change_stamp(self._engine, PRODUCTS, tenant)
        with self._lock:
            if self._stamps.get(tenant) != stamp:
                self._vectors.forget(COLLECTION, tenant)
                self._stamps[tenant] = stamp

    def _space(self, tenant: str, dimension: int) -> VectorSpace:
        return VectorSpace(COLLECTION, tenant, self._embedder.model_name, int(dimension))


_PRODUCT_COLUMNS = (
    PRODUCTS.c.product_id,
    PRODUCTS.c.name,
    PRODUCTS.c.category,
    PRODUCTS.c.description,
    PRODUCTS.c.price,
    PRODUCTS.c.currency,
    PRODUCTS.c.tags,
)


def _product(row: Any) -> Product:
    return Product(
        row.product_id,
        row.name,
        row.category,
        row.description,
        row.price,
        row.currency,
        tuple(row.tags),
    )


def _stored_vectors(conn: Connection, tenant: str, model: str) -> Iterator[StoredVector]:
    """The tenant's stored product vectors of one model (what the FAISS store loads)."""
    query = select(PRODUCTS.c.item_id, PRODUCTS.c.embedding).where(
        PRODUCTS.c.tenant == tenant, PRODUCTS.c.model == model
    )
    for row in conn.execute(query):
        yield int(row.item_id), None, bytes(row.embedding)
