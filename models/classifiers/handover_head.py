"""A head that reads a hand-over reason from the meaning of a message, beside the phrases.

The phrase tables of the hand-over rules (``server/pipeline/handover_cues.py``) are
precise but literal: measured blind, they missed chargebacks and privacy demands written
in words nobody listed ("I'll get my card company to claw it back", "someone's been
ordering on my account"). This head is a multinomial logistic regression over the
message's sentence embedding (the one the pipeline computes anyway) with the labels
``none`` and the reasons a single message can carry: ``safety``, ``legal``,
``chargeback``, ``privacy``, ``explicit_request``.

Trained on the turns of the project's first four escalation sets
(``datasets/escalation/conversations.jsonl``, ``heldout.jsonl``, ``heldout-2.jsonl`` and
``heldout-3.jsonl``, each added once it had been measured blind): the turn at which a
person became due is an example of each of its word-borne reasons; every turn of a
control conversation, every turn before the due one and the due turns of the other
reasons (refunds, repeated failure, frustration) are ``none``. Bitext's requests add
English breadth: ``contact_human_agent`` as ``explicit_request``, a sample of the other
intents as ``none``. The fifth set (``heldout-4.jsonl``) is never read here.

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

from models.classifiers.fitting import MAX_ITER, Embed, FloatArray, HeadReport, to_head
from models.classifiers.linear_head import LinearHead
from models.classifiers.training_data import REPO_DATASETS, LabelledTexts, TrainingDataError
from models.prepare import sha256_file

HANDOVER_SETS = (
    Path("escalation/conversations.jsonl"),
    Path("escalation/heldout.jsonl"),
    Path("escalation/heldout-2.jsonl"),
    Path("escalation/heldout-3.jsonl"),
)
"""The first four escalation sets, inside a datasets folder (the repository's
``datasets/``); the fifth (``heldout-4.jsonl``) is only measured on."""
HANDOVER_LABELS = ("none", "safety", "legal", "chargeback", "privacy", "explicit_request")
WORD_REASONS = HANDOVER_LABELS[1:]
DEFAULT_ORDER = ("safety", "legal", "chargeback", "privacy", "explicit_request")
BITEXT_OTHERS = 600
C = 2.0
FOLDS = 5
SEED = 0
PRECISION_TARGET = 0.95
THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.5, 0.96, 0.05))


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
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise TrainingDataError(f"{path}:{number}: not a conversation: {exc}") from exc
            for seq, text in enumerate(turns, start=1):
                if due is not None and seq > due:
                    break  # after the hand-over the conversation is a person's
                label = reasons[0] if (seq == due and reasons) else "none"
                texts.append(str(text))
                labels.append(label)
    return LabelledTexts(texts, labels)


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
