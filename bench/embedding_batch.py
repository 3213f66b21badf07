"""How many texts per forward pass should the embedder run on this machine?

sentence-transformers sorts a call's texts by length and pads every batch to its longest
text, so on a CPU, where a padded token costs as much as a real one, a wide batch of
mixed lengths pays for tokens nobody wrote. For each embedder and batch size this times:

* a full reindex of each answer suite's KB (``bench/suites/*/kb``), through the product's
  own KB code: what an admin waits for, and where chunk lengths vary most;
* the hand-labelled support messages (``datasets/support-sentiment``): short texts of
  similar length, as classifier training and history writes embed them;

and checks that the answers do not depend on the batch: the suites' right article first
and French/Chinese questions in the top 3 at every size.

    .venv/bin/python -m bench.embedding_batch            # about 7 minutes on 2 cores
    .venv/bin/python -m bench.embedding_batch --model all-minilm-l6-v2 --batch 64 --batch 8

EmbeddingGemma must be prepared first (``concierge models prepare embeddinggemma-300m``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.lib.machine import describe_machine
from bench.lib.paths import OUT_DIR, SHARED_VAR
from bench.lib.report import raw_args, shown_command, start_run, update_doc, write_json
from bench.lib.suite_retrieval import index_suite, score_suite
from bench.lib.suites import all_suites, load_suite
from bench.lib.tables import header, markdown_table, number, text_table, times
from models.classifiers.support_sentiment import SUPPORT_SET
from models.classifiers.training_data import REPO_DATASETS
from models.embedder import Embedder, EmbedderConfig

DEFAULT_MODELS = ("all-minilm-l6-v2", "embeddinggemma-300m")
DEFAULT_BATCHES = (64, 32, 16, 8, 4)
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
MARKS = ("<!-- embedding-batch:begin -->", "<!-- embedding-batch:end -->")


@dataclass
class BatchRow:
    """One embedder at one batch size."""

    model: str
    dtype: str
    batch: int
    reindex_s: dict[str, float] = field(default_factory=dict)
    messages_s: float = 0.0
    cited_first: dict[str, str] = field(default_factory=dict)
    multilingual_top3: dict[str, str] = field(default_factory=dict)

    @property
    def reindex_total_s(self) -> float:
        return sum(self.reindex_s.values())


def measure(model: str, batch: int, data_dir: Path, messages: Sequence[str]) -> BatchRow:
    """Reindex every suite and embed the messages with ``batch`` texts per pass."""
    embedder = Embedder(EmbedderConfig(model, device="cpu", batch_size=batch, data_dir=data_dir))
    embedder.warm_up()
    row = BatchRow(model, embedder.dtype, batch)
    try:
        for suite in map(load_suite, all_suites()):
            with tempfile.TemporaryDirectory(prefix="concierge-batch-") as scratch:
                index = index_suite(suite, Path(scratch), embedder=embedder)
                scores = score_suite(index)
            row.reindex_s[suite.name] = index.reindex_s
            row.cited_first[suite.name] = scores["cited"].rate(scores["cited"].hits1)
            multilingual = scores["multilingual"]
            row.multilingual_top3[suite.name] = multilingual.rate(multilingual.hits3)
        started = time.perf_counter()
        embedder.embed_sync(messages)
        row.messages_s = time.perf_counter() - started
    finally:
        embedder.shutdown()
    return row


def table(rows: Sequence[BatchRow], markdown: bool) -> str:
    """One row per model and batch size; times beside the same model's widest batch."""
    suites = sorted({name for row in rows for name in row.reindex_s})
    columns = "model | batch | " + " | ".join(f"reindex {s} s" for s in suites)
    columns += " | reindex all s | vs widest | messages s | right article first"
    columns += " | fr/zh in top 3"
    lines = [header(columns)]
    widest: dict[str, BatchRow] = {}
    for row in rows:
        if row.model not in widest or row.batch > widest[row.model].batch:
            widest[row.model] = row
    for row in rows:
        base = widest[row.model]
        lines.append(
            [
                f"{row.model} ({row.dtype})",
                str(row.batch),
                *(number(row.reindex_s[s], 1) for s in suites),
                number(row.reindex_total_s, 1),
                times(base.reindex_total_s, row.reindex_total_s),
                number(row.messages_s, 2),
                ", ".join(row.cited_first[s] for s in suites),
                ", ".join(row.multilingual_top3[s] for s in suites),
            ]
        )
    return markdown_table(lines) if markdown else text_table(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", action="append", help=f"default: {', '.join(DEFAULT_MODELS)}")
    parser.add_argument("--batch", action="append", type=int, help=f"default: {DEFAULT_BATCHES}")
    parser.add_argument(
        "--data-dir", type=Path, default=SHARED_VAR, help="where prepared models are"
    )
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = describe_machine()
    stamp = start_run("sentence_transformers", "retrieval", "models.embedder", "bm25s")
    lines = (REPO_DATASETS / SUPPORT_SET).read_text(encoding="utf-8").splitlines()
    messages = [json.loads(line)["text"] for line in lines if line.strip()]
    rows = [
        measure(model, batch, args.data_dir, messages)
        for model in args.model or DEFAULT_MODELS
        for batch in args.batch or DEFAULT_BATCHES
    ]
    command = shown_command("embedding_batch", sys.argv[1:] if argv is None else argv)
    print(f"    {command}\n")
    print(table(rows, markdown=False))
    write_json(
        OUT_DIR / f"embedding-batch-{stamp}.json",
        {
            "args": raw_args(args),
            "rows": [{**vars(row), "reindex_total_s": row.reindex_total_s} for row in rows],
        },
    )
    if not args.no_doc:
        section = "\n".join(
            [
                MARKS[0],
                "## Embedding batch size",
                "",
                f"    {command}",
                "",
                f"{machine['cpu_model']} ({machine['cpus_usable']} usable cores); "
                f"{len(messages)} support messages; "
                f"{time.strftime('%Y-%m-%d %H:%M')}.",
                "",
                table(rows, markdown=True),
                MARKS[1],
            ]
        )
        update_doc(DOC_PATH, section, MARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
