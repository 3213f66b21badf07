"""Fitting one head: cross-validated logistic regressions over sentence embeddings.

Sentiment is fitted in ``support_sentiment.py`` (its data and decision bias are its own);
the pieces it shares with the intent head live here: the cue weighting, the bias grid,
the conversion of a fitted model into a ``LinearHead``.

Intent: ``C = INTENT_C`` (Bitext accuracy is flat from C 4 to 64), trained on the
training part of ``bitext_split`` and scored on its held-out part; cross-validated
accuracy and macro-F1 are recorded in the manifest too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifiers.linear_head import LinearHead

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Embed = Callable[[list[str]], FloatArray]
"""Texts in, their sentence embeddings out: the trainer's embedder, passed to a fit."""

CUE_WEIGHT = 0.3  # standardized cues are scaled down so 9 cues do not outweigh 384 dims
NEGATIVE_RECALL_FLOOR = 0.85
BIAS_GRID = np.round(np.arange(-2.0, 2.0001, 0.1), 2)
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
    head = to_head(model, cues=None)
    metrics = {
        "cv_accuracy": float(np.mean(out_of_fold == y)),
        "cv_macro_f1": float(f1_score(y, out_of_fold, average="macro")),
    }
    params = {"C": INTENT_C, "folds": folds}
    return head, HeadReport(name, len(y), len(head.labels), metrics, params)


def to_head(
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
