"""Retrieval quality of the KB search path on Bitext, and intent accuracy on Banking77.

The question this answers: how often does the product's own KB search
(``retrieval.knowledge.KnowledgeBase``: document store, chunking, field vectors, FAISS,
BM25, fusion) put the right article first for a real customer request?

* Bitext customer support: the KB holds one canonical answer per intent (the first
  row's ``response`` of each of the 27 intents, ``doc_id`` = the intent); every one of
  the 4,514 instructions is a query and a hit is its own intent's document. Documents
  are ranked by their best chunk. Two KB variants are measured:

  - "response only": no titles, the reference construct (dense-only cosine over the
    responses measured Recall@1 0.721, Recall@3 0.911);
  - "titled": title = the intent name with ``_`` as spaces ("track refund"). These
    titles are the benchmark's label vocabulary, so this variant says what titles
    written in the customers' words are worth, at best.

  Methods: dense with ``title_weight`` 0 and the default, BM25 only, hybrid with the
  default configuration, and hybrid with reciprocal rank fusion.
* Banking77: a logistic regression (C chosen on a split of train, never on test) and
  a 1-nearest-neighbour classifier over the same sentence embeddings, scored on test.

    .venv/bin/python -m bench.retrieval_quality
    .venv/bin/python -m bench.retrieval_quality --limit 300 --no-banking77  # smoke

Raw results go to bench/out/retrieval_quality.json and a bar chart next to it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.lib.bitext_kb import VARIANTS, KbVariant, kb_documents, load_bitext, ranked_documents
from bench.lib.data import load_banking77
from bench.lib.kb_store import scratch_store
from bench.lib.machine import describe_machine
from bench.lib.paths import OUT_DIR, SHARED_DATA
from bench.lib.report import pyplot, raw_args, save_figure, start_run, write_json
from bench.lib.stats import classification_scores
from models.embedder import Embedder, EmbedderConfig
from retrieval.knowledge import Fusion, KnowledgeBase, RetrievalConfig, SearchMode

log = logging.getLogger("bench.retrieval_quality")

EMBEDDING_MODEL = "all-minilm-l6-v2"

REFERENCE_RECALL_AT_1 = 0.721  # dense-only cosine, response-only KB (the reference)
REFERENCE_RECALL_AT_3 = 0.911
TARGET_RECALL_AT_1 = 0.85  # for the default configuration
REFERENCE_BANKING77_ACCURACY = 0.930
C_GRID = (1.0, 4.0, 16.0, 64.0)


@dataclass(frozen=True)
class Method:
    """A search mode and the configuration the KB is built and searched with."""

    label: str
    mode: SearchMode
    config: RetrievalConfig

    @property
    def is_default(self) -> bool:
        """Whether this is what the product does when nothing is configured."""
        defaults = RetrievalConfig()
        return self.config == defaults and self.mode is defaults.default_mode


@dataclass
class MethodResult:
    """Ranking quality of one (KB variant, method) pair over all queries."""

    variant: str
    method: str
    mode: str
    default: bool
    config: dict[str, Any]
    queries: int
    recall_at_1: float
    recall_at_3: float
    mrr: float
    not_ranked: int  # queries whose intent was not among the returned documents
    search_s: float
    per_intent_recall_at_1: dict[str, float] = field(default_factory=dict)
    database: str = "sqlite"
    """Where the KB index lived: version files (sqlite) or the shared rows (postgresql)."""


def methods() -> list[Method]:
    """The compared methods; the hybrid rows take the product's defaults where not set."""
    defaults = RetrievalConfig()
    return [
        Method("dense, title_weight 0", SearchMode.DENSE, replace(defaults, title_weight=0.0)),
        Method(f"dense, title_weight {defaults.title_weight:g}", SearchMode.DENSE, defaults),
        Method("BM25 only", SearchMode.LEXICAL, defaults),
        Method(
            f"hybrid {defaults.fusion} (lexical_weight {defaults.lexical_weight:g})",
            SearchMode.HYBRID,
            defaults,
        ),
        Method(
            "hybrid rrf (k 60, lexical_weight 1)",
            SearchMode.HYBRID,
            replace(defaults, fusion=Fusion.RRF, rrf_k=60, lexical_weight=1.0),
        ),
    ]


# ---------------------------------------------------------------- retrieval


def evaluate(
    kb: KnowledgeBase,
    tenant: str,
    method: Method,
    queries: Sequence[str],
    vectors: npt.NDArray[np.float32],
    intents: Sequence[str],
    top_k: int,
) -> tuple[list[int | None], float]:
    """The 1-based rank of each query's own intent (None: not returned), and the seconds."""
    ranks: list[int | None] = []
    started = time.perf_counter()
    for query, vector, intent in zip(queries, vectors, intents, strict=True):
        ranked = ranked_documents(
            kb,
            tenant,
            query,
            None if method.mode is SearchMode.LEXICAL else vector,
            method.mode,
            top_k,
        )
        ranks.append(ranked.index(intent) + 1 if intent in ranked else None)
    return ranks, time.perf_counter() - started


def summarize(
    variant: KbVariant,
    method: Method,
    ranks: Sequence[int | None],
    intents: Sequence[str],
    search_s: float,
) -> MethodResult:
    def recall(k: int, subset: Sequence[int | None]) -> float:
        return sum(1 for r in subset if r is not None and r <= k) / len(subset)

    per_intent: dict[str, list[int | None]] = {}
    for rank, intent in zip(ranks, intents, strict=True):
        per_intent.setdefault(intent, []).append(rank)
    config = asdict(method.config)
    return MethodResult(
        variant=variant.label,
        method=method.label,
        mode=str(method.mode),
        default=method.is_default,
        config={k: str(v) if not isinstance(v, int | float) else v for k, v in config.items()},
        queries=len(ranks),
        recall_at_1=recall(1, ranks),
        recall_at_3=recall(3, ranks),
        mrr=sum(1 / r for r in ranks if r is not None) / len(ranks),
        not_ranked=sum(1 for r in ranks if r is None),
        search_s=search_s,
        per_intent_recall_at_1={i: round(recall(1, rs), 4) for i, rs in sorted(per_intent.items())},
    )


def run_retrieval(
    data: Path, embedder: Embedder, limit: int | None, database: str = "sqlite"
) -> tuple[list[MethodResult], dict[str, Any]]:
    """Build every KB through the product path, query it with every instruction."""
    canonical, queries, intents = load_bitext(data)
    if limit is not None:
        step = max(1, len(queries) // limit)  # spread over all intents, not the first few
        queries, intents = queries[::step][:limit], intents[::step][:limit]
    timing: dict[str, Any] = {"reindex_s": {}}
    started = time.perf_counter()
    vectors = embedder.embed_sync(queries)
    timing["embed_queries_s"] = time.perf_counter() - started
    log.info("embedded %d queries in %.1f s", len(queries), timing["embed_queries_s"])
    results: list[MethodResult] = []
    built: dict[str, int] = {}  # tenant -> chunks
    with scratch_store(database) as (root, store):
        for variant in VARIANTS:
            for method in methods():
                # title_weight is baked into the vectors: one tenant (index) per weight
                weight = round(method.config.title_weight * 100)
                tenant = f"{variant.key}-tw{weight:03d}"
                kb = KnowledgeBase(root / "retrieval", store, embedder, method.config)
                try:
                    if tenant not in built:
                        kb.put_documents(tenant, kb_documents(canonical, variant))
                        report = kb.reindex(tenant)
                        built[tenant] = report.chunks
                        timing["reindex_s"][tenant] = report.seconds
                        log.info("%s: %s", tenant, report.as_dict())
                    ranks, seconds = evaluate(
                        kb, tenant, method, queries, vectors, intents, built[tenant]
                    )
                finally:
                    kb.shutdown()
                result = replace(
                    summarize(variant, method, ranks, intents, seconds), database=database
                )
                log.info(
                    "%s / %s: R@1 %.3f R@3 %.3f MRR %.3f (%.1f s)",
                    variant.label,
                    method.label,
                    result.recall_at_1,
                    result.recall_at_3,
                    result.mrr,
                    seconds,
                )
                results.append(result)
    return results, {
        "documents": len(canonical),
        "queries": len(queries),
        "chunks": built,
        "timing": timing,
    }


# ---------------------------------------------------------------- banking77


def run_banking77(data: Path, embedder: Embedder, seed: int) -> dict[str, Any]:
    """Logistic regression (C tuned on a train split) and 1-NN over sentence embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    train_texts, train_labels = load_banking77(data, "train")
    test_texts, test_labels = load_banking77(data, "test")
    started = time.perf_counter()
    train_x = embedder.embed_sync(train_texts, purpose="document")
    test_x = embedder.embed_sync(test_texts, purpose="document")
    embed_s = time.perf_counter() - started
    log.info("banking77: embedded %d texts in %.1f s", len(train_texts) + len(test_texts), embed_s)
    train_y = np.array(train_labels)

    fit_x, val_x, fit_y, val_y = train_test_split(
        train_x, train_y, test_size=0.1, stratify=train_y, random_state=seed
    )
    validation: dict[str, float] = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(fit_x, fit_y)
        validation[f"{c:g}"] = float(accuracy_score(val_y, model.predict(val_x)))
        log.info("banking77: C=%g validation accuracy %.4f", c, validation[f"{c:g}"])
    best_c = max(C_GRID, key=lambda c: (validation[f"{c:g}"], -c))
    started = time.perf_counter()
    model = LogisticRegression(C=best_c, max_iter=2000)
    model.fit(train_x, train_y)
    fit_s = time.perf_counter() - started
    predicted = model.predict(test_x)
    nearest = train_y[np.argmax(test_x @ train_x.T, axis=1)]  # unit vectors: cosine
    return {
        "train": len(train_texts),
        "test": len(test_texts),
        "classes": len(set(train_labels)),
        "embed_s": embed_s,
        "validation_accuracy_by_c": validation,
        "best_c": best_c,
        "fit_s": fit_s,
        "converged": bool(np.all(np.asarray(model.n_iter_) < model.max_iter)),
        "logistic_regression": classification_scores(test_labels, list(predicted)),
        "nearest_neighbour": classification_scores(test_labels, list(nearest)),
        "reference_accuracy": REFERENCE_BANKING77_ACCURACY,
    }


# ---------------------------------------------------------------- report


def _versus(value: float, reference: float) -> str:
    return f"{value - reference:+.3f} ({value / reference:.2f}x)"


INDEX_KINDS = {"sqlite": "files: FAISS + bm25s", "postgresql": "PostgreSQL: pgvector + BM25 in SQL"}


def retrieval_table(results: Sequence[MethodResult]) -> str:
    head = (
        "| index | KB | method | R@1 | R@3 | MRR | R@1 vs 0.721 | R@3 vs 0.911 | not ranked "
        "| default |\n|---|---|---|---:|---:|---:|---:|---:|---:|:---:|"
    )
    lines = [head]
    for r in results:
        lines.append(
            f"| {INDEX_KINDS[r.database]} | {r.variant} | {r.method} | {r.recall_at_1:.3f} | "
            f"{r.recall_at_3:.3f} | "
            f"{r.mrr:.3f} | {_versus(r.recall_at_1, REFERENCE_RECALL_AT_1)} | "
            f"{_versus(r.recall_at_3, REFERENCE_RECALL_AT_3)} | {r.not_ranked} | "
            f"{'**default**' if r.default else ''} |"
        )
    return "\n".join(lines)


def banking_table(banking: dict[str, Any]) -> str:
    lines = [
        "| classifier | accuracy | macro-F1 | vs 0.930 |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("logistic_regression", f"logistic regression (C {banking['best_c']:g})"),
        ("nearest_neighbour", "1-nearest neighbour (cosine)"),
    ):
        scores = banking[key]
        lines.append(
            f"| {label} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} | "
            f"{_versus(scores['accuracy'], REFERENCE_BANKING77_ACCURACY)} |"
        )
    return "\n".join(lines)


def verdict(results: Sequence[MethodResult]) -> list[str]:
    """One line per KB variant: the default configuration against the target."""
    lines = []
    for r in results:
        if r.default:
            status = "meets" if r.recall_at_1 >= TARGET_RECALL_AT_1 else "MISSES"
            lines.append(
                f"- default configuration on the {r.variant} KB: R@1 {r.recall_at_1:.3f} "
                f"{status} the target R@1 >= {TARGET_RECALL_AT_1}"
            )
    return lines


def plot(results: Sequence[MethodResult], path: Path) -> None:
    """Grouped bars of R@1 and R@3 per (KB, method), with the reference and target lines."""
    plt = pyplot()
    if plt is None:
        return
    labels = [
        "\n".join([r.variant, *textwrap.wrap(r.method, 18), *(["[default]"] if r.default else [])])
        for r in results
    ]
    x = np.arange(len(results))
    fig, ax = plt.subplots(figsize=(max(10.0, 1.5 * len(results)), 6.0))
    ax.bar(x - 0.2, [r.recall_at_1 for r in results], 0.4, label="Recall@1")
    ax.bar(x + 0.2, [r.recall_at_3 for r in results], 0.4, label="Recall@3")
    ax.axhline(REFERENCE_RECALL_AT_1, color="C0", ls=":", lw=1, label="reference R@1 0.721")
    ax.axhline(REFERENCE_RECALL_AT_3, color="C1", ls=":", lw=1, label="reference R@3 0.911")
    ax.axhline(TARGET_RECALL_AT_1, color="red", ls="--", lw=1, label="target R@1 0.85")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("recall")
    ax.set_title(
        "Bitext KB retrieval (27 docs, one per intent; 'titled' titles = intent label words)"
    )
    ax.legend(loc="upper center", ncol=5, fontsize=8)
    save_figure(plt, fig, path, dpi=120)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--data", type=Path, default=SHARED_DATA, help="shared data folder (../shared/data)"
    )
    parser.add_argument("--model", default=EMBEDDING_MODEL, help="embedding model name")
    parser.add_argument("--limit", type=int, default=None, help="use only N Bitext queries")
    parser.add_argument("--no-banking77", dest="banking77", action="store_false")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "both"),
        default="sqlite",
        help="where the KB index lives: version files (SQLite, the embedded default), the "
        "rows replicas share (PostgreSQL with pgvector), or both side by side",
    )
    parser.add_argument("--seed", type=int, default=0, help="Banking77 validation split seed")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for JSON and PNG")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_run("bm25s")  # bm25s logs every index build
    started = time.perf_counter()
    embedder = Embedder(EmbedderConfig(args.model))
    try:
        load_started = time.perf_counter()
        embedder.warm_up()
        load_s = time.perf_counter() - load_started
        databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
        results = []
        for database in databases:
            found, info = run_retrieval(args.data, embedder, args.limit, database)
            results += found
        banking = run_banking77(args.data, embedder, args.seed) if args.banking77 else None
    finally:
        embedder.shutdown()
    total_s = time.perf_counter() - started

    head = [
        f"# Retrieval quality ({embedder.model_name} on {embedder.device})",
        "",
        f"Bitext: {info['documents']} documents (first response per intent), "
        f"{info['queries']} queries ({'every instruction' if args.limit is None else 'a sample'}); "
        f"chunks per KB: {info['chunks']}.",
        "A hit: the top-ranked document (by its best chunk) is the query's own intent.",
        "The 'titled' KB titles each document with its intent name ('track refund'): these "
        "titles are the label vocabulary of the benchmark, an optimistic construct.",
        "",
    ]
    body = [retrieval_table(results), "", *verdict(results)]
    if banking is not None:
        body += [
            "",
            f"## Banking77 intent accuracy ({banking['train']} train, {banking['test']} test, "
            f"{banking['classes']} intents; validation accuracy on a 10% split of train, "
            "which picks C: "
            + ", ".join(
                f"C {c}: {acc:.3f}" for c, acc in banking["validation_accuracy_by_c"].items()
            )
            + ")",
            "",
            banking_table(banking),
        ]
    body += ["", f"Run time {total_s:.0f} s (model load {load_s:.1f} s)."]
    sys.stdout.write("\n".join([*head, *body, ""]))

    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "retrieval_quality.json"
    png_path = args.out / "retrieval_quality.png"
    raw = {
        "machine": describe_machine(
            sentence_transformers=("sentence-transformers",),
            torch=("torch",),
            faiss=("faiss-cpu",),
            bm25s=("bm25s",),
            scikit_learn=("scikit-learn",),
        ),
        "args": raw_args(args),
        "embedding_model": embedder.model_name,
        "device": embedder.device,
        "reference": {
            "recall_at_1": REFERENCE_RECALL_AT_1,
            "recall_at_3": REFERENCE_RECALL_AT_3,
            "target_recall_at_1_default": TARGET_RECALL_AT_1,
        },
        "bitext": {**info, "results": [asdict(r) for r in results]},
        "banking77": banking,
        "model_load_s": load_s,
        "total_s": total_s,
    }
    write_json(json_path, raw)
    plot(results, png_path)
    sys.stdout.write(f"\nRaw results: {json_path}\nChart: {png_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
