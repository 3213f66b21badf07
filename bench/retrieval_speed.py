"""Retrieval speed: vector search by collection size, embedding throughput, KB reindex.

Parts (``--parts``), all in one process on the machine at hand:

* ``search``: for each size (default 10k, 100k and 1M chunks) a synthetic collection of
  384-d unit vectors is indexed with ``VectorIndex.build``, so the layout is the one
  ``plan_layout`` picks (exact flat below ``FLAT_MAX_VECTORS``, IVF from there). Single-
  query latency (one query per call, as the server searches) and recall@10 against an
  exact ``faiss.IndexFlatIP`` are measured with no filter, with a customer-style
  ``allowed=`` filter (a random 100 ids per query; IVF also with ``exhaustive=True``)
  and with ``excluded=`` 1 % of the ids (stale chunks). Plain numpy over the allowed
  rows is the reference for the selective filter. Where the layout is IVF the same
  vectors are also indexed flat (exact) for a side by side comparison, and an nprobe
  sweep is added when recall@10 is below 0.9 (or with ``--sweep``).
* ``embedding``: sentences/s of ``Embedder.embed_sync`` for Bitext customer instructions
  one per call (batch 1, the query path) and 64 per call, and for Bitext responses: their
  first paragraphs 16 per call (what the default KB below costs a reindex, which embeds 16
  documents per call) and whole responses 16 and 64 per call.
* ``reindex``: a 10k-document KB in SQLite and a temp folder (Bitext response first
  paragraphs, or whole responses with ``--kb-text response``, under instruction titles):
  the first build, a no-op incremental reindex, an incremental reindex after editing one
  document (checked to embed exactly 1 document), and a full reindex of the same KB.
* ``realism`` (not run by default): how the synthetic vectors compare with real
  all-MiniLM-L6-v2 embeddings of the ~48k short texts in ../shared/data (embedded once,
  about 4 minutes on two idle cores, then cached in bench/out): neighbour cosines and IVF
  recall@10 against nprobe at the same size.

Synthetic vectors are a two-level Gaussian mixture (topics, then centres, then points)
normalized to unit length, with per-cluster spread and a shared mean direction: clustered
like sentence embeddings, so an IVF index has structure to exploit, and overlapping so
that it can also miss. Uniform random vectors have no such structure and make any IVF
look useless. Queries come from the same mixture but are not indexed. Everything is
seeded. The machine has two cores, so other processes distort every figure: the CPU they
used during each measurement is recorded next to it ("others' cores"), and
``--wait-idle`` waits for a quiet machine before each part.

    .venv/bin/python bench/retrieval_speed.py                     # ~12 min on 2 idle cores
    .venv/bin/python bench/retrieval_speed.py --quick             # smoke run (~2 min)
    .venv/bin/python bench/retrieval_speed.py --parts search --sizes 100000 --sweep
    .venv/bin/python bench/retrieval_speed.py --parts reindex --kb-text response
    .venv/bin/python bench/retrieval_speed.py --parts realism

Raw results go to bench/out/retrieval-speed-<timestamp>.json with a plot (.png) and the
markdown tables (.md) beside them.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bench.machine import describe_machine
from bench.processes import CpuSnapshot, background_cores, wait_for_idle
from core.db import create_database_engine
from models.embedder import Embedder, EmbedderConfig
from retrieval.documents import Document, DocumentFormat, DocumentStore
from retrieval.index import (
    FLAT_MAX_VECTORS,
    IVF_LISTS_PER_SQRT_N,
    IVF_PROBE_FRACTION,
    IndexLayout,
    VectorIndex,
    plan_layout,
)
from retrieval.knowledge import KnowledgeBase, ReindexMode, ReindexReport
from server.store.schema import create_schema

log = logging.getLogger("bench.retrieval_speed")

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "bitext-customer-support"
DEFAULT_MODEL = "all-minilm-l6-v2"

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
SearchFn = Callable[[Vectors, int], tuple[npt.NDArray[np.float32], Ids]]
"""One single-query search: (query vector, query number) -> (scores, ids)."""

K = 10
TENANT = "bench"


# -- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), NaN when empty."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


@dataclass(frozen=True)
class Latency:
    """Summary of per-call latencies in milliseconds."""

    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, millis: Sequence[float]) -> Latency:
        return cls(
            len(millis), percentile(millis, 50), percentile(millis, 99), float(np.mean(millis))
        )


def load_average() -> float:
    """1-minute load average: above the core count, other work shared the CPU."""
    return os.getloadavg()[0]


# -- synthetic vectors ------------------------------------------------------------------


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
        mean = _unit(rng.standard_normal((1, d), dtype=np.float32))
        topics = _unit(rng.standard_normal((self.topics, d), dtype=np.float32))
        parent = rng.integers(0, self.topics, self.centers)
        offsets = rng.standard_normal((self.centers, d), dtype=np.float32) / np.sqrt(d)
        centers = _unit(_unit(topics[parent] + self.topic_spread * offsets) + self.common * mean)
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
            out[start : start + m] = _unit(centers[which] + scale * noise)
        return out


def _unit(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def random_ids(n: int, rng: np.random.Generator) -> Ids:
    """Distinct positive 62-bit ids, like ``chunk_id_for``'s hashes."""
    ids = np.unique(rng.integers(1, 2**62, size=n + n // 100 + 16, dtype=np.int64))
    if ids.shape[0] < n:  # pragma: no cover - 1 % spare covers collisions
        raise RuntimeError("not enough distinct ids")
    return rng.permutation(ids[:n])


# -- search -----------------------------------------------------------------------------


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


def with_nprobe(index: VectorIndex, nprobe: int) -> VectorIndex:
    """The same trained IVF index searched with another ``nprobe`` (a shallow copy)."""
    probed = copy.copy(index)
    probed.layout = dataclasses.replace(index.layout, nprobe=nprobe)
    return probed


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


def unfiltered(index: VectorIndex) -> SearchFn:
    """Plain top-``K`` search on ``index``."""
    return lambda q, _: index.search(q, K)


def bench_size(n: int, args: argparse.Namespace, mixture: Mixture) -> SizeResult:
    """Build the index ``plan_layout(n)`` picks and measure it (and exact flat if it is IVF)."""
    rng = np.random.default_rng([args.seed, n])
    log.info("size %d: generating vectors and exact answers", n)
    vectors = mixture.sample(n, stream=n)
    queries = mixture.sample(args.queries, stream=1)  # the same queries at every size
    ids = random_ids(n, rng)
    plain, allowed, excluded = make_filters(n, ids, vectors, queries, args, rng)
    top, _ = exact_top_k(vectors, queries, K)
    sample = vectors[rng.integers(0, n, len(queries))]
    neighbour_cosine = {
        "top1": float(top[:, 0].mean()),
        "top10": float(top[:, K - 1].mean()),
        "random": float(np.mean(np.sum(queries * sample, axis=1))),
    }
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
    for count in threads:
        faiss.omp_set_num_threads(count)
        for search_filter in filters:
            result.cases.append(
                measure_case(
                    "chosen", name, search_filter, search_filter.search_on(index), queries, w
                )
            )
    faiss.omp_set_num_threads(threads[0])
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
        nprobe = 4
        while nprobe <= layout.nlist:
            before = CpuSnapshot.now()
            millis, found = run_queries(unfiltered(with_nprobe(index, nprobe)), queries, w)
            point = SweepPoint(
                nprobe,
                Latency.of(millis),
                recall_at_k(found, plain.truth, K),
                background_cores(before),
            )
            result.sweep.append(point)
            log.info(
                "  nprobe %5d  p50 %.3f ms  recall@10 %.3f",
                nprobe,
                point.latency.p50_ms,
                point.recall_at_10,
            )
            nprobe *= 2
    del index  # at 1M chunks each copy of the vectors is 1.5 GB

    log.info("size %d: building exact flat index for comparison", n)
    started = time.perf_counter()
    flat = VectorIndex.build(ids, vectors, IndexLayout("flat"))
    result.flat_build_s = time.perf_counter() - started
    for count in threads:
        faiss.omp_set_num_threads(count)
        for search_filter in (plain, allowed, excluded):
            result.cases.append(
                measure_case(
                    "exact",
                    "flat (exact)",
                    search_filter,
                    search_filter.search_on(flat),
                    queries,
                    w,
                )
            )
    faiss.omp_set_num_threads(threads[0])
    return result


# -- embedding --------------------------------------------------------------------------


@dataclass
class EmbeddingResult:
    texts: str
    batch: int
    calls: int
    sentences: int
    mean_tokens: float
    seconds: float
    sentences_per_s: float
    tokens_per_s: float
    call_ms: Latency
    others_cores: float


def bitext_rows(data: Path) -> list[dict[str, str]]:
    """The Bitext CSV's rows with ``\\n`` line ends (read in place, never copied)."""
    csv_path = data if data.is_file() else next(iter(sorted(data.glob("*.csv"))), None)
    if csv_path is None:
        raise SystemExit(f"no CSV file in {data}")
    with csv_path.open(newline="", encoding="utf-8") as fh:  # responses hold \r\n line ends
        return [{k: v.replace("\r\n", "\n") for k, v in row.items()} for row in csv.DictReader(fh)]


def measure_embedding(
    embedder: Embedder, label: str, texts: Sequence[str], batch: int, warmup_calls: int = 2
) -> EmbeddingResult:
    """Embed ``texts`` ``batch`` at a time (one ``embed_sync`` call per batch)."""
    batches = [list(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    for warm in batches[:warmup_calls]:
        embedder.embed_sync(warm)
    millis = []
    before = CpuSnapshot.now()
    for chunk in batches:
        call_started = time.perf_counter_ns()
        embedder.embed_sync(chunk)
        millis.append((time.perf_counter_ns() - call_started) / 1e6)
    after = CpuSnapshot.now()
    seconds = after.wall - before.wall
    tokens = [min(t, embedder.max_tokens) for t in embedder.count_tokens_sync(texts)]
    result = EmbeddingResult(
        texts=label,
        batch=batch,
        calls=len(batches),
        sentences=len(texts),
        mean_tokens=float(np.mean(tokens)),
        seconds=seconds,
        sentences_per_s=len(texts) / seconds,
        tokens_per_s=sum(tokens) / seconds,
        call_ms=Latency.of(millis),
        others_cores=background_cores(before),
    )
    log.info(
        "  %-28s batch %3d: %7.1f sentences/s, %8.0f tokens/s, %.1f ms/call p50, others %.2f",
        label,
        batch,
        result.sentences_per_s,
        result.tokens_per_s,
        result.call_ms.p50_ms,
        result.others_cores,
    )
    return result


def bench_embedding(
    embedder: Embedder, rows: list[dict[str, str]], args: argparse.Namespace
) -> list[EmbeddingResult]:
    """Customer instructions (the query path) and responses (what a reindex embeds)."""
    rng = random.Random(args.seed)
    instructions = sorted({r["instruction"].strip() for r in rows} - {""})
    responses = sorted({r["response"].strip() for r in rows} - {""})
    single = rng.sample(instructions, args.embed_single)
    batched = rng.sample(instructions, args.embed_batched)
    articles = rng.sample(responses, args.embed_articles)
    paragraphs = [a.split("\n\n")[0] for a in articles]
    wait_for_idle(args.wait_idle, args.idle_threshold)
    return [
        measure_embedding(embedder, "instructions", single, 1),
        measure_embedding(embedder, "instructions", batched, 64),
        measure_embedding(embedder, "response first paragraphs", paragraphs, 16),
        measure_embedding(embedder, "whole responses", articles, 16),
        measure_embedding(embedder, "whole responses", articles, 64),
    ]


# -- reindex ----------------------------------------------------------------------------


@dataclass
class ReindexRun:
    label: str
    report: dict[str, Any]
    seconds: float
    others_cores: float


def kb_documents(rows: list[dict[str, str]], count: int, text: str, seed: int) -> list[Document]:
    """``count`` documents: Bitext responses (whole, or first paragraph) under instruction titles.

    Rows are reused when ``count`` exceeds the dataset (4,514 rows); each document gets its
    own id and an instruction title drawn from another row, so titles vary as well.
    """
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    titles = [rows[i]["instruction"].strip() for i in order]
    docs = []
    for i in range(count):
        row = rows[order[i % len(rows)]]
        body = row["response"].strip()
        if text == "paragraph":
            body = body.split("\n\n")[0]
        docs.append(
            Document(
                doc_id=f"{row['category'].lower()}/{row['intent']}/{i:05d}",
                text=body,
                title=titles[(i * 7 + 3) % len(titles)],
                format=DocumentFormat.TEXT,
            )
        )
    return docs


def bench_reindex(
    embedder: Embedder, rows: list[dict[str, str]], args: argparse.Namespace
) -> tuple[list[ReindexRun], dict[str, bool]]:
    """First build, no-op incremental, 1-document incremental and full reindex of one KB."""
    docs = kb_documents(rows, args.kb_docs, args.kb_text, args.seed)
    runs: list[ReindexRun] = []
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        root = Path(tmp)
        engine = create_database_engine(f"sqlite:///{root / 'bench.sqlite3'}")
        create_schema(engine)
        kb = KnowledgeBase(root / "retrieval", DocumentStore(engine), embedder)
        try:
            for start in range(0, len(docs), 1000):
                kb.put_documents(TENANT, docs[start : start + 1000])

            def timed(label: str, mode: ReindexMode) -> ReindexReport:
                wait_for_idle(args.wait_idle, args.idle_threshold)
                log.info("reindex: %s (%s)", label, mode)
                before = CpuSnapshot.now()
                report = kb.reindex(TENANT, mode)
                others = background_cores(before)
                runs.append(ReindexRun(label, report.as_dict(), report.seconds, others))
                log.info("  %s", report.as_dict())
                return report

            first = timed("first build (empty index)", ReindexMode.INCREMENTAL)
            checks["first build embedded every document"] = first.embedded_documents == len(docs)
            noop = timed("incremental, nothing changed", ReindexMode.INCREMENTAL)
            checks["no-op incremental embedded nothing"] = noop.embedded_documents == 0
            edited = docs[len(docs) // 2]
            kb.put_documents(
                TENANT,
                [dataclasses.replace(edited, text=edited.text + " Updated: our hours changed.")],
            )
            one = timed("incremental, 1 document edited", ReindexMode.INCREMENTAL)
            checks["incremental after 1 edit embedded exactly 1 document"] = (
                one.embedded_documents == 1
            )
            full = timed("full reindex", ReindexMode.FULL)
            checks["full reindex embedded every document"] = full.embedded_documents == len(docs)
        finally:
            kb.shutdown()
            engine.dispose()
    return runs, checks


# -- realism of the synthetic vectors ---------------------------------------------------


@dataclass
class RealismResult:
    """IVF recall@10 against nprobe on real embeddings and on the mixture, same size."""

    texts: int
    nlist: int
    default_nprobe: int
    embed_s: float | None  # None when the vectors came from the cache
    cosine: dict[str, dict[str, float]]
    recall: dict[str, dict[int, float]]


def real_texts(data_root: Path) -> list[str]:
    """Short support-like texts in ../shared/data: Bitext instructions and response
    paragraphs, Banking77 queries, TweetEval tweets; distinct, over 10 characters, shuffled."""
    texts: set[str] = set()
    for row in bitext_rows(data_root / "bitext-customer-support"):
        texts.add(row["instruction"].strip())
        texts.update(p.strip() for p in row["response"].split("\n\n"))
    for split in ("train", "test"):
        with (data_root / "banking77" / f"{split}.csv").open(newline="", encoding="utf-8") as fh:
            texts.update(row["text"].strip() for row in csv.DictReader(fh))
    for path in data_root.glob("tweeteval/*/*_text.txt"):
        texts.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    ordered = sorted(t for t in texts if len(t) > 10)
    random.Random(0).shuffle(ordered)
    return ordered


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


def bench_realism(embedder: Embedder, mixture: Mixture, args: argparse.Namespace) -> RealismResult:
    """Compare the mixture with real all-MiniLM-L6-v2 embeddings of ../shared/data texts.

    The texts (about 48k) are embedded once and cached in bench/out (about 4 minutes on
    two idle cores); 300 of them are the queries, the rest the collection.
    """
    texts = real_texts(args.data.parent)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    cache = OUT_DIR / f"realism-{embedder.model_name}-{digest}.npy"
    embed_s = None
    if cache.exists():
        real = np.load(cache)
        log.info("realism: %d cached vectors from %s", real.shape[0], cache)
    else:
        log.info("realism: embedding %d texts (cached in %s afterwards)", len(texts), cache)
        started = time.perf_counter()
        real = np.concatenate(
            [embedder.embed_sync(texts[i : i + 1024]) for i in range(0, len(texts), 1024)]
        )
        embed_s = time.perf_counter() - started
        np.save(cache, real)
    queries, vectors = real[: args.queries], real[args.queries :]
    n = vectors.shape[0]
    layout = ivf_layout_for(n)
    synthetic = mixture.sample(n, stream=n), mixture.sample(args.queries, stream=1)
    cosine, recall = {}, {}
    for name, (vecs, qs) in {"real": (vectors, queries), "synthetic": synthetic}.items():
        top, _ = exact_top_k(vecs, qs, K)
        sample = vecs[np.random.default_rng(args.seed).integers(0, n, qs.shape[0])]
        cosine[name] = {
            "top1": float(top[:, 0].mean()),
            "top10": float(top[:, K - 1].mean()),
            "random": float(np.mean(np.sum(qs * sample, axis=1))),
        }
        recall[name] = recall_by_nprobe(vecs, qs, layout)
        log.info("realism: %s %s recall by nprobe %s", name, cosine[name], recall[name])
    return RealismResult(len(texts), layout.nlist, layout.nprobe, embed_s, cosine, recall)


def realism_rows(result: RealismResult) -> list[Row]:
    """One row per nprobe: recall@10 of real and synthetic vectors under the same layout."""
    rows: list[Row] = [["nprobe", "lists probed", "real recall@10", "synthetic recall@10"]]
    for nprobe, real in result.recall["real"].items():
        default = " (default)" if nprobe == result.default_nprobe else ""
        rows.append(
            [
                f"{nprobe}{default}",
                f"{100 * nprobe / result.nlist:.1f}%",
                f"{real:.3f}",
                f"{result.recall['synthetic'][nprobe]:.3f}",
            ]
        )
    return rows


# -- report -----------------------------------------------------------------------------


Row = list[str]


def format_table(rows: list[Row], markdown: bool) -> str:
    """Rows (the first is the header) as aligned text or a markdown table.

    A column is right-aligned when every body cell in it looks like a number.
    """
    numeric = [
        all(_looks_numeric(row[i]) for row in rows[1:] if row[i]) for i in range(len(rows[0]))
    ]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---:" if num else "---" for num in numeric) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _looks_numeric(cell: str) -> bool:
    stripped = cell.replace(",", "").replace("x", "").replace("%", "").strip()
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _ratio(numerator: float, denominator: float) -> str:
    if not denominator:
        return ""
    ratio = numerator / denominator
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2f}x"


def search_rows(sizes: list[SizeResult]) -> list[Row]:
    """One row per (size, index, filter), latency columns per FAISS thread count.

    The ratio compares p50 with exact flat search under the same filter, both at the
    first (default) thread count; "others' cores" is the most any variant saw.
    """
    threads: list[int] = []
    for size in sizes:
        for case in size.cases:
            if case.role != "reference" and case.faiss_threads not in threads:
                threads.append(case.faiss_threads)
    header = ["chunks", "index (nlist/nprobe)", "filter", "build s"]
    header += [f"p50 ms, {t} thr" for t in threads] + [f"p99 ms, {t} thr" for t in threads]
    header += ["recall@10", "results/query", f"p50 vs exact flat ({threads[0]} thr)"]
    rows: list[Row] = [[*header, "others' cores"]]
    for size in sizes:
        groups: dict[tuple[str, str, str], dict[int, SearchCase]] = {}
        for case in size.cases:
            groups.setdefault((case.role, case.index, case.filter), {})[case.faiss_threads] = case
        exact = {
            case.filter_kind: case.latency.p50_ms
            for case in size.cases
            if case.role == "exact" and case.faiss_threads == threads[0]
        }
        for (role, index, filt), variants in groups.items():
            first = next(iter(variants.values()))
            build = ""
            if first.filter_kind == "none" and role == "chosen":
                build = f"{size.build_s:.1f}"
            elif first.filter_kind == "none" and role == "exact" and size.flat_build_s:
                build = f"{size.flat_build_s:.1f}"
            base = exact.get(first.filter_kind.replace(", exhaustive", ""))
            lead = variants.get(threads[0], first)
            p50 = [_ms(variants[t].latency.p50_ms) if t in variants else "" for t in threads]
            p99 = [_ms(variants[t].latency.p99_ms) if t in variants else "" for t in threads]
            if role == "reference":  # numpy: FAISS threads do not apply
                p50 = [_ms(first.latency.p50_ms)] + [""] * (len(threads) - 1)
                p99 = [_ms(first.latency.p99_ms)] + [""] * (len(threads) - 1)
            rows.append(
                [
                    f"{size.chunks:,}",
                    index,
                    filt,
                    build,
                    *p50,
                    *p99,
                    f"{lead.recall_at_10:.3f}",
                    f"{lead.results_per_query:.1f}",
                    _ratio(lead.latency.p50_ms, base) if base and role != "exact" else "",
                    f"{max(v.others_cores for v in variants.values()):.2f}",
                ]
            )
    return rows


def sweep_rows(sizes: list[SizeResult]) -> list[Row]:
    rows: list[Row] = [
        [
            "chunks",
            "nlist",
            "nprobe",
            "lists probed",
            "p50 ms",
            "p99 ms",
            "recall@10",
            "others' cores",
        ]
    ]
    for size in sizes:
        for point in size.sweep:
            default = " (default)" if point.nprobe == size.layout["nprobe"] else ""
            rows.append(
                [
                    f"{size.chunks:,}",
                    str(size.layout["nlist"]),
                    f"{point.nprobe}{default}",
                    f"{100 * point.nprobe / size.layout['nlist']:.1f}%",
                    _ms(point.latency.p50_ms),
                    _ms(point.latency.p99_ms),
                    f"{point.recall_at_10:.3f}",
                    f"{point.others_cores:.2f}",
                ]
            )
    return rows


def embedding_rows(results: list[EmbeddingResult]) -> list[Row]:
    rows: list[Row] = [
        [
            "texts",
            "batch",
            "sentences",
            "mean tokens",
            "sentences/s",
            "tokens/s",
            "ms/call p50",
            "others' cores",
        ]
    ]
    for r in results:
        rows.append(
            [
                r.texts,
                str(r.batch),
                str(r.sentences),
                f"{r.mean_tokens:.0f}",
                f"{r.sentences_per_s:.1f}",
                f"{r.tokens_per_s:,.0f}",
                _ms(r.call_ms.p50_ms),
                f"{r.others_cores:.2f}",
            ]
        )
    return rows


def reindex_rows(runs: list[ReindexRun]) -> list[Row]:
    rows: list[Row] = [
        [
            "run",
            "mode",
            "documents",
            "embedded",
            "chunks",
            "seconds",
            "embedded docs/s",
            "full reindex time / this",
            "others' cores",
        ]
    ]
    full = next((r.seconds for r in runs if r.report["mode"] == "full"), 0.0)
    for run in runs:
        rep = run.report
        rows.append(
            [
                run.label,
                rep["mode"],
                f"{rep['documents']:,}",
                f"{rep['embedded_documents']:,}",
                f"{rep['chunks']:,}",
                f"{run.seconds:.2f}",
                f"{rep['documents_per_second']:.1f}",
                _ratio(full, run.seconds) if run.seconds >= 0.001 else "",
                f"{run.others_cores:.2f}",
            ]
        )
    return rows


def plot(sizes: list[SizeResult], path: Path) -> bool:
    """Latency and recall against collection size (and the nprobe sweep if there is one)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dev dependency
        log.warning("matplotlib missing: no plot")
        return False
    sweeps = [s for s in sizes if s.sweep]
    panels = 3 if sweeps else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5))
    series: dict[tuple[str, str, str], list[tuple[int, SearchCase]]] = {}
    for size in sizes:
        first_threads = size.cases[0].faiss_threads
        for case in size.cases:
            threads = ""
            if case.faiss_threads != first_threads and case.role != "reference":
                if case.filter_kind != "none":
                    continue  # other thread counts: only the unfiltered search, to stay legible
                threads = f", {case.faiss_threads} thread{'s' if case.faiss_threads > 1 else ''}"
            roles = [case.role]
            if case.role == "chosen" and size.layout["kind"] == "flat":
                roles.append("exact")  # below FLAT_MAX_VECTORS the chosen index is exact
            for role in roles:
                key = (role, case.filter_kind, threads)
                series.setdefault(key, []).append((size.chunks, case))
    styles = {"chosen": "-", "exact": "--", "reference": ":"}
    names = {"chosen": "plan_layout", "exact": "exact flat", "reference": "numpy rows"}
    for (role, kind, threads), points in sorted(series.items()):
        xs = [n for n, _ in points]
        label = f"{names[role]}, {kind}{threads}"
        style = {"linestyle": styles[role], "marker": "o", "label": label}
        axes[0].plot(xs, [c.latency.p50_ms for _, c in points], **style)
        if role != "exact" and not threads:
            axes[1].plot(xs, [c.recall_at_10 for _, c in points], **style)
    axes[0].set(xscale="log", yscale="log", xlabel="chunks", ylabel="single-query p50 (ms)")
    default_threads = sizes[0].cases[0].faiss_threads
    axes[0].set_title(f"search latency, one query per call ({default_threads} FAISS threads)")
    axes[1].set(xscale="log", xlabel="chunks", ylabel="recall@10 vs exact", ylim=(0, 1.05))
    axes[1].set_title("recall@10")
    for ax in axes[:2]:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if sweeps:
        for size in sweeps:
            axes[2].plot(
                [p.latency.p50_ms for p in size.sweep],
                [p.recall_at_10 for p in size.sweep],
                marker="o",
                label=f"{size.chunks:,} chunks, nlist {size.layout['nlist']}",
            )
            for p in size.sweep:
                axes[2].annotate(str(p.nprobe), (p.latency.p50_ms, p.recall_at_10), fontsize=7)
        axes[2].set(xscale="log", xlabel="p50 ms", ylabel="recall@10")
        axes[2].set_title("IVF nprobe sweep")
        axes[2].grid(True, which="both", alpha=0.3)
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- main -------------------------------------------------------------------------------

PARTS = ("search", "embedding", "reindex")
OPTIONAL_PARTS = ("realism",)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated, from {PARTS + OPTIONAL_PARTS} (default: all but realism)",
    )
    parser.add_argument(
        "--sizes", default=None, help="collection sizes (default 10000,100000,1000000)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and counts (smoke run)")
    parser.add_argument("--queries", type=int, default=None, help="timed queries per case (300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries per case")
    parser.add_argument("--allowed", type=int, default=100, help="ids in the allowed= filter")
    parser.add_argument("--excluded-fraction", type=float, default=0.01, help="excluded= share")
    parser.add_argument(
        "--faiss-threads",
        default=None,
        help="comma-separated FAISS OpenMP thread counts to search with, the first also "
        "builds (default: FAISS's default, then 1 if that is more)",
    )
    parser.add_argument("--sweep", action="store_true", help="always sweep IVF nprobe")
    parser.add_argument(
        "--sweep-below", type=float, default=0.9, help="sweep nprobe when recall@10 is below this"
    )
    parser.add_argument("--centers", type=int, default=2048, help="mixture centres")
    parser.add_argument("--topics", type=int, default=64, help="mixture topics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="embedding model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Bitext folder or CSV")
    parser.add_argument("--embed-single", type=int, default=None, help="sentences at batch 1 (200)")
    parser.add_argument(
        "--embed-batched", type=int, default=None, help="sentences at batch 64 (1024)"
    )
    parser.add_argument(
        "--embed-articles", type=int, default=None, help="responses per batch size (256)"
    )
    parser.add_argument("--kb-docs", type=int, default=None, help="documents in the KB (10000)")
    parser.add_argument(
        "--kb-text",
        choices=("paragraph", "response"),
        default="paragraph",
        help="document text: a response's first paragraph (default) or the whole response",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each part, wait up to this many seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--idle-threshold", type=float, default=0.2, help="cores others may use and count as idle"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args(argv)
    defaults = {
        "sizes": ("10000,100000,1000000", "10000,100000"),
        "queries": (300, 100),
        "embed_single": (200, 20),
        "embed_batched": (1024, 128),
        "embed_articles": (256, 32),
        "kb_docs": (10_000, 500),
    }
    for name, (full, quick) in defaults.items():  # --quick shrinks what was not given
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.faiss_threads is None:
        default_threads = faiss.omp_get_max_threads()
        args.faiss_threads = ",".join(str(t) for t in sorted({default_threads, 1}, reverse=True))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS + OPTIONAL_PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {PARTS + OPTIONAL_PARTS}")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    info = describe_machine(
        faiss=("faiss-cpu",),
        numpy=("numpy",),
        torch=("torch",),
        sentence_transformers=("sentence-transformers",),
    )
    info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    started = time.perf_counter()
    load_start = load_average()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")

    mixture = Mixture(topics=args.topics, centers=args.centers, seed=args.seed)
    size_results: list[SizeResult] = []
    if "search" in parts:
        for n in sizes:
            size_results.append(bench_size(n, args, mixture))
    embed_results: list[EmbeddingResult] = []
    reindex_runs: list[ReindexRun] = []
    checks: dict[str, bool] = {}
    realism: RealismResult | None = None
    embedder: Embedder | None = None
    if {"embedding", "reindex", "realism"} & set(parts):
        rows = bitext_rows(args.data)
        embedder = Embedder(EmbedderConfig(args.model))
        embedder.warm_up()
        if "embedding" in parts:
            log.info("embedding: %s on %s", embedder.model_name, embedder.device)
            embed_results = bench_embedding(embedder, rows, args)
        if "reindex" in parts:
            reindex_runs, checks = bench_reindex(embedder, rows, args)
        if "realism" in parts:
            realism = bench_realism(embedder, mixture, args)
        embedder.shutdown()
    total_s = time.perf_counter() - started

    head = [
        "Retrieval speed (bench/retrieval_speed.py)",
        f"CPU: {info['cpu_model']} ({info['cpus_usable']}/{info['cpu_count']} usable), no GPU; "
        f"python {info['python']}, faiss {info['faiss']} ({info['faiss_omp_threads']} OpenMP "
        f"threads), torch {info['torch']}, sentence-transformers {info['sentence_transformers']}",
        f"load average at start {load_start:.2f}, at end {load_average():.2f}; "
        f"total {total_s:.0f} s",
    ]
    sections: list[tuple[str, list[Row]]] = []
    notes: list[str] = []
    if size_results:
        sections.append(("Vector search, one query per call, k=10", search_rows(size_results)))
        notes += [
            f"{s.chunks:,} chunks: query-to-neighbour cosine top-1 "
            f"{s.neighbour_cosine['top1']:.3f}, 10th {s.neighbour_cosine['top10']:.3f}, "
            f"random {s.neighbour_cosine['random']:.3f}; excluded= selector build "
            f"{s.excluded_selector_ms:.3f} ms per search; other processes used "
            f"{s.build_others_cores:.2f} cores during the build"
            for s in size_results
        ]
        if any(s.sweep for s in size_results):
            sections.append(("IVF nprobe sweep (no filter)", sweep_rows(size_results)))
    if embed_results:
        sections.append((f"Embedding ({args.model}, embed_sync)", embedding_rows(embed_results)))
    if reindex_runs:
        sections.append(
            (
                f"KB reindex ({args.kb_docs:,} documents, Bitext {args.kb_text}s)",
                reindex_rows(reindex_runs),
            )
        )
        notes += [f"check {'passed' if ok else 'FAILED'}: {name}" for name, ok in checks.items()]
    if realism:
        title = (
            f"Synthetic vs real vectors: IVF nlist {realism.nlist} (nprobe {realism.default_nprobe}"
            f" by default) over {realism.texts - args.queries:,} vectors, {args.queries} queries"
        )
        sections.append((title, realism_rows(realism)))
        notes += [
            f"{name} vectors: query-to-neighbour cosine top-1 {cos['top1']:.3f}, "
            f"10th {cos['top10']:.3f}, random {cos['random']:.3f}"
            for name, cos in realism.cosine.items()
        ]

    text = [*head, ""]
    markdown = ["  \n".join(head), ""]
    for title, table in sections:
        text += [title, format_table(table, markdown=False), ""]
        markdown += [f"**{title}**", "", format_table(table, markdown=True), ""]
    text += notes
    markdown += [f"- {note}" for note in notes]

    json_path = OUT_DIR / f"retrieval-speed-{stamp}.json"
    png_path = OUT_DIR / f"retrieval-speed-{stamp}.png"
    md_path = args.markdown or OUT_DIR / f"retrieval-speed-{stamp}.md"
    raw = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "flat_max_vectors": FLAT_MAX_VECTORS,
        "mixture": asdict(mixture),
        "total_s": total_s,
        "search": [asdict(s) for s in size_results],
        "embedding": [asdict(e) for e in embed_results],
        "reindex": [asdict(r) for r in reindex_runs],
        "checks": checks,
        "realism": asdict(realism) if realism else None,
    }
    json_path.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(markdown) + "\n", encoding="utf-8")
    written = [json_path, md_path]
    if size_results and plot(size_results, png_path):
        written.append(png_path)
    sys.stdout.write("\n".join(text) + "\n\n")
    sys.stdout.write("".join(f"wrote {path}\n" for path in written))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
