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
from collections.abc import Sequence
from pathlib import Path

from bench.lib.paths import OUT_DIR
from bench.lib.report import raw_args, shown_command, start_run, write_json
from bench.lib.suite_retrieval import measure_suite
from bench.lib.suites import all_suites, load_suite

log = logging.getLogger("bench.retrieval_suites")


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
