"""Training the heads: embeddings in, cross-validated logistic regressions out.

Both heads are multinomial logistic regressions over the pipeline's own sentence
embeddings (``Embedder.embed_sync(..., purpose="classifier")``), so serving needs no
second model. scikit-learn is imported here only, inside the functions.

Sentiment (``negative``/``neutral``/``positive``) also gets the ``text_cues`` features,
balanced class weights, and a decision bias: with 5-fold cross-validation on the
training tweets, for each ``C`` in ``SENTIMENT_C_GRID``, the out-of-fold logits are
shifted by every (negative, positive) bias on a grid and the shift with the best
macro-recall whose negative recall stays at or above ``NEGATIVE_RECALL_FLOOR`` wins;
then the ``C`` with the best such macro-recall. The 312 negative training tweets alone
make a noisy recall estimate (a bias chosen on them alone overshot), so negative recall
is counted over them plus ~2,400 angry or sad TweetEval emotion tweets, scored by the
head fitted on all training tweets; those tweets are never trained on. Missing an
unhappy customer costs more than a false alarm, so the head leans to "negative" by
design. Nothing here reads TweetEval's sentiment test split, the evaluation set of
``bench/quality.py``.

Intent: ``C = INTENT_C`` (Bitext accuracy is flat from C 4 to 64), trained on the
training part of ``bitext_split`` and scored on its held-out part; cross-validated
accuracy and macro-F1 are recorded in the manifest too.

A run whose source files (by SHA-256), embedding model (name and weights digest) and
``RECIPE`` match the newest manifest publishes nothing and reports "up to date".

``train_classifiers`` publishes a local version under ``<data_dir>/classifiers``;
``train_shipped_heads`` writes the same heads into the package's ``default_heads/`` (what
``make classifier-heads`` runs). Either manifest records, per head, the embedder it was
trained on, the data's fingerprint and file names, the date, and its held-out scores.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifiers.embedder_identity import EmbedderIdentity, embedder_identity
from models.classifiers.head_store import (
    MANIFEST,
    SHIPPED_HEADS_DIR,
    ClassifiersUnavailableError,
    HeadSet,
    default_root,
    newest_version_folder,
    read_manifest,
    tenant_root,
    write_flat,
    write_version,
)
from models.classifiers.linear_head import LinearHead
from models.classifiers.text_cues import CUE_FEATURE_NAMES, cue_features
from models.classifiers.training_data import (
    INTENT_SOURCES,
    SENTIMENT_LABEL_NAMES,
    SENTIMENT_SOURCES,
    LabelledTexts,
    bitext_split,
    load_bitext,
    load_negative_emotions,
    load_sentiment,
    load_tenant_examples,
    source_hashes,
)
from models.embedder import Embedder
from models.prepare import sha256_file

RECIPE = 5  # bump when training changes in a way that should retrain unchanged data
# 5: manifests record the embedder's weights digest, data fingerprints and held-out scores
EMBED_PURPOSE = "classifier"
SENTIMENT_C_GRID = (0.25, 0.5, 1.0, 2.0)
CUE_WEIGHT = 0.3  # standardized cues are scaled down so 9 cues do not outweigh 384 dims
NEGATIVE_RECALL_FLOOR = 0.85
BIAS_GRID = np.round(np.arange(-2.0, 2.0001, 0.1), 2)
SENTIMENT_FOLDS = 5
INTENT_C = 16.0
INTENT_FOLDS = 3
CV_SEED = 0
MAX_ITER = 3000

Progress = Callable[[str], None]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


DATASETS = {
    "intent": "Bitext customer support (CDLA-Sharing-1.0): 80% of the rows, the fixed "
    "stratified bitext_split; the other 20% are held out",
    "sentiment": "TweetEval sentiment val (2,000 tweets); TweetEval emotion train+val "
    "angry/sad tweets only to check negative recall, never trained on",
}
HELDOUT = {
    "intent": "Bitext held-out 20% (never trained on)",
    "sentiment": "TweetEval sentiment val, 5-fold out-of-fold; C and decision bias are chosen "
    "on the same folds, so slightly optimistic (bench/quality.py scores the test split)",
}


@dataclass(frozen=True)
class HeadReport:
    """What one head was trained on and how well it cross-validated."""

    name: str
    examples: int
    labels: int
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingReport:
    """The outcome of a training run, printed by the CLI."""

    directory: Path
    up_to_date: bool
    seconds: float
    heads: dict[str, HeadReport]

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        state = "up to date (sources unchanged)" if self.up_to_date else "trained"
        lines = [f"classifiers {state} at {self.directory} in {self.seconds:.1f} s"]
        for head in self.heads.values():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in head.metrics.items())
            lines.append(f"  {head.name}: {head.examples} examples, {head.labels} labels; {shown}")
        return lines


def train_classifiers(
    embedder: Embedder,
    source: Path,
    out_dir: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> TrainingReport:
    """Train the default sentiment and intent heads from ``source`` and publish them as a
    new local version under ``out_dir`` (``classifiers_dir(data_dir)``)."""
    root = default_root(out_dir)
    return _train_default(
        embedder,
        source,
        root,
        current=lambda: _current_manifest(root),
        publish=lambda heads: write_version(
            root,
            HeadSet(
                heads.heads, heads.head_info, {**heads.extra, "source_dir": str(source.resolve())}
            ),
        ),
        force=force,
        progress=progress,
    )


def train_shipped_heads(
    embedder: Embedder,
    source: Path,
    folder: Path = SHIPPED_HEADS_DIR,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> TrainingReport:
    """Train the default heads from ``source`` into ``folder`` in the shipped layout.

    This is how the package data in ``default_heads/`` is made (``make classifier-heads``);
    the manifest names the data by fingerprint, never by this machine's path.
    """

    def current() -> dict[str, Any] | None:
        if not (folder / MANIFEST).is_file():
            return None
        try:
            return read_manifest(folder)
        except ClassifiersUnavailableError:
            return None  # a damaged set is replaced, never trusted

    return _train_default(
        embedder,
        source,
        folder,
        current=current,
        publish=lambda heads: write_flat(folder, heads),
        force=force,
        progress=progress,
    )


def _train_default(
    embedder: Embedder,
    source: Path,
    where: Path,
    *,
    current: Callable[[], dict[str, Any] | None],
    publish: Callable[[HeadSet], Path],
    force: bool,
    progress: Progress | None,
) -> TrainingReport:
    say = progress or (lambda _: None)
    started = time.perf_counter()
    sources = source_hashes(source)
    identity = embedder_identity(embedder.config.model)
    if not force:
        manifest = current()
        if manifest is not None and _matches(manifest, sources, identity):
            return _report_from_manifest(manifest, where, time.perf_counter() - started)

    bitext = load_bitext(source)
    train_rows, heldout_rows = bitext_split(bitext)
    intents, heldout = bitext.subset(train_rows), bitext.subset(heldout_rows)
    say(f"intent: embedding {len(intents)} Bitext training examples (+{len(heldout)} held out)")
    intent_vectors = embedder.embed_sync(intents.texts, purpose=EMBED_PURPOSE)
    heldout_vectors = embedder.embed_sync(heldout.texts, purpose=EMBED_PURPOSE)
    say(f"intent: fitting {len(set(intents.labels))} intents, {INTENT_FOLDS}-fold cross-validation")
    intent_head, intent_report = fit_intent_head(intent_vectors, intents.labels, name="intent")
    predicted = _predict(intent_head, heldout_vectors)
    intent_report.metrics["heldout_accuracy"] = _accuracy(heldout.labels, predicted)
    intent_report.metrics["heldout_macro_f1"] = _macro_f1(heldout.labels, predicted)

    tweets = load_sentiment(source)
    say(f"sentiment: embedding {len(tweets)} labelled tweets")
    tweet_vectors = embedder.embed_sync(tweets.texts, purpose=EMBED_PURPOSE)
    negatives = load_negative_emotions(source)
    say(f"sentiment: embedding {len(negatives)} angry/sad tweets to check negative recall")
    negative_vectors = embedder.embed_sync(negatives, purpose=EMBED_PURPOSE)
    say(f"sentiment: choosing C and decision bias by {SENTIMENT_FOLDS}-fold cross-validation")
    sentiment_head, sentiment_report = fit_sentiment_head(
        tweets, tweet_vectors, negatives, negative_vectors
    )

    heads = {"sentiment": sentiment_head, "intent": intent_head}
    reports = {"sentiment": sentiment_report, "intent": intent_report}
    trained_at = _now()
    files = {"sentiment": SENTIMENT_SOURCES, "intent": INTENT_SOURCES}
    info = {
        name: {
            **_head_info(report),
            "embedder": identity.as_manifest(),
            "trained_at": trained_at,
            "data": {
                "datasets": DATASETS[name],
                "fingerprint": data_fingerprint({str(f): sources[str(f)] for f in files[name]}),
                "files": [str(f) for f in files[name]],
            },
            "heldout": {
                "split": HELDOUT[name],
                **{k: round(float(v), 4) for k, v in _heldout_scores(name, report).items()},
            },
        }
        for name, report in reports.items()
    }
    folder = publish(
        HeadSet(
            heads,
            info,
            {
                "kind": "default",
                "recipe": RECIPE,
                "embedding_model": embedder.model_name,
                "embedder": identity.as_manifest(),
                "dimension": int(intent_vectors.shape[1]),
                "sources": sources,
                "data_fingerprint": data_fingerprint(sources),
                "trained_at": trained_at,
                "training_seconds": round(time.perf_counter() - started, 2),
            },
        )
    )
    say(f"published {folder}")
    return TrainingReport(where, False, time.perf_counter() - started, reports)


def _now() -> str:
    """The training date as the manifests record it: ISO 8601, UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def data_fingerprint(sources: dict[str, Any]) -> str:
    """One SHA-256 for a set of source files, from their names and SHA-256 digests."""
    listed = {name: meta["sha256"] for name, meta in sorted(sources.items())}
    return hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()


def _heldout_scores(name: str, report: HeadReport) -> dict[str, float]:
    """The scores on examples a head was not fitted on (see ``HELDOUT``)."""
    if name == "intent":
        return {
            "accuracy": report.metrics["heldout_accuracy"],
            "macro_f1": report.metrics["heldout_macro_f1"],
        }
    return {
        "macro_recall": report.metrics["cv_macro_recall"],
        "negative_recall": report.metrics["cv_negative_recall"],
        "accuracy": report.metrics["cv_accuracy"],
    }


def train_tenant_intents(
    embedder: Embedder, examples_file: Path, out_dir: Path, tenant: str
) -> TrainingReport:
    """Train and publish ``tenant``'s own intent head from a CSV or JSONL examples file."""
    from core.ids import check_tenant

    started = time.perf_counter()
    identity = embedder_identity(embedder.config.model)
    root = tenant_root(out_dir, check_tenant(tenant))
    examples = load_tenant_examples(examples_file)
    vectors = embedder.embed_sync(examples.texts, purpose=EMBED_PURPOSE)
    head, report = fit_intent_head(vectors, examples.labels, name=f"intent[{tenant}]")
    extra = {
        "kind": "tenant",
        "tenant": tenant,
        "recipe": RECIPE,
        "embedding_model": embedder.model_name,
        "embedder": identity.as_manifest(),
        "dimension": int(vectors.shape[1]),
        "sources": {
            examples_file.name: {
                "sha256": sha256_file(examples_file),
                "bytes": examples_file.stat().st_size,
            }
        },
        "trained_at": _now(),
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    write_version(root, HeadSet({"intent": head}, {"intent": _head_info(report)}, extra))
    return TrainingReport(root, False, time.perf_counter() - started, {"intent": report})


# ---------------------------------------------------------------- fitting


def fit_intent_head(
    vectors: FloatArray, labels: Sequence[str], *, name: str
) -> tuple[LinearHead, HeadReport]:
    """Logistic regression at ``INTENT_C``; cross-validated accuracy and macro-F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(labels)
    smallest = int(min(np.unique(y, return_counts=True)[1]))
    folds = max(2, min(INTENT_FOLDS if len(y) > 1000 else 5, smallest))
    model = LogisticRegression(C=INTENT_C, max_iter=MAX_ITER)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=CV_SEED)
    out_of_fold = cross_val_predict(model, vectors, y, cv=splitter)
    model.fit(vectors, y)
    head = _to_head(model, cues=None)
    metrics = {
        "cv_accuracy": float(np.mean(out_of_fold == y)),
        "cv_macro_f1": float(f1_score(y, out_of_fold, average="macro")),
    }
    params = {"C": INTENT_C, "folds": folds}
    return head, HeadReport(name, len(y), len(head.labels), metrics, params)


def fit_sentiment_head(
    tweets: LabelledTexts,
    vectors: FloatArray,
    extra_negatives: Sequence[str] = (),
    extra_negative_vectors: FloatArray | None = None,
) -> tuple[LinearHead, HeadReport]:
    """Embeddings + cues, balanced weights; C and decision bias by cross-validation.

    ``extra_negatives`` (texts known to be negative, not trained on) join the
    out-of-fold negatives when negative recall is measured for the bias choice.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    names = list(SENTIMENT_LABEL_NAMES)
    y = np.array([names.index(label) for label in tweets.labels], dtype=np.int64)
    cues = cue_features(tweets.texts)
    cue_mean = cues.mean(axis=0)
    cue_divisor = np.where(cues.std(axis=0) > 1e-6, cues.std(axis=0), 1.0) / CUE_WEIGHT
    features = np.hstack([vectors, (cues - cue_mean) / cue_divisor]).astype(np.float32)
    extra = np.zeros((0, features.shape[1]), dtype=np.float32)
    if extra_negatives and extra_negative_vectors is not None:
        extra_cues = (cue_features(extra_negatives) - cue_mean) / cue_divisor
        extra = np.hstack([extra_negative_vectors, extra_cues]).astype(np.float32)
    splitter = StratifiedKFold(SENTIMENT_FOLDS, shuffle=True, random_state=CV_SEED)

    best: tuple[float, float, FloatArray, dict[str, float]] | None = None
    for c in SENTIMENT_C_GRID:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITER)
        log_proba = cross_val_predict(
            model, features, y, cv=splitter, method="predict_log_proba"
        ).astype(np.float32)
        extra_log_proba = model.fit(features, y).predict_log_proba(extra) if len(extra) else None
        bias, metrics = choose_decision_bias(log_proba, y, extra_log_proba)
        metrics["cv_macro_recall_unbiased"] = _recalls(y, log_proba.argmax(axis=1)).mean()
        if best is None or metrics["cv_macro_recall"] > best[0]:
            best = (metrics["cv_macro_recall"], c, bias, metrics)
    assert best is not None
    _, chosen_c, bias, metrics = best
    model = LogisticRegression(C=chosen_c, class_weight="balanced", max_iter=MAX_ITER)
    model.fit(features, y)
    head = _to_head(
        model,
        cues=(cue_mean.astype(np.float32), cue_divisor.astype(np.float32)),
        labels=names,
        decision_bias=bias,
    )
    params = {
        "C": chosen_c,
        "C_grid": list(SENTIMENT_C_GRID),
        "folds": SENTIMENT_FOLDS,
        "decision_bias": [round(float(b), 3) for b in bias],
        "negative_recall_floor": NEGATIVE_RECALL_FLOOR,
        "cue_features": list(CUE_FEATURE_NAMES),
        "cue_weight": CUE_WEIGHT,
    }
    return head, HeadReport("sentiment", len(y), len(names), metrics, params)


def choose_decision_bias(
    log_proba: FloatArray, y: IntArray, extra_negatives: FloatArray | None = None
) -> tuple[FloatArray, dict[str, float]]:
    """The (negative, 0, positive) logit shift with the best macro-recall whose negative
    recall is at least ``NEGATIVE_RECALL_FLOOR``; the highest negative recall if none is.

    Negative recall counts the negatives of ``y`` and the rows of ``extra_negatives``
    (log-probabilities of texts known to be negative) together.
    """
    extra = np.zeros((0, 3), dtype=np.float32) if extra_negatives is None else extra_negatives
    best_key: tuple[bool, float, float] | None = None
    best_bias = np.zeros(3, dtype=np.float32)
    best_recalls = np.zeros(3)
    best_negative_recall = 0.0
    for negative in BIAS_GRID:
        for positive in BIAS_GRID:
            bias = np.array([negative, 0.0, positive], dtype=np.float32)
            recalls = _recalls(y, (log_proba + bias).argmax(axis=1))
            hits = np.r_[(log_proba[y == 0] + bias).argmax(axis=1), (extra + bias).argmax(axis=1)]
            negative_recall = float(np.mean(hits == 0))
            feasible = negative_recall >= NEGATIVE_RECALL_FLOOR
            # feasible first, then macro-recall (or negative recall while infeasible),
            # then the smaller shift
            score = recalls.mean() if feasible else negative_recall
            key = (feasible, round(float(score), 6), -float(abs(negative) + abs(positive)))
            if best_key is None or key > best_key:
                best_key, best_bias, best_recalls = key, bias, recalls
                best_negative_recall = negative_recall
    predicted = (log_proba + best_bias).argmax(axis=1)
    metrics = {
        "cv_macro_recall": float(best_recalls.mean()),
        "cv_negative_recall": float(best_recalls[0]),
        "cv_neutral_recall": float(best_recalls[1]),
        "cv_positive_recall": float(best_recalls[2]),
        "cv_accuracy": float(np.mean(predicted == y)),
        "negative_recall_with_emotion_tweets": best_negative_recall,
    }
    return best_bias, metrics


def _recalls(y: IntArray, predicted: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    return np.array([np.mean(predicted[y == k] == k) if np.any(y == k) else 0.0 for k in range(3)])


def _to_head(
    model: Any,
    *,
    cues: tuple[FloatArray, FloatArray] | None,
    labels: Sequence[str] | None = None,
    decision_bias: FloatArray | None = None,
) -> LinearHead:
    """A fitted scikit-learn ``LogisticRegression`` as plain arrays.

    A binary model has one weight row w (P(second class) = sigmoid(w.x + b)); as a
    two-class softmax that is logits (0, w.x + b).
    """
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]], dtype=np.float32)
    classes = [str(c) for c in model.classes_] if labels is None else list(labels)
    empty = np.zeros(0, dtype=np.float32)
    return LinearHead(
        labels=tuple(classes),
        coef=coef,
        intercept=intercept,
        decision_bias=(
            np.zeros(len(classes), dtype=np.float32) if decision_bias is None else decision_bias
        ),
        cue_mean=cues[0] if cues else empty,
        cue_divisor=cues[1] if cues else empty,
    )


def _predict(head: LinearHead, vectors: FloatArray) -> list[str]:
    return [head.labels[i] for i in head.logits(vectors).argmax(axis=1)]


def _accuracy(expected: Sequence[str], predicted: Sequence[str]) -> float:
    return float(np.mean([a == b for a, b in zip(expected, predicted, strict=True)]))


def _macro_f1(expected: Sequence[str], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(list(expected), list(predicted), average="macro"))


# ---------------------------------------------------------------- up-to-date check


def _head_info(report: HeadReport) -> dict[str, Any]:
    return {
        "examples": report.examples,
        "metrics": {k: round(float(v), 4) for k, v in report.metrics.items()},
        "params": report.params,
    }


def _current_manifest(root: Path) -> dict[str, Any] | None:
    folder = newest_version_folder(root)
    if folder is None:
        return None
    try:
        return read_manifest(folder)
    except ClassifiersUnavailableError:
        return None  # a damaged version is replaced, never trusted


def _matches(manifest: dict[str, Any], sources: dict[str, Any], identity: EmbedderIdentity) -> bool:
    return bool(
        manifest.get("sources") == sources
        and identity.mismatch(manifest) is None
        and manifest.get("recipe") == RECIPE
        and {"sentiment", "intent"} <= set(manifest.get("heads", {}))
    )


def _report_from_manifest(manifest: dict[str, Any], root: Path, seconds: float) -> TrainingReport:
    heads = {
        name: HeadReport(
            name,
            int(meta.get("examples", 0)),
            len(meta.get("labels", [])),
            dict(meta.get("metrics", {})),
            dict(meta.get("params", {})),
        )
        for name, meta in manifest["heads"].items()
    }
    return TrainingReport(root, True, seconds, heads)
