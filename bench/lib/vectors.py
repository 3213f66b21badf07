"""Vectors for the retrieval benchmark: a seeded synthetic collection shaped like sentence
embeddings, exact answers to score a search against, and single-query timing."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from retrieval.index import IVF_LISTS_PER_SQRT_N, IVF_PROBE_FRACTION, IndexLayout, VectorIndex

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
SearchFn = Callable[[Vectors, int], tuple[npt.NDArray[np.float32], Ids]]
"""One single-query search: (query vector, query number) -> (scores, ids)."""

K = 10
"""Every search asks for the top 10, as the server's KB search does by default."""


@dataclass(frozen=True)
class Mixture:
    """A seeded two-level Gaussian mixture of unit vectors (topics > centres > points).

    ``topic_spread`` is the norm of the Gaussian offset that turns a topic into a centre;
    each centre then gets its own point spread, uniform in ``noise`` (tight clusters of
    near-duplicate texts next to diffuse ones), and all centres lean towards one common
    direction by ``common`` (sentence embeddings share a mean direction, so random pairs
    have a small positive cosine). Cluster sizes follow a Zipf-like law. The defaults
    were chosen so that IVF recall@10 against nprobe at 48k points follows the curve of
    real all-MiniLM-L6-v2 embeddings of ../shared/data (``--parts realism``).
    """

    dimension: int = 384
    topics: int = 64
    centers: int = 2048
    topic_spread: float = 1.0
    noise: tuple[float, float] = (0.6, 2.8)
    common: float = 0.35
    seed: int = 0

    def _centers(self) -> tuple[Vectors, npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        rng = np.random.default_rng(self.seed)
        d = self.dimension
        mean = unit(rng.standard_normal((1, d), dtype=np.float32))
        topics = unit(rng.standard_normal((self.topics, d), dtype=np.float32))
        parent = rng.integers(0, self.topics, self.centers)
        offsets = rng.standard_normal((self.centers, d), dtype=np.float32) / np.sqrt(d)
        centers = unit(unit(topics[parent] + self.topic_spread * offsets) + self.common * mean)
        spread = rng.uniform(*self.noise, size=self.centers).astype(np.float32)
        weights = 1.0 / np.arange(1, self.centers + 1) ** 0.5
        return centers, spread, weights / weights.sum()

    def sample(self, n: int, stream: int) -> Vectors:
        """``n`` unit vectors; a different ``stream`` gives independent points."""
        centers, spread, weights = self._centers()
        rng = np.random.default_rng([self.seed, stream])
        out = np.empty((n, self.dimension), dtype=np.float32)
        step = 100_000  # bounded temporaries at 1M points
        for start in range(0, n, step):
            m = min(step, n - start)
            which = rng.choice(self.centers, size=m, p=weights)
            noise = rng.standard_normal((m, self.dimension), dtype=np.float32)
            scale = spread[which, None] / np.sqrt(self.dimension)
            out[start : start + m] = unit(centers[which] + scale * noise)
        return out


def unit(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def random_ids(n: int, rng: np.random.Generator) -> Ids:
    """Distinct positive 62-bit ids, like ``chunk_id_for``'s hashes."""
    ids = np.unique(rng.integers(1, 2**62, size=n + n // 100 + 16, dtype=np.int64))
    if ids.shape[0] < n:  # pragma: no cover - 1 % spare covers collisions
        raise RuntimeError("not enough distinct ids")
    return rng.permutation(ids[:n])


def exact_top_k(vectors: Vectors, queries: Vectors, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
    """Ground truth: brute-force inner product; returns rows of ``vectors``, not ids."""
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    scores, rows = exact.search(queries, k)
    return scores, rows


def run_queries(search: SearchFn, queries: Vectors, warmup: int) -> tuple[list[float], list[Ids]]:
    """Call ``search`` once per query; per-call milliseconds and the ids each returned."""
    for i in range(min(warmup, queries.shape[0])):
        search(queries[i], i)
    millis: list[float] = []
    found: list[Ids] = []
    for i in range(queries.shape[0]):
        started = time.perf_counter_ns()
        _, ids = search(queries[i], i)
        millis.append((time.perf_counter_ns() - started) / 1e6)
        found.append(ids)
    return millis, found


def recall_at_k(found: Sequence[Ids], truth: Sequence[Ids], k: int) -> float:
    """Mean fraction of the exact top ``k`` (fewer where fewer exist) that was returned."""
    hits = []
    for got, want in zip(found, truth, strict=True):
        want = want[:k]
        if want.shape[0]:
            hits.append(np.intersect1d(got[:k], want).shape[0] / want.shape[0])
    return float(np.mean(hits))


def with_nprobe(index: VectorIndex, nprobe: int) -> VectorIndex:
    """The same trained IVF index searched with another ``nprobe`` (a shallow copy)."""
    probed = copy.copy(index)
    probed.layout = dataclasses.replace(index.layout, nprobe=nprobe)
    return probed


def unfiltered(index: VectorIndex) -> SearchFn:
    """Plain top-``K`` search on ``index``."""
    return lambda q, _: index.search(q, K)


def neighbour_cosines(
    vectors: Vectors, queries: Vectors, rng: np.random.Generator
) -> dict[str, float]:
    """Mean query-to-neighbour cosine of the 1st and 10th exact neighbour, and to a random
    point drawn with ``rng``: how tight the collection's clusters are."""
    top, _ = exact_top_k(vectors, queries, K)
    sample = vectors[rng.integers(0, vectors.shape[0], queries.shape[0])]
    return {
        "top1": float(top[:, 0].mean()),
        "top10": float(top[:, K - 1].mean()),
        "random": float(np.mean(np.sum(queries * sample, axis=1))),
    }


def ivf_layout_for(n: int) -> IndexLayout:
    """The IVF layout ``plan_layout`` would give ``n`` vectors were it above the flat limit."""
    nlist = 2 ** round(math.log2(IVF_LISTS_PER_SQRT_N * math.sqrt(n)))
    return IndexLayout("ivf", nlist=nlist, nprobe=max(8, nlist // IVF_PROBE_FRACTION))


def recall_by_nprobe(vectors: Vectors, queries: Vectors, layout: IndexLayout) -> dict[int, float]:
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    _, rows = exact_top_k(vectors, queries, K)
    index = VectorIndex.build(ids, vectors, layout)
    recall = {}
    nprobe = 4
    while nprobe <= min(layout.nlist, 256):
        search = unfiltered(with_nprobe(index, nprobe))
        found = [search(q, i)[1] for i, q in enumerate(queries)]
        recall[nprobe] = recall_at_k(found, list(rows), K)
        nprobe *= 2
    return recall
