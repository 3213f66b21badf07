"""Hybrid search over a served version: FAISS and BM25 candidates, fused into one ranking."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field

import numpy as np
import numpy.typing as npt

from core import metrics
from models.embedder import Embedder
from models.tenant_embedders import TenantEmbedders
from retrieval.knowledge.config import Fusion, RetrievalConfig, SearchMode
from retrieval.knowledge.records import COLLECTION, ChunkRecord, KbVersion, ServedIndex
from retrieval.knowledge.served import ServedVersions


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
    """Searches the snapshots of ``ServedVersions``; async searches run on a thread pool."""

    versions: ServedVersions
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
        mode = mode or self.config.default_mode
        started = time.perf_counter()
        served = self.versions.served(tenant)
        version = served.version
        hits: list[SearchHit] = []
        if version is not None and version.vectors.size:
            hits = self._search_version(served, version, query, query_vector, top_k, mode)
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode=str(mode)).observe(
            time.perf_counter() - started
        )
        if not hits:
            metrics.SEARCH_EMPTY_RESULTS.labels(collection=COLLECTION).inc()
        return hits

    async def asearch(
        self, tenant: str, query: str, top_k: int = 5, mode: SearchMode | None = None
    ) -> list[SearchHit]:
        """Embed the query and search, off the event loop."""
        mode = mode or self.config.default_mode
        vector = None
        loop = asyncio.get_running_loop()
        if mode is not SearchMode.LEXICAL:
            embedder = await loop.run_in_executor(self._executor, self.query_embedder, tenant)
            vector = (await embedder.embed([query], purpose="query"))[0]
        return await loop.run_in_executor(
            self._executor, lambda: self.search(tenant, query, vector, top_k, mode)
        )

    def query_embedder(self, tenant: str) -> Embedder:
        """The embedder of the tenant's queries: the one its served version was built
        with (a tuned one, or the base). Loads the served version on first use."""
        version = self.versions.served(tenant).version
        if version is None:
            return self.embedders.base
        return self.embedders.named(tenant, version.manifest.embedding_model)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _search_version(
        self,
        served: ServedIndex,
        version: KbVersion,
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
            scores, ids = version.vectors.search(query_vector, pool, excluded=served.excluded)
            dense = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        lexical_weight = self.config.lexical_weight
        if mode is not SearchMode.DENSE:
            scores, rows = version.lexical.search(query, pool, row_mask=served.row_mask)
            lexical = dict(zip(version.vectors.ids[rows].tolist(), scores.tolist(), strict=True))
            # BM25 has a say in proportion to how much of the question it can read
            lexical_weight *= version.lexical.known_share(query)
        if mode is SearchMode.DENSE:
            fused = dense
        elif mode is SearchMode.LEXICAL:
            fused = lexical
        elif self.config.fusion is Fusion.RRF:
            fused = _reciprocal_rank_fusion(dense, lexical, lexical_weight, self.config.rrf_k)
        else:
            if query_vector is not None:  # exact dense scores for lexical-only candidates
                for chunk_id in lexical.keys() - dense.keys():
                    row = version.vectors.row_of(chunk_id)
                    if row is not None:
                        dense[chunk_id] = float(version.vectors.vectors[row] @ query_vector)
            fused = _weighted_fusion(dense, lexical, lexical_weight)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        hits: list[SearchHit] = []
        shown: set[tuple[str, int]] = set()
        for chunk_id, score in ranked:
            if len(hits) == top_k:
                break
            row = version.vectors.row_of(chunk_id)
            if row is None:  # pragma: no cover - ids and chunks are written together
                continue
            chunk = version.chunks[row]
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
