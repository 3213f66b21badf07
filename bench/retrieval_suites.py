"""Does the KB search find the article a suite's scenario expects, with no model involved?

For every suite of ``bench/suites/``: the tenant's KB is ingested into a fresh data
directory with the product's own ``KnowledgeBase`` (chunking, example questions, field
vectors, FAISS, BM25, fusion), then

* every scenario that expects a citation is searched as the reply pipeline searches it:
  the last turn alone, and for a follow-up also with the previous turn before it
  (``server/pipeline/retrieve.py``); a hit is the expected file among the first 1 or 3
  distinct articles;
* every question of ``multilingual.jsonl`` (French and Chinese against English articles)
  is searched the same way, top 3.

It runs in a minute on 2 cores and is the quick check between full answer-benchmark runs
(``make bench-answers``), whose "fact in the prompt" also depends on records and budgets.

    .venv/bin/python -m bench.retrieval_suites
    .venv/bin/python -m bench.retrieval_suites --no-example-questions   # the lever off
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.lib.paths import OUT_DIR
from bench.lib.report import raw_args, shown_command, start_run, write_json
from bench.lib.suites import Suite, all_suites, load_suite

log = logging.getLogger("bench.retrieval_suites")

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


def measure_suite(suite: Suite, data_dir: Path, example_questions: bool) -> dict[str, Any]:
    from retrieval.documents import documents_from_path, strip_front_matter
    from server.config import Settings
    from server.lifespan import build_retrieval
    from server.pipeline.retrieve import follow_up_query, merge_hits

    retrieval = build_retrieval(Settings(data_dir=data_dir))
    knowledge, embedder = retrieval.knowledge, retrieval.embedder
    documents = list(documents_from_path(suite.kb_dir))
    if not example_questions:
        documents = [replace(d, text=strip_front_matter(d.text)) for d in documents]
    knowledge.put_documents(suite.tenant, documents)
    started = time.perf_counter()
    knowledge.reindex(suite.tenant)
    reindex_s = time.perf_counter() - started

    def search(message: str, previous: str | None) -> list[str]:
        vector = embedder.embed_sync([message])[0]
        hits = knowledge.search(suite.tenant, message, vector, POOL)
        context = follow_up_query(previous, message)
        if context is not None:
            in_context = knowledge.search(
                suite.tenant, context, embedder.embed_sync([context])[0], POOL
            )
            hits = merge_hits(hits, in_context, top_k=POOL)
        return articles(hits)

    cited, multilingual = Score(), Score()
    for scenario in suite.scenarios:
        expected = (scenario.get("expect") or {}).get("cite_any_of")
        if not expected:
            continue
        turns = scenario["turns"]
        ranked = search(turns[-1], turns[-2] if len(turns) > 1 else None)
        cited.total += 1
        cited.hits1 += bool(ranked[:1]) and matches(expected, ranked[0])
        hit3 = any(matches(expected, found) for found in ranked[:3])
        cited.hits3 += hit3
        if not ranked[:1] or not matches(expected, ranked[0]):
            cited.misses.append({"id": scenario["id"], "expected": expected, "got": ranked[:3]})
    for question in suite.multilingual:
        ranked = search(question["question"], None)
        multilingual.total += 1
        multilingual.hits1 += bool(ranked[:1]) and matches([question["expect_doc"]], ranked[0])
        hit3 = any(matches([question["expect_doc"]], found) for found in ranked[:3])
        multilingual.hits3 += hit3
        if not hit3:
            multilingual.misses.append(
                {"id": question["id"], "expected": question["expect_doc"], "got": ranked[:3]}
            )
    return {
        "suite": suite.name,
        "documents": len(documents),
        "reindex_s": round(reindex_s, 2),
        "cited": cited,
        "multilingual": multilingual,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", action="append", help="suite name or folder (default: all)")
    parser.add_argument(
        "--no-example-questions", action="store_true", help="strip the articles' front matter"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run("sentence_transformers", "retrieval")
    folders = [Path(s) for s in args.suite] if args.suite else all_suites()
    results = []
    for folder in folders:
        suite = load_suite(folder)
        data_dir = Path(tempfile.mkdtemp(prefix="concierge-retrieval-suites-"))
        try:
            results.append(measure_suite(suite, data_dir, not args.no_example_questions))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    command = shown_command("retrieval_suites", sys.argv[1:] if argv is None else argv)
    print(f"    {command}\n")
    print("| suite | citations expected: right article first | in top 3 | fr/zh in top 3 |")
    print("|---|---|---|---|")
    for r in results:
        c, m = r["cited"], r["multilingual"]
        print(f"| {r['suite']} | {c.rate(c.hits1)} | {c.rate(c.hits3)} | {m.rate(m.hits3)} |")
    for r in results:
        for miss in r["cited"].misses:
            print(f"miss {r['suite']} {miss['id']}: expected {miss['expected']}, got {miss['got']}")
    raw = {
        "args": raw_args(args),
        "results": [
            {**r, "cited": vars(r["cited"]), "multilingual": vars(r["multilingual"])}
            for r in results
        ],
    }
    log.info("raw results in %s", write_json(OUT_DIR / f"retrieval-suites-{stamp}.json", raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
