"""The retrieval benchmark's search part: a ``VectorIndex`` per collection size, timed one
query per call as the server searches, and scored against exact answers with no filter, a
customer-style ``allowed=`` filter and an ``excluded=`` share of stale ids."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bench.lib.machine import CpuSnapshot, background_cores, wait_for_idle
from bench.lib.stats import Latency, percentile
from bench.lib.vectors import (
    Ids,
    K,
    Mixture,
    SearchFn,
    Vectors,
    exact_top_k,
    neighbour_cosines,
    random_ids,
    recall_at_k,
    run_queries,
    unfiltered,
    with_nprobe,
)
from retrieval.index import IndexLayout, VectorIndex, plan_layout

log = logging.getLogger("bench.vector_search")


@dataclass(frozen=True)
class SearchFilter:
    """A filter applied to every query of a case, and the exact answers under it."""

    label: str  # as printed: "allowed=100"
    kind: str  # as plotted: "none", "allowed", "allowed, exhaustive", "excluded"
    truth: list[Ids]
    allowed: list[Ids] | None = None  # one allowed set per query
    excluded: Ids | None = None
    exhaustive: bool = False

    def search_on(self, index: VectorIndex) -> SearchFn:
        """A single-query search of ``index`` under this filter."""
        allowed, excluded, exhaustive = self.allowed, self.excluded, self.exhaustive
        return lambda q, i: index.search(
            q,
            K,
            allowed=None if allowed is None else allowed[i],
            excluded=excluded,
            exhaustive=exhaustive,
        )


@dataclass
class SearchCase:
    """One (index, filter) pair at one size: latency and quality over the same queries.

    ``role`` is ``chosen`` (the layout ``plan_layout`` picks), ``exact`` (flat, only
    built separately where the chosen layout is IVF) or ``reference`` (plain numpy).
    """

    role: str
    index: str
    filter: str
    filter_kind: str
    latency: Latency
    recall_at_10: float
    results_per_query: float
    others_cores: float
    faiss_threads: int
    millis: list[float] = field(default_factory=list, repr=False)


@dataclass
class SweepPoint:
    nprobe: int
    latency: Latency
    recall_at_10: float
    others_cores: float


@dataclass
class SizeResult:
    """Everything measured at one collection size."""

    chunks: int
    layout: dict[str, Any]
    build_s: float
    flat_build_s: float | None
    neighbour_cosine: dict[str, float]
    excluded_selector_ms: float
    build_others_cores: float
    cases: list[SearchCase] = field(default_factory=list)
    sweep: list[SweepPoint] = field(default_factory=list)


def measure_case(
    role: str,
    index_name: str,
    search_filter: SearchFilter,
    search: SearchFn,
    queries: Vectors,
    warmup: int,
) -> SearchCase:
    """Time ``search`` over all queries and score its answers against the filter's truth."""
    before = CpuSnapshot.now()
    millis, found = run_queries(search, queries, warmup)
    others = background_cores(before)
    case = SearchCase(
        role=role,
        index=index_name,
        filter=search_filter.label,
        filter_kind=search_filter.kind,
        latency=Latency.of(millis),
        recall_at_10=recall_at_k(found, search_filter.truth, K),
        results_per_query=float(np.mean([f.shape[0] for f in found])),
        others_cores=others,
        faiss_threads=faiss.omp_get_max_threads(),
        millis=millis,
    )
    log.info(
        "  %d thr %-24s %-26s p50 %8.3f ms  p99 %8.3f ms  recall@10 %.3f  results %4.1f  "
        "others %.2f",
        case.faiss_threads,
        index_name,
        case.filter,
        case.latency.p50_ms,
        case.latency.p99_ms,
        case.recall_at_10,
        case.results_per_query,
        others,
    )
    return case


def make_filters(
    n: int,
    ids: Ids,
    vectors: Vectors,
    queries: Vectors,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> tuple[SearchFilter, SearchFilter, SearchFilter]:
    """No filter; a random ``allowed`` set per query (one customer's chunks); a fixed
    ``excluded`` share of the ids (stale chunks). Each with its exact top ``K``."""
    _, true_rows = exact_top_k(vectors, queries, K)
    plain = SearchFilter("none", "none", [ids[r] for r in true_rows])

    allowed_rows = [rng.choice(n, size=min(args.allowed, n), replace=False) for _ in queries]
    allowed_truth = []
    for q, rows in zip(queries, allowed_rows, strict=True):
        scores = vectors[rows] @ q
        allowed_truth.append(ids[rows[np.argsort(-scores)[:K]]])
    allowed = SearchFilter(
        f"allowed={len(allowed_rows[0]):,}",
        "allowed",
        allowed_truth,
        allowed=[ids[rows] for rows in allowed_rows],
    )

    count = max(1, round(n * args.excluded_fraction))
    excluded_ids = np.sort(ids[rng.choice(n, size=count, replace=False)])
    is_excluded = np.isin(ids, excluded_ids)
    _, pool_rows = exact_top_k(vectors, queries, min(n, 4 * K))  # 40 leave 10 at 1 % excluded
    excluded_truth = [ids[rows[~is_excluded[rows]]][:K] for rows in pool_rows]
    if min(t.shape[0] for t in excluded_truth) < K:  # pragma: no cover - pool is ample
        raise RuntimeError("exclusion ground truth pool too small")
    excluded = SearchFilter(
        f"excluded={count:,}", "excluded", excluded_truth, excluded=excluded_ids
    )
    return plain, allowed, excluded


def numpy_allowed_search(index: VectorIndex, allowed: list[Ids]) -> SearchFn:
    """Reference for selective filters: score only the allowed rows with numpy."""

    def search(q: Vectors, i: int) -> tuple[npt.NDArray[np.float32], Ids]:
        rows = np.array([index.row_of(int(c)) for c in allowed[i]], dtype=np.int64)
        scores = index.vectors[rows] @ q
        top = np.argsort(-scores)[:K]
        return scores[top], index.ids[rows[top]]

    return search


def measure_filters(
    role: str,
    name: str,
    index: VectorIndex,
    filters: Sequence[SearchFilter],
    queries: Vectors,
    warmup: int,
    threads: Sequence[int],
) -> list[SearchCase]:
    """``index`` under each filter at each FAISS thread count; the first count is left set."""
    cases = []
    for count in threads:
        faiss.omp_set_num_threads(count)
        for search_filter in filters:
            search = search_filter.search_on(index)
            cases.append(measure_case(role, name, search_filter, search, queries, warmup))
    faiss.omp_set_num_threads(threads[0])
    return cases


def sweep_nprobe(
    index: VectorIndex, queries: Vectors, truth: list[Ids], warmup: int
) -> list[SweepPoint]:
    """Latency and recall@10 of the trained IVF ``index`` at nprobe 4, 8, ... up to nlist."""
    points = []
    nprobe = 4
    while nprobe <= index.layout.nlist:
        before = CpuSnapshot.now()
        millis, found = run_queries(unfiltered(with_nprobe(index, nprobe)), queries, warmup)
        point = SweepPoint(
            nprobe, Latency.of(millis), recall_at_k(found, truth, K), background_cores(before)
        )
        points.append(point)
        log.info(
            "  nprobe %5d  p50 %.3f ms  recall@10 %.3f",
            nprobe,
            point.latency.p50_ms,
            point.recall_at_10,
        )
        nprobe *= 2
    return points


def bench_size(n: int, args: argparse.Namespace, mixture: Mixture) -> SizeResult:
    """Build the index ``plan_layout(n)`` picks and measure it (and exact flat if it is IVF)."""
    rng = np.random.default_rng([args.seed, n])
    log.info("size %d: generating vectors and exact answers", n)
    vectors = mixture.sample(n, stream=n)
    queries = mixture.sample(args.queries, stream=1)  # the same queries at every size
    ids = random_ids(n, rng)
    plain, allowed, excluded = make_filters(n, ids, vectors, queries, args, rng)
    neighbour_cosine = neighbour_cosines(vectors, queries, rng)
    assert excluded.excluded is not None
    selector_ms = []
    for _ in range(50):  # what building the excluded= selector costs each search
        t0 = time.perf_counter_ns()
        faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded.excluded))
        selector_ms.append((time.perf_counter_ns() - t0) / 1e6)

    wait_for_idle(args.wait_idle, args.idle_threshold)
    log.info("size %d: building VectorIndex (%s)", n, plan_layout(n))
    before = CpuSnapshot.now()
    index = VectorIndex.build(ids, vectors)
    after = CpuSnapshot.now()
    layout = index.layout
    log.info("size %d: built in %.1f s", n, after.wall - before.wall)
    result = SizeResult(
        chunks=n,
        layout=asdict(layout),
        build_s=after.wall - before.wall,
        flat_build_s=None,
        neighbour_cosine=neighbour_cosine,
        excluded_selector_ms=percentile(selector_ms, 50),
        build_others_cores=background_cores(before),
    )
    name = "flat" if layout.kind == "flat" else f"ivf {layout.nlist}/{layout.nprobe}"
    filters = [plain, allowed]
    if layout.kind == "ivf":
        filters.append(
            dataclasses.replace(
                allowed,
                label=f"{allowed.label}, exhaustive",
                kind="allowed, exhaustive",
                exhaustive=True,
            )
        )
    filters.append(excluded)
    w = args.warmup
    threads = [int(t) for t in args.faiss_threads.split(",")]
    result.cases += measure_filters("chosen", name, index, filters, queries, w, threads)
    assert allowed.allowed is not None
    index.row_of(int(ids[0]))  # build the id -> row map outside the timing
    result.cases.append(
        measure_case(
            "reference",
            "numpy over allowed rows",
            allowed,
            numpy_allowed_search(index, allowed.allowed),
            queries,
            w,
        )
    )
    if layout.kind == "flat":
        return result

    recall = result.cases[0].recall_at_10
    if args.sweep or recall < args.sweep_below:
        log.info("size %d: recall@10 %.3f, sweeping nprobe", n, recall)
        result.sweep = sweep_nprobe(index, queries, plain.truth, w)
    del index  # at 1M chunks each copy of the vectors is 1.5 GB

    log.info("size %d: building exact flat index for comparison", n)
    started = time.perf_counter()
    flat = VectorIndex.build(ids, vectors, IndexLayout("flat"))
    result.flat_build_s = time.perf_counter() - started
    exact = [plain, allowed, excluded]
    result.cases += measure_filters("exact", "flat (exact)", flat, exact, queries, w, threads)
    return result
