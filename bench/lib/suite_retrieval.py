"""Searching a suite's KB as the reply pipeline searches it, with no model involved: the
shared half of ``bench/retrieval_suites.py`` and ``bench/embedders.py``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.lib.suites import Suite

POOL = 10


@dataclass
class Score:
    hits1: int = 0
    hits3: int = 0
    total: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, hits: int) -> str:
        return f"{hits}/{self.total} ({hits / self.total:.0%})" if self.total else "-"


def articles(hits: Sequence[Any]) -> list[str]:
    """Distinct document ids in rank order (an FAQ row counts as its file)."""
    ranked: list[str] = []
    for hit in hits:
        name = str(hit.doc_id).split(":", 1)[0]
        if name not in ranked:
            ranked.append(name)
    return ranked


def matches(expected: Sequence[str], found: str) -> bool:
    stem = found.rsplit(".", 1)[0]
    return any(e in (found, stem) or e.rsplit(".", 1)[0] == stem for e in expected)


def suite_knowledge(
    suite: Suite, data_dir: Path, embedder: Any = None, example_questions: bool = True
) -> tuple[Any, Any]:
    """(KnowledgeBase, embedder) over a fresh ``data_dir`` holding the suite's KB, not yet
    reindexed. ``embedder``: any object with the KB's side of ``models.embedder.Embedder``
    (default: the configured one, as the server builds it)."""
    from retrieval.documents import DocumentStore, documents_from_path, strip_front_matter
    from retrieval.knowledge import KnowledgeBase
    from server.config import Settings
    from server.lifespan import build_retrieval, retrieval_config

    settings = Settings(data_dir=data_dir)
    retrieval = build_retrieval(settings)
    knowledge, embedder = retrieval.knowledge, embedder or retrieval.embedder
    if embedder is not retrieval.embedder:
        knowledge = KnowledgeBase(
            data_dir / "retrieval",
            DocumentStore(retrieval.database),
            embedder,
            retrieval_config(settings),
        )
    documents = list(documents_from_path(suite.kb_dir))
    if not example_questions:
        documents = [replace(d, text=strip_front_matter(d.text)) for d in documents]
    knowledge.put_documents(suite.tenant, documents)
    return knowledge, embedder


@dataclass
class SuiteIndex:
    """A suite's KB reindexed once, searched as the reply pipeline searches it."""

    suite: Suite
    knowledge: Any
    embedder: Any
    documents: int
    reindex_s: float

    def search(self, message: str, previous: str | None = None) -> list[str]:
        """Articles in rank order for ``message``, merged with the follow-up query the
        pipeline builds from the ``previous`` turn."""
        from server.pipeline.retrieve import follow_up_query, merge_hits

        tenant, knowledge, embedder = self.suite.tenant, self.knowledge, self.embedder
        hits = knowledge.search(tenant, message, embedder.embed_sync([message])[0], POOL)
        context = follow_up_query(previous, message)
        if context is not None:
            in_context = knowledge.search(tenant, context, embedder.embed_sync([context])[0], POOL)
            hits = merge_hits(hits, in_context, top_k=POOL)
        return articles(hits)


def index_suite(
    suite: Suite, data_dir: Path, example_questions: bool = True, embedder: Any = None
) -> SuiteIndex:
    """The suite's KB put into a fresh ``data_dir`` and reindexed, with the time it took."""
    knowledge, embedder = suite_knowledge(suite, data_dir, embedder, example_questions)
    started = time.perf_counter()
    report = knowledge.reindex(suite.tenant)
    return SuiteIndex(suite, knowledge, embedder, report.documents, time.perf_counter() - started)


def measure_suite(
    suite: Suite, data_dir: Path, example_questions: bool, embedder: Any = None
) -> dict[str, Any]:
    """``score_suite`` over a fresh index of the suite's KB.

    ``embedder``: any object with the KB's side of ``models.embedder.Embedder`` (default:
    the configured one, as the server builds it).
    """
    return score_suite(index_suite(suite, data_dir, example_questions, embedder))


def score_suite(index: SuiteIndex) -> dict[str, Any]:
    """Right article first / in the top 3 for the suite's citations, fr/zh in the top 3."""
    return {
        "suite": index.suite.name,
        "documents": index.documents,
        "reindex_s": round(index.reindex_s, 2),
        "cited": cited_score(index),
        "multilingual": multilingual_score(index),
    }


def cited_score(index: SuiteIndex) -> Score:
    """For each scenario that expects a citation: its last turn, searched with the turn
    before as the pipeline does; a miss is one whose first article is not expected."""
    cited = Score()
    for scenario in index.suite.scenarios:
        expected = (scenario.get("expect") or {}).get("cite_any_of")
        if not expected:
            continue
        turns = scenario["turns"]
        ranked = index.search(turns[-1], turns[-2] if len(turns) > 1 else None)
        cited.total += 1
        cited.hits1 += bool(ranked[:1]) and matches(expected, ranked[0])
        cited.hits3 += any(matches(expected, found) for found in ranked[:3])
        if not ranked[:1] or not matches(expected, ranked[0]):
            cited.misses.append({"id": scenario["id"], "expected": expected, "got": ranked[:3]})
    return cited


def multilingual_score(index: SuiteIndex) -> Score:
    """The suite's French and Chinese questions; a miss is one whose article is not in
    the top 3."""
    multilingual = Score()
    for question in index.suite.multilingual:
        ranked = index.search(question["question"])
        multilingual.total += 1
        multilingual.hits1 += bool(ranked[:1]) and matches([question["expect_doc"]], ranked[0])
        hit3 = any(matches([question["expect_doc"]], found) for found in ranked[:3])
        multilingual.hits3 += hit3
        if not hit3:
            multilingual.misses.append(
                {"id": question["id"], "expected": question["expect_doc"], "got": ranked[:3]}
            )
    return multilingual
