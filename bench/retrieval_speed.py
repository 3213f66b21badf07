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

    .venv/bin/python -m bench.retrieval_speed                     # ~12 min on 2 idle cores
    .venv/bin/python -m bench.retrieval_speed --quick             # smoke run (~2 min)
    .venv/bin/python -m bench.retrieval_speed --parts search --sizes 100000 --sweep
    .venv/bin/python -m bench.retrieval_speed --parts reindex --kb-text response
    .venv/bin/python -m bench.retrieval_speed --parts realism

Raw results go to bench/out/retrieval-speed-<timestamp>.json with a plot (.png) and the
markdown tables (.md) beside them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import faiss

from bench.lib.data import bitext_rows
from bench.lib.embedding_speed import (
    EmbeddingResult,
    RealismResult,
    ReindexRun,
    bench_embedding,
    bench_realism,
    bench_reindex,
)
from bench.lib.machine import describe_machine, load_average
from bench.lib.paths import BITEXT_DIR, OUT_DIR
from bench.lib.report import raw_args, start_run, write_json
from bench.lib.retrieval_report import (
    embedding_rows,
    plot,
    realism_rows,
    reindex_rows,
    render,
    search_rows,
    sweep_rows,
)
from bench.lib.tables import Row
from bench.lib.vector_search import SizeResult, bench_size
from bench.lib.vectors import Mixture
from models.embedder import Embedder, EmbedderConfig
from retrieval.index import FLAT_MAX_VECTORS

log = logging.getLogger("bench.retrieval_speed")

DEFAULT_MODEL = "all-minilm-l6-v2"


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
    parser.add_argument("--data", type=Path, default=BITEXT_DIR, help="Bitext folder or CSV")
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
    stamp = start_run()
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

    text, markdown = render(head, sections, notes)
    json_path = OUT_DIR / f"retrieval-speed-{stamp}.json"
    png_path = OUT_DIR / f"retrieval-speed-{stamp}.png"
    md_path = args.markdown or OUT_DIR / f"retrieval-speed-{stamp}.md"
    raw = {
        "machine": info,
        "args": raw_args(args),
        "flat_max_vectors": FLAT_MAX_VECTORS,
        "mixture": asdict(mixture),
        "total_s": total_s,
        "search": [asdict(s) for s in size_results],
        "embedding": [asdict(e) for e in embed_results],
        "reindex": [asdict(r) for r in reindex_runs],
        "checks": checks,
        "realism": asdict(realism) if realism else None,
    }
    write_json(json_path, raw)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown + "\n", encoding="utf-8")
    written = [json_path, md_path]
    if size_results and plot(size_results, png_path):
        written.append(png_path)
    sys.stdout.write(text + "\n\n")
    sys.stdout.write("".join(f"wrote {path}\n" for path in written))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
