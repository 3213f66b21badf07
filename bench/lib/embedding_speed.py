"""The retrieval benchmark's other parts: embedding throughput, KB reindex (first build,
incremental, full), and how the synthetic vectors compare with real embeddings."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.data import bitext_rows, load_banking77
from bench.lib.kb_store import scratch_store
from bench.lib.machine import CpuSnapshot, background_cores, wait_for_idle
from bench.lib.paths import OUT_DIR
from bench.lib.stats import Latency
from bench.lib.vectors import Mixture, ivf_layout_for, neighbour_cosines, recall_by_nprobe
from models.embedder import Embedder
from retrieval.documents import Document, DocumentFormat
from retrieval.knowledge import KnowledgeBase, ReindexMode, ReindexReport

log = logging.getLogger("bench.embedding_speed")

TENANT = "bench"


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
    with scratch_store() as (root, store):
        kb = KnowledgeBase(root / "retrieval", store, embedder)
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
        texts.update(text.strip() for text in load_banking77(data_root, split)[0])
    for path in data_root.glob("tweeteval/*/*_text.txt"):
        texts.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    ordered = sorted(t for t in texts if len(t) > 10)
    random.Random(0).shuffle(ordered)
    return ordered


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
        cosine[name] = neighbour_cosines(vecs, qs, np.random.default_rng(args.seed))
        recall[name] = recall_by_nprobe(vecs, qs, layout)
        log.info("realism: %s %s recall by nprobe %s", name, cosine[name], recall[name])
    return RealismResult(len(texts), layout.nlist, layout.nprobe, embed_s, cosine, recall)
