"""A tenant's KB index in PostgreSQL, shared by every replica: chunks, BM25 postings, vectors.

On PostgreSQL the KB index is not a folder of versions but rows every replica reads:

* ``kb_chunks``: one row per chunk (its record as JSON, the hash of the document it came
  from, its length in BM25 terms);
* ``kb_terms``: BM25 postings, ``(tenant, term hash, chunk, term frequency)``;
* ``vector_items`` (``retrieval/pgvector_store.py``), collection ``kb``: the chunk vectors;
* ``kb_index_state``: the published version number, embedding model and settings.

**A reindex publishes by transaction.** The embedding happens first, outside any
transaction; then one transaction removes the chunks of removed and edited documents,
inserts the new ones (rows, postings, vectors) and bumps the version. Every search on
every replica sees the old index or the new one, never a mix, and nothing is polled.

**Deleted and edited documents stop matching at once, everywhere.** Each chunk row keeps the
content hash of its document at indexing time; chunks whose document is gone from
``kb_documents`` or has another hash now are excluded inside both searches (computed
once per index version and document change, ``DocumentStore.change_stamp``).

**The lexical half is BM25 computed in SQL** over the same terms as the embedded path's
``bm25s`` index (``retrieval/lexical.py``: the same tokenizer, stemming and stop words,
and Lucene's idf and length normalisation with k1 1.5 and b 0.75), so both paths rank
keywords alike, Chinese included (the tokenizer's units are the same; no PostgreSQL text
search configuration is involved, and PostgreSQL's parsers do not split Chinese). Terms
are stored as 63-bit hashes: a long run of CJK characters is one term and may exceed what
a b-tree key holds.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert

from core import metrics
from core.ids import check_tenant
from retrieval.documents import DocumentStore
from retrieval.knowledge.records import COLLECTION, ChunkRecord, IndexedBase
from retrieval.knowledge.sql_tables import (
    KB_CHUNKS,
    KB_INDEX_STATE,
    KB_TERMS,
    IndexState,
    term_hash,
)
from retrieval.lexical import terms
from retrieval.vector_store import VectorSpace, VectorStore

BM25_K1 = 1.5
BM25_B = 0.75
WRITE_BATCH = 1000

WRITER_LOCK_PREFIX = 0x6B62  # "kb": a tenant's writer lock is this, then its hash


@dataclass(frozen=True)
class SqlView:
    """One tenant's published index as a search reads it; see ``search.IndexView``."""

    index: SqlKbIndex
    tenant: str
    state: IndexState
    excluded: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.state.chunks

    @property
    def embedding_model(self) -> str:
        return self.state.embedding_model

    def dense(self, query_vector: npt.NDArray[np.float32], pool: int) -> dict[int, float]:
        if not self.state.dimension:  # published without a single vector
            return {}
        hits = self.index.vectors.search(self._space(), query_vector, pool, excluded=self.excluded)
        return dict(hits)

    def dense_scores(
        self, query_vector: npt.NDArray[np.float32], chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        if not chunk_ids or not self.state.dimension:
            return {}
        hits = self.index.vectors.search(
            self._space(), query_vector, len(chunk_ids), allowed=list(chunk_ids)
        )
        return dict(hits)

    def lexical(self, query: str, pool: int) -> tuple[dict[int, float], float]:
        return self.index.bm25(self.tenant, self.state, query, pool, self.excluded)

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        return self.index.chunk_records(self.tenant, chunk_ids)

    def _space(self) -> VectorSpace:
        return VectorSpace(
            COLLECTION, self.tenant, self.state.embedding_model, self.state.dimension
        )


class SqlKbIndex:
    """Every tenant's KB index in PostgreSQL: publish, read, search, count."""

    def __init__(self, engine: Engine, store: DocumentStore, vectors: VectorStore) -> None:
        self.engine = engine
        self.store = store
        self.vectors = vectors
        self._excluded: dict[str, tuple[tuple[int, tuple[int, float]], tuple[int, ...]]] = {}

    # ------------------------------------------------------------------ reading

    def state(self, tenant: str) -> IndexState | None:
        check_tenant(tenant)  # as the file path's folder name does: a bad id is the caller's
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(KB_INDEX_STATE).where(KB_INDEX_STATE.c.tenant == tenant))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return IndexState(**{k: v for k, v in row.items() if k != "tenant"})

    def view(self, tenant: str) -> SqlView | None:
        """The tenant's published index with its stale chunks, or ``None`` before any."""
        check_tenant(tenant)
        stamp = self.store.change_stamp(tenant)  # read first: a later change recomputes
        state = self.state(tenant)
        if state is None:
            return None
        key = (state.version, stamp)
        cached = self._excluded.get(tenant)
        if cached is None or cached[0] != key:
            cached = (key, self._stale_chunks(tenant))
            self._excluded[tenant] = cached
            self._export(tenant, state)
        return SqlView(self, tenant, state, cached[1])

    def export_metrics(self, tenant: str) -> None:
        """Set the tenant's index gauges (documents, chunks, version, age, pending)."""
        self._export(tenant, self.state(tenant))

    def _export(self, tenant: str, state: IndexState | None) -> None:
        tenant_label = metrics.TENANT_LABELS.label(tenant)
        if tenant_label == metrics.OTHER_TENANTS:
            return
        labels = {"tenant": tenant_label, "collection": COLLECTION}
        metrics.INDEX_PENDING_DOCUMENTS.labels(**labels).set(self.pending_documents(tenant))
        if state is None:
            return
        metrics.INDEX_DOCUMENTS.labels(**labels).set(state.documents)
        metrics.INDEX_CHUNKS.labels(**labels).set(state.chunks)
        metrics.INDEX_VERSION.labels(**labels).set(state.version)
        created = state.created_at
        metrics.INDEX_AGE.labels(**labels).set_function(lambda: time.time() - created)

    def pending_documents(self, tenant: str) -> int:
        """Documents created, edited or deleted in the store since the index was built."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM ("
                        " SELECT d.doc_id FROM kb_documents d WHERE d.tenant = :tenant"
                        " AND NOT EXISTS (SELECT 1 FROM kb_chunks c WHERE c.tenant = d.tenant"
                        " AND c.doc_id = d.doc_id AND c.doc_hash = d.content_hash)"
                        " UNION"
                        " SELECT c.doc_id FROM kb_chunks c WHERE c.tenant = :tenant"
                        " AND NOT EXISTS (SELECT 1 FROM kb_documents d WHERE d.tenant = c.tenant"
                        " AND d.doc_id = c.doc_id)) AS pending"
                    ),
                    {"tenant": tenant},
                ).scalar_one()
            )

    def base(self, tenant: str) -> IndexedBase | None:
        """The published index as a reindex compares it with the store."""
        state = self.state(tenant)
        if state is None:
            return None
        return IndexedBase(
            state.version,
            state.embedding_model,
            dict(state.settings),
            self.documents(tenant),
            state.chunks,
        )

    def documents(self, tenant: str) -> dict[str, dict[str, Any]]:
        """``doc_id -> {content_hash, chunk_ids}`` as the published index holds them."""
        documents: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(
                select(KB_CHUNKS.c.doc_id, KB_CHUNKS.c.doc_hash, KB_CHUNKS.c.chunk_id)
                .where(KB_CHUNKS.c.tenant == tenant)
                .order_by(KB_CHUNKS.c.doc_id, KB_CHUNKS.c.chunk_id)
            ):
                entry = documents.setdefault(
                    row.doc_id, {"content_hash": row.doc_hash, "chunk_ids": []}
                )
                entry["chunk_ids"].append(int(row.chunk_id))
        return documents

    def chunk_records(self, tenant: str, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not chunk_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(KB_CHUNKS.c.chunk_id, KB_CHUNKS.c.record).where(
                    KB_CHUNKS.c.tenant == tenant,
                    KB_CHUNKS.c.chunk_id.in_([int(i) for i in chunk_ids]),
                )
            ).all()
        return {int(row.chunk_id): ChunkRecord(**row.record) for row in rows}

    def bm25(
        self,
        tenant: str,
        state: IndexState,
        query: str,
        pool: int,
        excluded: Sequence[int],
    ) -> tuple[dict[int, float], float]:
        """BM25 scores of the best ``pool`` chunks, and the share of the query the index
        can read (``LexicalIndex.known_share``)."""
        query_terms = terms(query)
        if not query_terms or state.chunks == 0 or pool <= 0:
            return {}, 0.0
        multiplicity = Counter(query_terms)
        hashes = {term: term_hash(term) for term in multiplicity}
        with self.engine.connect() as conn:
            frequencies: dict[int, int] = dict(
                conn.execute(
                    select(KB_TERMS.c.term_hash, func.count())
                    .where(
                        KB_TERMS.c.tenant == tenant,
                        KB_TERMS.c.term_hash.in_(list(hashes.values())),
                    )
                    .group_by(KB_TERMS.c.term_hash)
                ).all()
            )
            known = sum(len(t) for t in query_terms if hashes[t] in frequencies)
            share = known / sum(len(t) for t in query_terms)
            if not frequencies:
                return {}, share
            n = state.chunks
            weights = {  # a term the query repeats counts as often, as in bm25s
                hashes[term]: count * _idf(n, frequencies[hashes[term]])
                for term, count in multiplicity.items()
                if hashes[term] in frequencies
            }
            filters = "" if not excluded else "AND NOT (t.chunk_id = ANY(:excluded))"
            rows = conn.execute(
                text(
                    "SELECT t.chunk_id, SUM(q.weight * t.tf / (t.tf + :k1 * (1 - :b + :b * "
                    "c.terms / :average))) AS score "
                    "FROM unnest(CAST(:hashes AS bigint[]), CAST(:weights AS float8[])) "
                    "AS q(term_hash, weight) "
                    "JOIN kb_terms t ON t.tenant = :tenant AND t.term_hash = q.term_hash "
                    "JOIN kb_chunks c ON c.tenant = t.tenant AND c.chunk_id = t.chunk_id "
                    f"WHERE true {filters} "
                    "GROUP BY t.chunk_id ORDER BY score DESC, t.chunk_id LIMIT :pool"
                ),
                {
                    "tenant": tenant,
                    "hashes": list(weights),
                    "weights": list(weights.values()),
                    "k1": BM25_K1,
                    "b": BM25_B,
                    "average": max(state.total_terms / n, 1e-9),
                    "excluded": [int(i) for i in excluded],
                    "pool": int(pool),
                },
            ).all()
        return {int(row.chunk_id): float(row.score) for row in rows if row.score > 0}, share

    def _stale_chunks(self, tenant: str) -> tuple[int, ...]:
        """Chunks whose document was deleted or edited since they were indexed."""
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT c.chunk_id FROM kb_chunks c LEFT JOIN kb_documents d "
                    "ON d.tenant = c.tenant AND d.doc_id = c.doc_id "
                    "WHERE c.tenant = :tenant AND d.content_hash IS DISTINCT FROM c.doc_hash "
                    "ORDER BY c.chunk_id"
                ),
                {"tenant": tenant},
            ).scalars()
            return tuple(int(i) for i in found)

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def writer(self, tenant: str) -> Iterator[None]:
        """One reindex of a tenant at a time across every replica (a session advisory lock)."""
        key = (WRITER_LOCK_PREFIX << 48) | (term_hash(tenant) & ((1 << 48) - 1))
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()

    def publish(
        self,
        tenant: str,
        removed: set[str],
        chunks: list[ChunkRecord],
        vectors: npt.NDArray[np.float32],
        documents: dict[str, dict[str, Any]],
        embedding_model: str,
        settings: dict[str, Any],
    ) -> tuple[int, int]:
        """Replace the ``removed`` documents' chunks by the new ones, in one transaction;
        the new version's number and rows."""
        doc_hash = {doc_id: entry["content_hash"] for doc_id, entry in documents.items()}
        dimension = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else 0
        with self.engine.begin() as conn:
            before = (
                conn.execute(
                    select(KB_INDEX_STATE)
                    .where(KB_INDEX_STATE.c.tenant == tenant)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            gone = (
                list(
                    conn.execute(
                        select(KB_CHUNKS.c.chunk_id).where(
                            KB_CHUNKS.c.tenant == tenant, KB_CHUNKS.c.doc_id.in_(sorted(removed))
                        )
                    ).scalars()
                )
                if removed
                else []
            )
            for start in range(0, len(gone), WRITE_BATCH):
                batch = gone[start : start + WRITE_BATCH]
                conn.execute(
                    delete(KB_TERMS).where(
                        KB_TERMS.c.tenant == tenant, KB_TERMS.c.chunk_id.in_(batch)
                    )
                )
                conn.execute(
                    delete(KB_CHUNKS).where(
                        KB_CHUNKS.c.tenant == tenant, KB_CHUNKS.c.chunk_id.in_(batch)
                    )
                )
                self.vectors.remove(conn, COLLECTION, tenant, batch)
            self._insert(conn, tenant, chunks, vectors, doc_hash, embedding_model, dimension)
            counts = conn.execute(
                select(
                    func.count(func.distinct(KB_CHUNKS.c.doc_id)),
                    func.count(),
                    func.coalesce(func.sum(KB_CHUNKS.c.terms), 0),
                ).where(KB_CHUNKS.c.tenant == tenant)
            ).one()
            state = IndexState(
                version=(before["version"] if before else 0) + 1,
                embedding_model=embedding_model,
                dimension=dimension or (before["dimension"] if before else 0),
                settings=dict(settings),
                created_at=time.time(),
                documents=int(counts[0]),
                chunks=int(counts[1]),
                total_terms=int(counts[2]),
            )
            values = {"tenant": tenant, **state.__dict__}
            conn.execute(
                insert(KB_INDEX_STATE)
                .values(**values)
                .on_conflict_do_update(index_elements=["tenant"], set_=state.__dict__)
            )
        self.export_metrics(tenant)
        return state.version, state.chunks

    def _insert(
        self,
        conn: Connection,
        tenant: str,
        chunks: Sequence[ChunkRecord],
        vectors: npt.NDArray[np.float32],
        doc_hash: dict[str, str],
        embedding_model: str,
        dimension: int,
    ) -> None:
        for start in range(0, len(chunks), WRITE_BATCH):
            batch = chunks[start : start + WRITE_BATCH]
            rows, postings = [], []
            for chunk in batch:
                counted = Counter(terms(chunk.lexical_text()))
                rows.append(
                    {
                        "tenant": tenant,
                        "chunk_id": chunk.chunk_id,
                        "doc_id": chunk.doc_id,
                        "doc_hash": doc_hash[chunk.doc_id],
                        "record": chunk.__dict__,
                        "terms": sum(counted.values()),
                    }
                )
                postings += [
                    {"tenant": tenant, "term_hash": h, "chunk_id": chunk.chunk_id, "tf": tf}
                    for h, tf in _by_hash(counted).items()
                ]
            conn.execute(KB_CHUNKS.insert(), rows)
            if postings:
                conn.execute(KB_TERMS.insert(), postings)
            space = VectorSpace(COLLECTION, tenant, embedding_model, dimension)
            self.vectors.add(
                conn,
                space,
                [c.chunk_id for c in batch],
                vectors[start : start + len(batch)],
                [None] * len(batch),
            )


def _idf(chunks: int, frequency: int) -> float:
    """Lucene's BM25 idf (bm25s's default method): never negative, even for common terms."""
    return math.log(1 + (chunks - frequency + 0.5) / (frequency + 0.5))


def _by_hash(counted: Counter[str]) -> dict[int, int]:
    """Term frequencies keyed by term hash (two terms sharing a hash would add up)."""
    merged: dict[int, int] = {}
    for term, tf in counted.items():
        merged[term_hash(term)] = merged.get(term_hash(term), 0) + tf
    return merged
