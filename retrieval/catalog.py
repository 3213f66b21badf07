"""The product catalog of each tenant, embedded for recommendations.

Catalogs are small (hundreds to tens of thousands of products), so each tenant's
product vectors sit in one normalized matrix and a search is one matrix-vector
product: exact, no index to train, and fast enough (50k x 384 floats is ~4 ms).
Vectors are stored with the rows in SQL, so a restart does not re-embed.

Several replicas share the rows: before each read a process compares the tenant's change
stamp (products and newest ``updated_at``, one indexed query) with the one its matrix was
loaded at, and reloads when another replica (or the CLI) changed the catalog. A
recommendation blends the query's cosine with the closest of the customer's own products,
a score no vector index ranks by, so the exact product stays in memory rather than in
pgvector.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    select,
)

from core import metrics
from core.db import METADATA, change_stamp
from core.ids import check_tenant
from models.embedder import Embedder

COLLECTION = "catalog"

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
)


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


@dataclass
class _TenantCatalog:
    products: list[Product]
    vectors: npt.NDArray[np.float32]
    rows: dict[str, int]
    stamp: tuple[int, float] = (0, 0.0)
    """The tenant's change stamp when these rows were read."""


class ProductCatalog:
    """Put, delete, list and search products per tenant."""

    def __init__(self, engine: Engine, embedder: Embedder) -> None:
        self._engine = engine
        self._embedder = embedder
        self._tenants: dict[str, _TenantCatalog] = {}
        self._lock = threading.Lock()

    def put(self, tenant: str, products: Sequence[Product]) -> int:
        """Embed and upsert products (committed before returning); return how many."""
        check_tenant(tenant)
        if not products:
            return 0
        vectors = self._embedder.embed_sync(
            [p.embedding_text() for p in products], purpose="catalog"
        )
        now = time.time()
        rows = [
            {
                "tenant": tenant,
                "product_id": p.product_id,
                "name": p.name,
                "category": p.category,
                "description": p.description,
                "price": p.price,
                "currency": p.currency,
                "tags": list(p.tags),
                "embedding": vector.astype(np.float32).tobytes(),
                "model": self._embedder.model_name,
                "updated_at": now,
            }
            for p, vector in zip(products, vectors, strict=True)
        ]
        ids = [p.product_id for p in products]
        with self._lock:
            with self._engine.begin() as conn:
                conn.execute(
                    delete(PRODUCTS).where(
                        PRODUCTS.c.tenant == tenant, PRODUCTS.c.product_id.in_(ids)
                    )
                )
                conn.execute(PRODUCTS.insert(), rows)
            self._tenants.pop(tenant, None)
        return len(rows)

    def delete(self, tenant: str, product_id: str) -> bool:
        check_tenant(tenant)
        with self._lock:
            with self._engine.begin() as conn:
                removed = conn.execute(
                    delete(PRODUCTS).where(
                        PRODUCTS.c.tenant == tenant, PRODUCTS.c.product_id == product_id
                    )
                ).rowcount
            self._tenants.pop(tenant, None)
        return bool(removed)

    def products(self, tenant: str) -> list[Product]:
        return list(self._state(tenant).products)

    def get(self, tenant: str, product_id: str) -> Product | None:
        state = self._state(tenant)
        row = state.rows.get(product_id)
        return state.products[row] if row is not None else None

    def vectors_of(self, tenant: str, product_ids: Sequence[str]) -> npt.NDArray[np.float32]:
        """The stored vectors of the named products that exist (unknown ids are skipped)."""
        state = self._state(tenant)
        rows = [state.rows[p] for p in product_ids if p in state.rows]
        return state.vectors[rows] if rows else np.zeros((0, state.vectors.shape[1]), np.float32)

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
        started = time.perf_counter()
        state = self._state(tenant)
        results: list[tuple[ProductMatch, float, float]] = []
        if state.products:
            query_sim = state.vectors @ query_vector.astype(np.float32)
            history_sim = np.zeros_like(query_sim)
            if history_vectors is not None and history_vectors.shape[0]:
                history_sim = (state.vectors @ history_vectors.T).max(axis=1)
                score = (1 - history_weight) * query_sim + history_weight * history_sim
            else:
                score = query_sim
            excluded = {state.rows[p] for p in exclude if p in state.rows}
            for row in np.argsort(-score, kind="stable").tolist():
                if row in excluded:
                    continue
                results.append(
                    (
                        ProductMatch(state.products[row], float(score[row])),
                        float(query_sim[row]),
                        float(history_sim[row]),
                    )
                )
                if len(results) >= top_k:
                    break
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode="dense").observe(
            time.perf_counter() - started
        )
        return results

    def stats(self, tenant: str) -> dict[str, Any]:
        state = self._state(tenant)
        return {"products": len(state.products)}

    def _state(self, tenant: str) -> _TenantCatalog:
        check_tenant(tenant)
        stamp = self._stamp(tenant)  # read first: a change after it reloads next time
        with self._lock:
            state = self._tenants.get(tenant)
            if state is None or state.stamp != stamp:
                state = self._load(tenant, stamp)
                self._tenants[tenant] = state
            return state

    def _stamp(self, tenant: str) -> tuple[int, float]:
        """``(products, newest updated_at)``: differs after any put or delete, by anyone."""
        return change_stamp(self._engine, PRODUCTS, tenant)

    def _load(self, tenant: str, stamp: tuple[int, float]) -> _TenantCatalog:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(PRODUCTS).where(PRODUCTS.c.tenant == tenant).order_by(PRODUCTS.c.product_id)
            ).all()
        products = [
            Product(
                r.product_id,
                r.name,
                r.category,
                r.description,
                r.price,
                r.currency,
                tuple(r.tags),
            )
            for r in rows
        ]
        dim = self._embedder.dimension if rows else 0
        vectors = (
            np.vstack([np.frombuffer(r.embedding, dtype=np.float32) for r in rows])
            if rows
            else np.zeros((0, dim), np.float32)
        )
        rows_of = {p.product_id: i for i, p in enumerate(products)}
        return _TenantCatalog(products, vectors, rows_of, stamp)
