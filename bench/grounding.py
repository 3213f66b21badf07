"""Where should an embedder's grounding floor be? Right passages against off-topic messages.

A KB passage enters the prompt only if its cosine similarity to the message reaches the
embedding model's floor (``ModelSpec.grounding_similarity``). Cosine scales differ by model,
so each floor is calibrated here, with no generation model involved: for every suite of
``bench/suites/``, its KB through the product's own ``KnowledgeBase``, then

* for each scenario that expects a citation (its last turn), and each French or Chinese
  question of ``multilingual.jsonl``: the cosine of the expected article's best passage
  among the first 20 hits (what a floor keeps or drops);
* for each of 20 off-topic messages: the best passage's cosine (what a floor lets ground).

    .venv/bin/python -m bench.grounding                  # both embedders, about 3 minutes
    .venv/bin/python -m bench.grounding --model all-minilm-l6-v2 --floor 0.3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.paths import OUT_DIR, SHARED_VAR
from bench.lib.report import raw_args, shown_command, start_run, write_json
from bench.lib.suite_retrieval import matches, suite_knowledge
from bench.lib.suites import all_suites, load_suite

HITS = 20
FLOORS = (0.25, 0.30, 0.35, 0.40, 0.45)
OFF_TOPIC = (
    "What's the weather like in Paris today?",
    "Tell me a joke",
    "Who won the football match last night?",
    "Can you help me with my maths homework?",
    "What is the capital of Australia?",
    "Write me a poem about cats",
    "How do I bake sourdough bread?",
    "What's your favourite movie?",
    "Is it going to rain tomorrow?",
    "hello",
    "thanks, bye",
    "Who is the president of France?",
    "How tall is Mount Everest?",
    "Recommend a good novel",
    "What time is it in Tokyo?",
    "Quel temps fait-il à Lyon ?",
    "今天天气怎么样？",
    "Translate 'good morning' into German",
    "How many legs does a spider have?",
    "Can you explain quantum physics?",
)


def best_cosine(knowledge: Any, embedder: Any, tenant: str, message: str, expected: Any) -> Any:
    """The best dense score among the first hits: of the expected article's passages
    (None when it is not among them), or of any passage when ``expected`` is None."""
    vector = embedder.embed_sync([message])[0]
    hits = knowledge.search(tenant, message, vector, top_k=HITS)
    scores = [
        h.dense_score
        for h in hits
        if h.dense_score is not None
        and (expected is None or matches(expected, str(h.doc_id).split(":", 1)[0]))
    ]
    return max(scores) if scores else None


def measure(model: str, data_dir: Path) -> dict[str, list[float]]:
    from models.embedder import Embedder, EmbedderConfig

    embedder = Embedder(EmbedderConfig(model, device="cpu", data_dir=data_dir))
    found: dict[str, list[float]] = {"right": [], "fr/zh": [], "off-topic": []}
    for folder in all_suites():
        suite = load_suite(folder)
        scratch = Path(tempfile.mkdtemp(prefix="concierge-grounding-"))
        try:
            knowledge, _ = suite_knowledge(suite, scratch, embedder)
            knowledge.reindex(suite.tenant)
            asked = [
                ("right", s["turns"][-1], s["expect"]["cite_any_of"])
                for s in suite.scenarios
                if (s.get("expect") or {}).get("cite_any_of")
            ]
            asked += [("fr/zh", q["question"], [q["expect_doc"]]) for q in suite.multilingual]
            asked += [("off-topic", message, None) for message in OFF_TOPIC]
            for kind, message, expected in asked:
                score = best_cosine(knowledge, embedder, suite.tenant, message, expected)
                if score is not None:
                    found[kind].append(float(score))
            knowledge.shutdown()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return found


def table(results: dict[str, dict[str, list[float]]], floors: Sequence[float]) -> list[str]:
    lines = [
        "| model | floor | expected article's passage kept | fr/zh kept | off-topic grounded |",
        "|---|---:|---:|---:|---:|",
    ]
    for model, found in results.items():
        right, multilingual, off = (np.array(found[k]) for k in ("right", "fr/zh", "off-topic"))
        for floor in floors:
            lines.append(
                f"| {model} | {floor:.2f} | {np.mean(right >= floor):.0%} | "
                f"{np.mean(multilingual >= floor):.0%} | {np.mean(off >= floor):.0%} |"
            )
        lines.append(
            f"| {model} | (n) | {len(right)} | {len(multilingual)} | {len(off)}, max "
            f"{off.max():.3f} |"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", action="append", help="default: both registered embedders")
    parser.add_argument("--floor", action="append", type=float, help=f"default: {FLOORS}")
    parser.add_argument(
        "--data-dir", type=Path, default=SHARED_VAR, help="where prepared models are"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run("sentence_transformers", "retrieval")
    models = args.model or ["all-minilm-l6-v2", "embeddinggemma-300m"]
    results = {model: measure(model, args.data_dir) for model in models}
    print(f"    {shown_command('grounding', sys.argv[1:] if argv is None else argv)}\n")
    print("\n".join(table(results, args.floor or FLOORS)))
    write_json(OUT_DIR / f"grounding-{stamp}.json", {"args": raw_args(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
