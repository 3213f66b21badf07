"""The ``VectorStore`` contract, on both implementations: FAISS in memory (SQLite) and
pgvector (PostgreSQL). The same tests run on each through the ``database`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

from retrieval.vector_store import StoredVector, VectorSpace, VectorStore, open_vector_store

DIMENSION = 48  # no shipped embedder has it: pgvector builds its index on first use
SOURCE = Table(
    "test_vector_source",
    MetaData(),
    Column("item_id", Integer, primary_key=True),
    Column("tenant", String(64)),
    Column("owner", String(64)),
    Column("embedding", LargeBinary),
)
"""The owning table a collection keeps its vectors in (what the FAISS store loads from)."""


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact(vectors: np.ndarray, ids: list[int], query: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return [ids[i] for i in order]


class Collection:
    """A tiny owning table plus the store, written together as a collection would."""

    def __init__(self, engine: Engine, store: VectorStore) -> None:
        self.engine = engine
        self.store = store
        store.register_source("test", self._stored)

    def space(self, tenant: str) -> VectorSpace:
        return VectorSpace("test", tenant, "test-model", DIMENSION)

    def add(self, tenant: str, ids: list[int], vectors: np.ndarray, owners: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                SOURCE.insert(),
                [
                    {"item_id": i, "tenant": tenant, "owner": o, "embedding": v.tobytes()}
                    for i, v, o in zip(ids, vectors, owners, strict=True)
                ],
            )
            self.store.add(conn, self.space(tenant), ids, vectors, owners)

    def remove(self, tenant: str, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(SOURCE.delete().where(SOURCE.c.item_id.in_(ids)))
            self.store.remove(conn, "test", tenant, ids)

    @staticmethod
    def _stored(conn: Connection, tenant: str, model: str) -> Iterator[StoredVector]:
        if model != "test-model":
            return
        for row in conn.execute(SOURCE.select().where(SOURCE.c.tenant == tenant)):
            yield int(row.item_id), row.owner, bytes(row.embedding)


@pytest.fixture
def collection(database: Engine) -> Collection:
    SOURCE.metadata.create_all(database)
    return Collection(database, open_vector_store(database))


def test_the_database_picks_the_store(collection: Collection) -> None:
    expected = "pgvector" if collection.engine.dialect.name == "postgresql" else "faiss"
    assert collection.store.kind == expected


def test_search_ranks_by_cosine_within_a_tenant(collection: Collection) -> None:
    vectors = unit(300, seed=1)
    ids = list(range(1, 301))
    collection.add("acme", ids, vectors, [f"c{i % 30}" for i in ids])
    collection.add("globex", [1001, 1002], unit(2, seed=2), ["x", "y"])
    query = unit(1, seed=3)[0]
    hits = collection.store.search(collection.space("acme"), query, 10)
    assert [item for item, _ in hits] == exact(vectors, ids, query, 10)
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(float(vectors[ids.index(hits[0][0])] @ query), abs=1e-5)
    assert collection.store.count(collection.space("acme")) == 300
    assert {item for item, _ in collection.store.search(collection.space("globex"), query, 10)} == {
        1001,
        1002,
    }
    assert collection.store.search(collection.space("initech"), query, 10) == []


def test_filters_apply_inside_the_search(collection: Collection) -> None:
    vectors = unit(400, seed=4)
    ids = list(range(1, 401))
    owners = [f"c{i % 40}" for i in ids]
    collection.add("acme", ids, vectors, owners)
    query = unit(1, seed=5)[0]
    space = collection.space("acme")

    mine = [i for i, owner in zip(ids, owners, strict=True) if owner == "c7"]
    by_owner = collection.store.search(space, query, 5, owner="c7")
    expected = exact(vectors[[i - 1 for i in mine]], mine, query, 5)
    assert [item for item, _ in by_owner] == expected

    allowed = [3, 50, 77, 390]
    assert sorted(i for i, _ in collection.store.search(space, query, 10, allowed=allowed)) == (
        allowed
    )
    assert collection.store.search(space, query, 10, allowed=[]) == []
    both = collection.store.search(space, query, 10, owner="c7", allowed=[7, 8, 47])
    assert sorted(i for i, _ in both) == [7, 47]

    top = [item for item, _ in collection.store.search(space, query, 5)]
    rest = collection.store.search(space, query, 5, excluded=top[:3])
    assert not {item for item, _ in rest} & set(top[:3])
    assert [item for item, _ in rest][:2] == top[3:5]


def test_removed_ids_are_never_found_again(collection: Collection) -> None:
    vectors = unit(50, seed=6)
    ids = list(range(1, 51))
    collection.add("acme", ids, vectors, ["alice"] * 25 + ["bob"] * 25)
    space = collection.space("acme")
    assert collection.store.count(space) == 50  # loaded before the removal
    collection.remove("acme", ids[:25])
    query = vectors[0]
    assert collection.store.search(space, query, 50, owner="alice") == []
    assert {i for i, _ in collection.store.search(space, query, 50)} == set(ids[25:])
    fresh = open_vector_store(collection.engine)  # a restarted process, or another replica
    fresh.register_source("test", Collection._stored)
    assert {i for i, _ in fresh.search(space, query, 50)} == set(ids[25:])


def test_vectors_of_another_model_are_not_compared(collection: Collection) -> None:
    collection.add("acme", [1, 2], unit(2, seed=7), ["a", "b"])
    other = VectorSpace("test", "acme", "another-model", DIMENSION)
    assert collection.store.search(other, unit(1, seed=8)[0], 5) == []


def test_pgvector_walks_its_hnsw_index_inside_the_tenant_filter(collection: Collection) -> None:
    if collection.store.kind != "pgvector":
        pytest.skip("the graph path is pgvector's; FAISS here is always exact")
    from retrieval.pgvector_store import PgVectorStore, hnsw_index_name

    graph = PgVectorStore(collection.engine, exact_max_rows=0)  # every wide search: HNSW
    vectors = unit(600, seed=9)
    ids = list(range(1, 601))
    collection.add("acme", ids[:300], vectors[:300], ["a"] * 300)
    collection.add("globex", ids[300:], vectors[300:], ["b"] * 300)
    query = unit(1, seed=10)[0]
    space = collection.space("acme")
    with collection.engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a 600-row table is tiny
        plan = conn.execute(
            text(
                "EXPLAIN SELECT item_id FROM vector_items WHERE collection = 'test' AND "
                f"tenant = 'acme' AND dimension = {DIMENSION} ORDER BY "
                f"embedding::vector({DIMENSION}) <#> CAST(:q AS vector({DIMENSION})) LIMIT 10"
            ),
            {"q": "[" + ",".join(map(str, query.tolist())) + "]"},
        ).scalars()
        assert any(hnsw_index_name(DIMENSION) in line for line in plan)
    hits = graph.search(space, query, 10)
    assert [item for item, _ in hits] == exact(vectors[:300], ids[:300], query, 10)
    skipped = graph.search(space, query, 10, excluded=[hits[0][0]])
    assert hits[0][0] not in {item for item, _ in skipped} and len(skipped) == 10
