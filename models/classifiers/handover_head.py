"""A head that reads a hand-over reason from the meaning of a message, beside the phrases.

The phrase tables of the hand-over rules (``server/pipeline/handover_cues.py``) are
precise but literal: measured blind, they missed chargebacks and privacy demands written
in words nobody listed ("I'll get my card company to claw it back", "someone's been
ordering on my account"). This head is a multinomial logistic regression over the
message's sentence embedding (the one the pipeline computes anyway) with the labels
``none`` and the reasons a single message can carry: ``safety``, ``legal``,
``chargeback``, ``privacy``, ``explicit_request``, plus ``money_back``: a request for money
back ("the deposit comes back in full, can you push it through"), which the refund rule
still compares with the tenant's limit through the amount the message writes.

Trained on the turns of the project's escalation sets (``datasets/escalation/``: the
first ten, each added once it had been measured blind, and the three
``training-extra*.jsonl`` sets, written for training only): the turn at which a person became
due is an example of its first word-borne reason, or of ``money_back`` when its only such
reason is a refund above the limit; the turns of a ``below_limit`` control that write an
amount (or ask for "the full amount") are ``money_back`` too; every other turn of a
control, every turn before the due one and the due turns of repeated failure and
frustration are ``none``. Bitext's requests add English breadth: ``contact_human_agent``
as ``explicit_request``, a sample of the other intents as ``none``. A new blind set is
measured (bench/reading.py) before it joins them.

The probability a reason must reach (``HANDOVER_MIN_PROBABILITY``, stored in the manifest)
is chosen by cross-validation for precision: false hand-overs cost a person's time and
the customer's patience, and the phrases already catch the plain cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.money import find_amounts, mentions_full_amount
from models.classifiers.fitting import MAX_ITER, Embed, FloatArray, HeadReport, to_head
from models.classifiers.linear_head import LinearHead
from models.classifiers.training_data import REPO_DATASETS, LabelledTexts, TrainingDataError
from models.prepare import sha256_file

HANDOVER_SETS = (
    Path("escalation/conversations.jsonl"),
    Path("escalation/heldout.jsonl"),
    Path("escalation/heldout-2.jsonl"),
    Path("escalation/heldout-3.jsonl"),
    Path("escalation/heldout-4.jsonl"),
    Path("escalation/heldout-5.jsonl"),
    Path("escalation/heldout-6.jsonl"),
    Path("escalation/heldout-7.jsonl"),
    Path("escalation/heldout-8.jsonl"),
    Path("escalation/heldout-9.jsonl"),
    Path("escalation/training-extra.jsonl"),
    Path("escalation/training-extra-2.jsonl"),
    Path("escalation/training-extra-3.jsonl"),
)
"""The escalation sets the head learns from, inside a datasets folder (the repository's
``datasets/``). Each held-out set was measured blind before it was added; the next one
must be too."""
WORD_REASONS = ("safety", "legal", "chargeback", "privacy", "explicit_request")
MONEY_BACK = "money_back"
HANDOVER_LABELS = ("none", *WORD_REASONS, MONEY_BACK)
DEFAULT_ORDER = ("safety", "legal", "chargeback", "privacy", "explicit_request")
BITEXT_OTHERS = 600
C = 2.0
FOLDS = 5
SEED = 0
PRECISION_TARGET = 0.95
THRESHOLD_GRID: tuple[float, ...] = (
    *(round(float(x), 2) for x in np.arange(0.5, 0.96, 0.05)),
    0.97,
    0.99,
)
"""Coarse steps where a good embedder lands; the last two let a weak one (MiniLM, which
cannot read French or Chinese) still reach the precision target by saying less."""


def handover_set_paths(datasets: Path = REPO_DATASETS) -> tuple[Path, ...]:
    """Where the sets the head is fitted on lie in ``datasets``."""
    return tuple(datasets / relative for relative in HANDOVER_SETS)


def handover_set_hashes(datasets: Path = REPO_DATASETS) -> dict[str, dict[str, object]]:
    """The sets' SHA-256 and size by repository path (``datasets/...``, wherever the folder
    lies), recorded with the other sources."""
    hashes: dict[str, dict[str, object]] = {}
    for relative, path in zip(HANDOVER_SETS, handover_set_paths(datasets), strict=True):
        if not path.is_file():
            raise TrainingDataError(f"the escalation set {path} is missing (datasets/ in the repo)")
        key = f"datasets/{relative.as_posix()}"
        hashes[key] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return hashes


def load_handover_examples(paths: tuple[Path, ...] | None = None) -> LabelledTexts:
    """One example per turn of the sets (default: the repository's), labelled as the
    module doc says."""
    paths = handover_set_paths() if paths is None else paths
    texts: list[str] = []
    labels: list[str] = []
    for path in paths:
        if not path.is_file():
            raise TrainingDataError(f"the escalation set {path} is missing (datasets/ in the repo)")
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                conversation = json.loads(line)
                turns = list(conversation["turns"])
                due = conversation.get("trigger_turn")
                reasons = [r for r in DEFAULT_ORDER if r in conversation.get("triggers", ())]
                refund = "refund_limit" in conversation.get("triggers", ())
                below_limit = conversation.get("control") == "below_limit"
                locale = str(conversation.get("locale") or conversation.get("language") or "en")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise TrainingDataError(f"{path}:{number}: not a conversation: {exc}") from exc
            for seq, text in enumerate(turns, start=1):
                if due is not None and seq > due:
                    break  # after the hand-over the conversation is a person's
                label = "none"
                if seq == due:
                    label = reasons[0] if reasons else MONEY_BACK if refund else "none"
                elif below_limit and _writes_an_amount(str(text), locale):
                    label = MONEY_BACK
                texts.append(str(text))
                labels.append(label)
    return LabelledTexts(texts, labels)


def _writes_an_amount(text: str, locale: str) -> bool:
    return bool(find_amounts(text, locale)) or mentions_full_amount(text)


def fit_handover_head(
    embed: Embed, examples: LabelledTexts, bitext: LabelledTexts, bitext_vectors: FloatArray
) -> tuple[LinearHead, HeadReport]:
    """Fit the head; the threshold is the lowest on the grid whose cross-validated
    precision over all word-borne reasons reaches ``PRECISION_TARGET``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(SEED)
    people = [i for i, label in enumerate(bitext.labels) if label == "contact_human_agent"]
    others = [i for i, label in enumerate(bitext.labels) if label != "contact_human_agent"]
    chosen_others = sorted(rng.choice(len(others), min(BITEXT_OTHERS, len(others)), False))
    extra_rows = people + [others[i] for i in chosen_others]
    extra_labels = ["explicit_request"] * len(people) + ["none"] * len(chosen_others)
    x_sets = embed(examples.texts)
    x = np.vstack([x_sets, bitext_vectors[extra_rows]]).astype(np.float32)
    names = list(HANDOVER_LABELS)
    y = np.array([names.index(label) for label in [*examples.labels, *extra_labels]])
    from_sets = np.arange(len(x)) < len(x_sets)

    def model() -> Any:
        return LogisticRegression(C=C, class_weight="balanced", max_iter=MAX_ITER)

    out_of_fold = np.zeros((len(y), len(names)), dtype=np.float32)
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for kept, held in splitter.split(x, y):
        out_of_fold[held] = model().fit(x[kept], y[kept]).predict_proba(x[held])
    threshold, metrics = _choose_threshold(out_of_fold[from_sets], y[from_sets])
    fitted = model().fit(x, y)
    head = to_head(fitted, cues=None, labels=names)
    params = {
        "C": C,
        "folds": FOLDS,
        "min_probability": threshold,
        "precision_target": PRECISION_TARGET,
        "examples": {"set_turns": int(from_sets.sum()), "bitext": len(extra_rows)},
    }
    return head, HeadReport("handover", len(y), len(names), metrics, params)


def _choose_threshold(
    probabilities: FloatArray, y: npt.NDArray[np.int64]
) -> tuple[float, dict[str, float]]:
    best: tuple[float, dict[str, float]] | None = None
    for threshold in THRESHOLD_GRID:
        top = probabilities[:, 1:].argmax(axis=1) + 1
        fires = probabilities[np.arange(len(y)), top] >= threshold
        hits = fires & (top == y)
        positives = y > 0
        precision = float(hits.sum() / fires.sum()) if fires.any() else 1.0
        recall = float(hits.sum() / positives.sum()) if positives.any() else 0.0
        metrics = {
            "cv_threshold": float(threshold),
            "cv_precision": precision,
            "cv_recall": recall,
            "cv_false_on_none": float((fires & ~positives).sum() / max(1, (~positives).sum())),
        }
        if precision >= PRECISION_TARGET:
            return float(threshold), metrics
        best = (float(threshold), metrics)
    assert best is not None
    return best
