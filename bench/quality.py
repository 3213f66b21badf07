"""Quality of the reply pipeline's classifiers and escalation: sentiment, intent, escalation.

The question this answers: how often do the shipped heads (``models.classifiers``, as
trained by ``concierge models train-classifiers`` and loaded by the server) get a real
message right?

* Sentiment on TweetEval sentiment TEST (12,284 tweets; never trained or tuned on):
  macro-recall, negative recall, per-class recall and accuracy of VADER alone (compound
  >= 0.05 positive, <= -0.05 negative), of an embedding + logistic regression trained
  on the 2,000 val tweets (the reference), and of Concierge's shipped sentiment head
  through ``Classifiers.load`` + ``Classifiers.sentiment``. Target: macro-recall >= 0.68
  and negative recall >= 0.85.
* Intent: accuracy and macro-F1 of the shipped default head on the Bitext held-out
  split (``bitext_split``, never trained on), and Banking77 (logistic regression on the
  same embeddings, trained on train.csv, scored on test.csv) as a second reference.
* The hand-over decision and the support sentiment head are measured by
  ``bench/reading.py`` on the project's hand-written conversations and messages.

Sections are functions in ``SECTIONS``; each takes a ``QualityRun`` and returns its
Markdown and raw figures.

    .venv/bin/python -m bench.quality [--data ../shared/data]

Raw results go to bench/out/quality.json; charts to docs/img/quality_*.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.lib.data import load_banking77
from bench.lib.machine import describe_machine
from bench.lib.paths import IMG_DIR, OUT_DIR, SHARED_DATA
from bench.lib.report import pyplot, save_figure, shown_command, start_run, write_json
from bench.lib.stats import classification_scores
from models.classifiers import (
    Classifiers,
    classifiers_dir,
    embedder_identity,
    train_classifiers,
)
from models.classifiers.text_cues import vader_scores
from models.classifiers.training_data import (
    SENTIMENT_LABEL_NAMES,
    bitext_split,
    load_bitext,
    load_sentiment,
)
from models.embedder import Embedder, EmbedderConfig

log = logging.getLogger("bench.quality")

EMBEDDING_MODEL = "all-minilm-l6-v2"
TARGET_MACRO_RECALL = 0.68
TARGET_NEGATIVE_RECALL = 0.85
VADER_THRESHOLD = 0.05  # VADER's documented cut-off for the compound score
REFERENCE_C = 1.0


@dataclass
class QualityRun:
    """What every section shares: arguments, the embedder, the trained classifiers."""

    data: Path
    embedder: Embedder
    classifiers: Classifiers
    images: Path
    vectors: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)

    def embed(self, key: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed once per key (sections may share texts)."""
        if key not in self.vectors:
            started = time.perf_counter()
            self.vectors[key] = self.embedder.embed_sync(texts, purpose="classifier")
            log.info(
                "embedded %d %s texts in %.1f s", len(texts), key, time.perf_counter() - started
            )
        return self.vectors[key]


SectionResult = tuple[list[str], dict[str, Any]]
Section = Callable[[QualityRun], SectionResult]


# ---------------------------------------------------------------- sentiment


def load_tweets(data: Path, split: str) -> tuple[list[str], npt.NDArray[np.int64]]:
    folder = data / "tweeteval" / "sentiment"
    texts = [t.strip() for t in (folder / f"{split}_text.txt").read_text("utf-8").splitlines()]
    labels = np.array([int(x) for x in (folder / f"{split}_labels.txt").read_text().split()])
    return texts, labels


def recall_figures(
    expected: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> dict[str, Any]:
    recalls = [float(np.mean(predicted[expected == k] == k)) for k in range(3)]
    confusion = [
        [int(np.sum((expected == a) & (predicted == b))) for b in range(3)] for a in range(3)
    ]
    return {
        "macro_recall": float(np.mean(recalls)),
        "negative_recall": recalls[0],
        "recall": dict(zip(SENTIMENT_LABEL_NAMES, recalls, strict=True)),
        "accuracy": float(np.mean(expected == predicted)),
        "confusion": confusion,
        "meets_target": bool(
            np.mean(recalls) >= TARGET_MACRO_RECALL and recalls[0] >= TARGET_NEGATIVE_RECALL
        ),
    }


def sentiment_section(run: QualityRun) -> SectionResult:
    from sklearn.linear_model import LogisticRegression

    test_texts, test_y = load_tweets(run.data, "test")
    val = load_sentiment(run.data)
    val_y = np.array([SENTIMENT_LABEL_NAMES.index(label) for label in val.labels])
    test_x = run.embed("tweeteval-test", test_texts)
    val_x = run.embed("tweeteval-val", val.texts)

    compound = np.array([vader_scores(t)["compound"] for t in test_texts])
    vader = np.where(compound >= VADER_THRESHOLD, 2, np.where(compound <= -VADER_THRESHOLD, 0, 1))
    reference = LogisticRegression(C=REFERENCE_C, class_weight="balanced", max_iter=3000)
    reference.fit(val_x, val_y)
    started = time.perf_counter()
    shipped = run.classifiers.sentiment(test_texts, test_x)
    per_message_ms = (time.perf_counter() - started) / len(test_texts) * 1000
    shipped_y = np.array([SENTIMENT_LABEL_NAMES.index(r.label) for r in shipped])
    variants = {
        "VADER alone": recall_figures(test_y, vader),
        "embedding + LR on val (reference)": recall_figures(test_y, reference.predict(test_x)),
        "Concierge sentiment head": recall_figures(test_y, shipped_y),
    }
    head = run.classifiers.manifest["heads"]["sentiment"]
    lines = [
        f"## Sentiment: TweetEval sentiment test ({len(test_texts)} tweets: "
        + ", ".join(f"{n} {int(np.sum(test_y == k))}" for k, n in enumerate(SENTIMENT_LABEL_NAMES))
        + ")",
        "",
        f"Target: macro-recall >= {TARGET_MACRO_RECALL} and negative recall >= "
        f"{TARGET_NEGATIVE_RECALL}. The shipped head: C {head['params']['C']}, decision bias "
        f"{head['params']['decision_bias']} (chosen by cross-validation on the training "
        f"tweets); {per_message_ms:.3f} ms per message in a batch of {len(test_texts)}.",
        "",
        "| variant | macro-recall | negative recall | neutral recall | positive recall "
        "| accuracy | target |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, v in variants.items():
        r = v["recall"]
        lines.append(
            f"| {name} | {v['macro_recall']:.3f} | {r['negative']:.3f} | {r['neutral']:.3f} | "
            f"{r['positive']:.3f} | {v['accuracy']:.3f} | "
            f"{'meets' if v['meets_target'] else 'misses'} |"
        )
    shipped_frustrated = sum(r.frustrated for r in shipped)
    lines += ["", f"Frustrated (shipped rule): {shipped_frustrated} of {len(shipped)} test tweets."]
    plot_sentiment(variants, run.images / "quality_sentiment.png")
    return lines, {
        "variants": variants,
        "shipped_params": head["params"],
        "shipped_cv_metrics": head["metrics"],
        "per_message_ms": per_message_ms,
        "frustrated": shipped_frustrated,
    }


def plot_sentiment(variants: dict[str, dict[str, Any]], path: Path) -> None:
    """Per-class recall bars per variant, and the shipped head's confusion matrix."""
    plt = pyplot()
    if plt is None:
        return
    fig, (bars, matrix) = plt.subplots(1, 2, figsize=(13, 5))
    names = list(variants)
    x = np.arange(len(names))
    metrics = [
        ("negative", "negative recall"),
        ("neutral", "neutral recall"),
        ("positive", "positive recall"),
    ]
    for i, (key, label) in enumerate(metrics):
        bars.bar(x + (i - 1.5) * 0.2, [variants[n]["recall"][key] for n in names], 0.2, label=label)
    bars.bar(x + 1.5 * 0.2, [variants[n]["macro_recall"] for n in names], 0.2, label="macro-recall")
    bars.axhline(TARGET_NEGATIVE_RECALL, color="red", ls="--", lw=1, label="target negative 0.85")
    bars.axhline(TARGET_MACRO_RECALL, color="black", ls=":", lw=1, label="target macro 0.68")
    bars.set_xticks(x, [n.replace(" (", "\n(") for n in names], fontsize=8)
    bars.set_ylim(0, 1.05)
    bars.set_title("TweetEval sentiment test: recall")
    bars.legend(fontsize=7, loc="upper left")
    confusion = np.array(variants["Concierge sentiment head"]["confusion"], dtype=float)
    shares = confusion / confusion.sum(axis=1, keepdims=True)
    matrix.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), share in np.ndenumerate(shares):
        matrix.text(j, i, f"{share:.2f}\n({int(confusion[i, j])})", ha="center", va="center")
    matrix.set_xticks(range(3), SENTIMENT_LABEL_NAMES)
    matrix.set_yticks(range(3), SENTIMENT_LABEL_NAMES)
    matrix.set_xlabel("predicted")
    matrix.set_ylabel("true")
    matrix.set_title("Concierge sentiment head (row-normalized)")
    save_figure(plt, fig, path)


# ---------------------------------------------------------------- intent


def intent_section(run: QualityRun) -> SectionResult:
    from sklearn.linear_model import LogisticRegression

    bitext = load_bitext(run.data)
    _, heldout_rows = bitext_split(bitext)
    heldout = bitext.subset(heldout_rows)
    vectors = run.embed("bitext-heldout", heldout.texts)
    predicted = [r.label for r in run.classifiers.intent(vectors)]
    bitext_figures = {
        "examples": len(heldout),
        "intents": len(set(heldout.labels)),
        **classification_scores(heldout.labels, predicted),
    }

    train_texts, train_labels = load_banking77(run.data, "train")
    test_texts, test_labels = load_banking77(run.data, "test")
    model = LogisticRegression(C=16.0, max_iter=2000)
    model.fit(run.embed("banking77-train", train_texts), train_labels)
    banking_predicted = model.predict(run.embed("banking77-test", test_texts))
    banking_figures = {
        "train": len(train_texts),
        "test": len(test_texts),
        "intents": len(set(train_labels)),
        **classification_scores(test_labels, list(banking_predicted)),
    }
    lines = [
        "## Intent",
        "",
        "| data | head | examples | intents | accuracy | macro-F1 |",
        "|---|---|---:|---:|---:|---:|",
        f"| Bitext held-out 20% (never trained on) | shipped default | "
        f"{bitext_figures['examples']} | {bitext_figures['intents']} | "
        f"{bitext_figures['accuracy']:.3f} | {bitext_figures['macro_f1']:.3f} |",
        f"| Banking77 test | LR (C 16) on train.csv, same embeddings | {banking_figures['test']} | "
        f"{banking_figures['intents']} | {banking_figures['accuracy']:.3f} | "
        f"{banking_figures['macro_f1']:.3f} |",
    ]
    return lines, {"bitext_heldout": bitext_figures, "banking77": banking_figures}


# ---------------------------------------------------------------- main

SECTIONS: dict[str, Section] = {
    "sentiment": sentiment_section,
    "intent": intent_section,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--data", type=Path, default=SHARED_DATA, help="shared data folder (../shared/data)"
    )
    parser.add_argument("--model", default=EMBEDDING_MODEL, help="embedding model name")
    parser.add_argument(
        "--classifiers",
        type=Path,
        default=None,
        help="a data directory whose classifiers to use (trained there if missing or "
        "stale); default: a temporary one",
    )
    parser.add_argument("--sections", nargs="*", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the JSON")
    parser.add_argument("--images", type=Path, default=IMG_DIR, help="folder for the PNGs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_run("sentence_transformers")
    started = time.perf_counter()
    embedder = Embedder(EmbedderConfig(args.model))
    args.out.mkdir(parents=True, exist_ok=True)
    args.images.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="concierge-quality-") as tmp:
        data_dir = args.classifiers or Path(tmp)
        try:
            train_started = time.perf_counter()
            report = train_classifiers(
                embedder, args.data, classifiers_dir(data_dir), progress=lambda m: log.info("%s", m)
            )
            train_s = time.perf_counter() - train_started
            classifiers = Classifiers.load(
                classifiers_dir(data_dir), embedder=embedder_identity(embedder.config.model)
            )
            run = QualityRun(args.data, embedder, classifiers, args.images)
            outputs = {name: SECTIONS[name](run) for name in args.sections}
        finally:
            embedder.shutdown()
    total_s = time.perf_counter() - started
    machine = describe_machine(
        sentence_transformers=("sentence-transformers",),
        torch=("torch",),
        scikit_learn=("scikit-learn",),
        vader=("vaderSentiment",),
        py3langid=("py3langid",),
    )
    head = [
        f"# Classifier quality ({embedder.model_name} on {embedder.device})",
        "",
        f"Command: `{shown_command('quality', sys.argv[1:])}`",
        f"Machine: {machine['cpu_model']} ({machine['cpus_usable']} usable CPUs), "
        f"Python {machine['python']}, torch {machine['torch']}, "
        f"scikit-learn {machine['scikit_learn']}.",
        f"Classifiers: {'up to date, reused' if report.up_to_date else 'trained'} in "
        f"{train_s:.1f} s at {report.directory}.",
        "",
    ]
    body: list[str] = []
    for lines, _ in outputs.values():
        body += [*lines, ""]
    body.append(f"Run time {total_s:.0f} s.")
    sys.stdout.write("\n".join([*head, *body, ""]))
    raw = {
        "machine": machine,
        "argv": sys.argv,
        "embedding_model": embedder.model_name,
        "training": {"up_to_date": report.up_to_date, "seconds": train_s},
        "sections": {name: figures for name, (_, figures) in outputs.items()},
        "total_s": total_s,
    }
    json_path = write_json(args.out / "quality.json", raw)
    sys.stdout.write(f"\nRaw results: {json_path}\nCharts: {args.images}/quality_*.png\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
