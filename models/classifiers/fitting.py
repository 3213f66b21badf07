"""Fitting one head: cross-validated logistic regressions over sentence embeddings.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifiers.linear_head import LinearHead
from models.classifiers.text_cues import CUE_FEATURE_NAMES, cue_features
from models.classifiers.training_data import SENTIMENT_LABEL_NAMES, LabelledTexts

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

SENTIMENT_C_GRID = (0.25, 0.5, 1.0, 2.0)
CUE_WEIGHT = 0.3  # standardized cues are scaled down so 9 cues do not outweigh 384 dims
NEGATIVE_RECALL_FLOOR = 0.85
BIAS_GRID = np.round(np.arange(-2.0, 2.0001, 0.1), 2)
SENTIMENT_FOLDS = 5
INTENT_C = 16.0
INTENT_FOLDS = 3
CV_SEED = 0
MAX_ITER = 3000


@dataclass(frozen=True)
class HeadReport:
    """What one head was trained on and how well it cross-validated."""

    name: str
    examples: int
    labels: int
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)


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


def predict(head: LinearHead, vectors: FloatArray) -> list[str]:
    return [head.labels[i] for i in head.logits(vectors).argmax(axis=1)]


def accuracy(expected: Sequence[str], predicted: Sequence[str]) -> float:
    return float(np.mean([a == b for a, b in zip(expected, predicted, strict=True)]))


def macro_f1(expected: Sequence[str], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(list(expected), list(predicted), average="macro"))


# ---------------------------------------------------------------- up-to-date check
