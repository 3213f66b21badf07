"""Hybrid search over a tenant's published index: dense and BM25 candidates, fused into one
ranking. The index is read through an ``IndexView`` (a version on disk, or the rows every
replica shares in PostgreSQL), so the fusion is the same code on both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field

import numpy as np
import numpy.typing as npt

from core import metrics
from models.embedder import Embedder
from models.tenant_embedders import TenantEmbedders
from retrieval.knowledge.config import Fusion, RetrievalConfig, SearchMode
from retrieval.knowledge.records import COLLECTION, ChunkRecord, IndexView


@dataclass(frozen=True)
class SearchHit(ChunkRecord):
    """A retrieved chunk with its fused score and the score of each method that found it."""

    score: float
    dense_score: float | None
    lexical_score: float | None


def _weighted_fusion(
    dense: dict[int, float], lexical: dict[int, float], lexical_weight: float
) -> dict[int, float]:
    """``(1 - w) * minmax(dense) + w * minmax(lexical)`` over the candidate pool.

    Min-max per query puts cosine and BM25 on one scale; a chunk BM25 did not return
    scores 0 there (it matched fewer terms than the worst returned one).
    """
    dense_norm = _min_max(dense)
    lexical_norm = _min_max(lexical)
    return {
        i: (1 - lexical_weight) * dense_norm.get(i, 0.0) + lexical_weight * lexical_norm.get(i, 0.0)
        for i in dense.keys() | lexical.keys()
    }


def _reciprocal_rank_fusion(
    dense: dict[int, float], lexical: dict[int, float], lexical_weight: float, k: int
) -> dict[int, float]:
    """``sum w / (k + rank)``: needs no score scales, ignores how far apart scores are."""
    fused: dict[int, float] = {}
    for weight, ranked in ((1.0, dense), (lexical_weight, lexical)):
        order = sorted(ranked, key=lambda i: -ranked[i])
        for rank, i in enumerate(order):
            fused[i] = fused.get(i, 0.0) + weight / (k + rank + 1)
    return fused


def _min_max(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low < 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {i: (s - low) / (high - low) for i, s in scores.items()}


@dataclass(eq=False)
class KnowledgeSearch:
    """Searches the tenants' published indexes; async searches run on a thread pool."""

    views: Callable[[str], IndexView | None]
    """The tenant's published index as a search reads it (``None`` before the first)."""
    embedders: TenantEmbedders
    config: RetrievalConfig
    workers: InitVar[int]
    _executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="concierge-search")

    def search(
        self,
        tenant: str,
        query: str,
        query_vector: npt.NDArray[np.float32] | None,
        top_k: int = 5,
        mode: SearchMode | None = None,
    ) -> list[SearchHit]:
        """Top ``top_k`` chunks of the tenant's KB for ``query`` (synchronous)."""
        return self._search(self.views(tenant), query, query_vector, top_k, mode)

    def _search(
        self,
        view: IndexView | None,
        query: str,
        query_vector: npt.NDArray[np.float32] | None,
        top_k: int,
        mode: SearchMode | None,
    ) -> list[SearchHit]:
        mode = mode or self.config.default_mode
        started = time.perf_counter()
        hits: list[SearchHit] = []
        if view is not None and view.size:
            hits = self._search_view(view, query, query_vector, top_k, mode)
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode=str(mode)).observe(
            time.perf_counter() - started
        )
        if not hits:
            metrics.SEARCH_EMPTY_RESULTS.labels(collection=COLLECTION).inc()
        return hits

    async def asearch(
        self, tenant: str, query: str, top_k: int = 5, mode: SearchMode | None = None
    ) -> list[SearchHit]:
        """Embed the query and search, off the event loop. The index is read once, so the
        query is embedded by the model of the very version it searches."""
        mode = mode or self.config.default_mode
        vector = None
        loop = asyncio.get_running_loop()
        view = await loop.run_in_executor(self._executor, self.views, tenant)
        if mode is not SearchMode.LEXICAL:
            embedder = await loop.run_in_executor(self._executor, self._embedder_of, tenant, view)
            vector = (await embedder.embed([query], purpose="query"))[0]
        return await loop.run_in_executor(
            self._executor, lambda: self._search(view, query, vector, top_k, mode)
        )

    def query_embedder(self, tenant: str) -> Embedder:
        """The embedder of the tenant's queries: the one its served version was built
        with (a tuned one, or the base). Loads the served version on first use."""
        return self._embedder_of(tenant, self.views(tenant))

    def _embedder_of(self, tenant: str, view: IndexView | None) -> Embedder:
        if view is None:
            return self.embedders.base
        return self.embedders.named(tenant, view.embedding_model)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _search_view(
        self,
        view: IndexView,
        query: str,
        query_vector: npt.NDArray[np.float32] | None,
        top_k: int,
        mode: SearchMode,
    ) -> list[SearchHit]:
        # twice top_k: rows that show a passage already found (example questions) are skipped
        pool = 2 * top_k
        if mode is SearchMode.HYBRID:
            pool = max(pool, self.config.candidates)
        dense: dict[int, float] = {}
        lexical: dict[int, float] = {}
        if mode is not SearchMode.LEXICAL and query_vector is not None:
            dense = view.dense(query_vector, pool)
        lexical_weight = self.config.lexical_weight
        if mode is not SearchMode.DENSE:
            lexical, known_share = view.lexical(query, pool)
            # BM25 has a say in proportion to how much of the question it can read
            lexical_weight *= known_share
        if mode is SearchMode.DENSE:
            fused = dense
        elif mode is SearchMode.LEXICAL:
            fused = lexical
        elif self.config.fusion is Fusion.RRF:
            fused = _reciprocal_rank_fusion(dense, lexical, lexical_weight, self.config.rrf_k)
        else:
            if query_vector is not None:  # exact dense scores for lexical-only candidates
                dense.update(view.dense_scores(query_vector, sorted(lexical.keys() - dense.keys())))
            fused = _weighted_fusion(dense, lexical, lexical_weight)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        records = view.chunks([chunk_id for chunk_id, _ in ranked])
        hits: list[SearchHit] = []
        shown: set[tuple[str, int]] = set()
        for chunk_id, score in ranked:
            if len(hits) == top_k:
                break
            chunk = records.get(chunk_id)
            if chunk is None:  # published by another replica since the candidates were found
                continue
            if chunk.passage in shown:  # an example question of a lead already found
                continue
            shown.add(chunk.passage)
            hits.append(
                SearchHit(
                    **vars(chunk),
                    score=score,
                    dense_score=dense.get(chunk_id),
                    lexical_score=lexical.get(chunk_id),
                )
            )
        return hits
