"""A head that reads a hand-over reason from the meaning of a message, beside the phrases.

The phrase tables of the hand-over rules (``server/pipeline/handover_cues.py``) are
precise but literal: measured blind, they missed chargebacks and privacy demands written
in words nobody listed ("I'll get my card company to claw it back", "someone's been
ordering on my account"). This head is a multinomial logistic regression over the
message's sentence embeddings (the message's own, which the pipeline computes anyway,
and its sentences') with the labels
``none`` and the reasons a single message can carry: ``safety``, ``legal``,
``chargeback``, ``privacy``, ``explicit_request``, plus two readings that are not reasons
by themselves: ``money_back``, a request for money back ("the deposit comes back in full,
can you push it through"), which the refund rule still compares with the tenant's limit
through the amount the message writes; and ``did_not_help``, the customer saying that our
fix failed ("reinstalled the app, nothing", 驱动重装了，没用), which counts toward
``repeated_failure`` beside the phrases.

Trained on the turns of the project's escalation sets (``datasets/escalation/``: the
held-out sets up to the twelfth, each added once it had been measured blind, and the three
``training-extra*.jsonl`` sets, written for training only): the turn at which a person became
due is an example of its first word-borne reason, or of ``money_back`` when its only such
reason is a refund above the limit, or of ``did_not_help`` when it is the second failed fix
of a repeated failure; the turns of a ``below_limit`` control that write an amount (or ask
for "the full amount") are ``money_back`` too; the turns after the first of a repeated
failure before its due one, and the middle turns of the controls where a fix failed before
a thank-you, may be failed fixes or not and are left out; every other turn of a control,
every turn before the due one and the due turns of frustration are ``none``. Bitext's
requests add English breadth: ``contact_human_agent`` as ``explicit_request``, a sample of
the other intents as ``none``. A new blind set is
measured (bench/reading.py) before it joins them.

Two things make it read a new business's words better than a turn-level fit would:

* **Sentence by sentence.** A long message buries its one decisive sentence ("...it was
  returned untouched. I have asked UBS to recover the amount from my card."); the head
  reads the whole message and each of its sentences (``reading_units``) and takes, per
  reason, the highest probability.
* **A threshold chosen set by set.** Each escalation set was written by a different hand
  for different businesses, so the probability a reason must reach (``min_probability``
  in the manifest, ``Classifiers.handover_min_probability``) is chosen by leaving one whole set
  out at a time, at the level the hand-over acts on: the lowest probability at which at most
  ``CONTROL_FIRE_TARGET`` of the must-not-escalate conversations would be handed over by
  the head. Shuffled turn folds would see the same business's words on both sides and
  pick a threshold that is too cautious for unseen ones (the turn-fold rule chose 0.75,
  where the head alone caught 84% of the word-borne hand-overs of sets it had not seen;
  the rule here chose 0.55, where it catches 93%: docs/benchmarks.md, round 14).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
    Path("escalation/heldout-10.jsonl"),
    Path("escalation/heldout-11.jsonl"),
    Path("escalation/heldout-12.jsonl"),
    Path("escalation/training-extra.jsonl"),
    Path("escalation/training-extra-2.jsonl"),
    Path("escalation/training-extra-3.jsonl"),
)
"""The escalation sets the head learns from, inside a datasets folder (the repository's
``datasets/``). Each held-out set was measured blind before it was added; the next one
must be too."""
WORD_REASONS = ("safety", "legal", "chargeback", "privacy", "explicit_request")
MONEY_BACK = "money_back"
DID_NOT_HELP = "did_not_help"
HANDOVER_LABELS = ("none", *WORD_REASONS, MONEY_BACK, DID_NOT_HELP)
FAILED_FIX_CONTROLS = frozenset({"resolved", "thanks"})
"""Control kinds whose middle turns are failed fixes before a thank-you (GUIDE.md): left
out of the ``none`` examples, since they say what ``did_not_help`` means."""
DEFAULT_ORDER = ("safety", "legal", "chargeback", "privacy", "explicit_request")
BITEXT_OTHERS = 600
C = 2.0
SEED = 0
CONTROL_FIRE_TARGET = 0.05
"""At most this share of must-not-escalate conversations may be handed over by the head in
the leave-one-set-out estimate. The phrases add a few of their own; the acceptance bar is a
precision of 0.90 over all conversations."""
THRESHOLD_GRID: tuple[float, ...] = (
    *(round(float(x), 2) for x in np.arange(0.4, 0.96, 0.05)),
    0.97,
    0.99,
)
"""Coarse steps where a good embedder lands; the last two let a weak one (MiniLM, which
cannot read French or Chinese) still keep its false hand-overs down by saying less."""
MIN_SENTENCE_CHARS = 6
MAX_SENTENCES_READ = 16
"""A message's first 16 sentences are read on their own: each costs an embedding on the
request path, and a message can be 100,000 characters long."""
MIN_SENTENCE_IDEOGRAPHS = 3
"""A sentence the head reads on its own has at least 6 characters, or 3 Chinese ones
(我要投诉！ is a whole demand in 5)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")
_IDEOGRAPH = re.compile(r"[\u4e00-\u9fff]")


def reading_units(message: str) -> list[str]:
    """The texts the head reads for one message: the message, then its sentences when it
    has more than one (a sentence is cut at ``.!?`` followed by a space, at ``。！？``
    and at line breaks; shorter fragments than ``MIN_SENTENCE_CHARS`` are left out, and
    at most ``MAX_SENTENCES_READ`` are read)."""
    parts = [part.strip() for part in _SENTENCE_END.split(message) if part and part.strip()]
    sentences = [
        part
        for part in parts
        if len(part) >= MIN_SENTENCE_CHARS
        or len(_IDEOGRAPH.findall(part)) >= MIN_SENTENCE_IDEOGRAPHS
    ]
    return [message, *sentences[:MAX_SENTENCES_READ]] if len(sentences) > 1 else [message]


@dataclass
class HandoverExamples:
    """The sets' turns as labelled examples, with where each came from: the threshold is
    chosen per conversation, leaving one set out at a time."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    conversation: list[int] = field(default_factory=list)
    """Per turn, its conversation's index in the lists below."""
    group: list[int] = field(default_factory=list)
    """Per conversation, the set it came from (index into the paths read)."""
    word_reasons: list[tuple[str, ...]] = field(default_factory=list)
    """Per conversation, the word-borne reasons due at its trigger turn."""
    control: list[bool] = field(default_factory=list)
    """Per conversation, whether it must not be handed over at all."""


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


def load_handover_examples(paths: tuple[Path, ...] | None = None) -> HandoverExamples:
    """One example per turn of the sets (default: the repository's), labelled as the
    module doc says."""
    paths = handover_set_paths() if paths is None else paths
    examples = HandoverExamples()
    for group, path in enumerate(paths):
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
                control = not conversation.get("triggers")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise TrainingDataError(f"{path}:{number}: not a conversation: {exc}") from exc
            index = len(examples.group)
            examples.group.append(group)
            examples.word_reasons.append(tuple(reasons))
            examples.control.append(control)
            repeated = "repeated_failure" in conversation.get("triggers", ())
            thanked = conversation.get("control") in FAILED_FIX_CONTROLS
            for seq, text in enumerate(turns, start=1):
                if due is not None and seq > due:
                    break  # after the hand-over the conversation is a person's
                label = "none"
                if seq == due:
                    label = _due_label(reasons, refund, repeated)
                elif below_limit and _writes_an_amount(str(text), locale):
                    label = MONEY_BACK
                elif seq >= 2 and (repeated or (thanked and seq < len(turns))):
                    continue  # maybe the first "that did not help": neither label is sure
                examples.texts.append(str(text))
                examples.labels.append(label)
                examples.conversation.append(index)
    return examples


def _due_label(reasons: list[str], refund: bool, repeated: bool) -> str:
    """The label of the turn at which a person became due: its first word-borne reason,
    else a refund above the limit, else the second failed fix of a repeated failure."""
    if reasons:
        return reasons[0]
    if refund:
        return MONEY_BACK
    return DID_NOT_HELP if repeated else "none"


def _writes_an_amount(text: str, locale: str) -> bool:
    return bool(find_amounts(text, locale)) or mentions_full_amount(text)


def fit_handover_head(
    embed: Embed, examples: HandoverExamples, bitext: LabelledTexts, bitext_vectors: FloatArray
) -> tuple[LinearHead, HeadReport]:
    """Fit the head on every turn; the threshold comes from leaving one set out at a time,
    as the module doc says."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(SEED)
    people = [i for i, label in enumerate(bitext.labels) if label == "contact_human_agent"]
    others = [i for i, label in enumerate(bitext.labels) if label != "contact_human_agent"]
    chosen_others = sorted(rng.choice(len(others), min(BITEXT_OTHERS, len(others)), False))
    extra_rows = people + [others[i] for i in chosen_others]
    extra_labels = ["explicit_request"] * len(people) + ["none"] * len(chosen_others)
    x_sets = embed(examples.texts)
    sentences = [reading_units(text)[1:] for text in examples.texts]
    sentence_owner = np.array([i for i, found in enumerate(sentences) for _ in found], dtype=int)
    flat = [sentence for found in sentences for sentence in found]
    x_sentences = embed(flat) if flat else np.zeros((0, x_sets.shape[1]), dtype=np.float32)
    x = np.vstack([x_sets, bitext_vectors[extra_rows]]).astype(np.float32)
    names = list(HANDOVER_LABELS)
    y = np.array([names.index(label) for label in [*examples.labels, *extra_labels]])

    def model() -> Any:
        return LogisticRegression(C=C, class_weight="balanced", max_iter=MAX_ITER)

    turn_group = np.array([examples.group[c] for c in examples.conversation], dtype=int)
    out_of_set = np.zeros((len(x_sets), len(names)), dtype=np.float32)
    for group in np.unique(turn_group):
        held = turn_group == group
        kept = np.concatenate([~held, np.ones(len(extra_rows), dtype=bool)])
        fitted_without = model().fit(x[kept], y[kept])
        columns = [int(c) for c in fitted_without.classes_]
        out_of_set[np.ix_(held, columns)] = fitted_without.predict_proba(x_sets[held])
        mine = held[sentence_owner] if len(sentence_owner) else np.zeros(0, dtype=bool)
        if mine.any():
            by_sentence = np.zeros((int(mine.sum()), len(names)), dtype=np.float32)
            by_sentence[:, columns] = fitted_without.predict_proba(x_sentences[mine])
            np.maximum.at(out_of_set, sentence_owner[mine], by_sentence)
    threshold, metrics = _choose_threshold(out_of_set, examples)
    fitted = model().fit(x, y)
    if [int(c) for c in fitted.classes_] != list(range(len(names))):
        missing = sorted(set(names) - {names[int(c)] for c in fitted.classes_})
        raise TrainingDataError(f"the escalation sets give no example of {', '.join(missing)}")
    head = to_head(fitted, cues=None, labels=names)
    params = {
        "C": C,
        "threshold_split": "leave one escalation set out",
        "min_probability": threshold,
        "control_fire_target": CONTROL_FIRE_TARGET,
        "examples": {
            "set_turns": len(x_sets),
            "sentences_read": len(flat),
            "bitext": len(extra_rows),
        },
    }
    return head, HeadReport("handover", len(y), len(names), metrics, params)


def _choose_threshold(
    probabilities: FloatArray, examples: HandoverExamples
) -> tuple[float, dict[str, float]]:
    """The lowest grid probability at which the head hands over at most
    ``CONTROL_FIRE_TARGET`` of the control conversations (each turn read whole and by
    sentence, with a model that never saw its set); with the share of conversations due a
    word-borne reason that it catches, by the right reason, at that probability."""
    word = [HANDOVER_LABELS.index(reason) for reason in WORD_REASONS]
    strongest = probabilities[:, word].max(axis=1)
    named = np.array(WORD_REASONS)[probabilities[:, word].argmax(axis=1)]
    conversations = np.array(examples.conversation, dtype=int)
    controls = [i for i, control in enumerate(examples.control) if control]
    due = [i for i, reasons in enumerate(examples.word_reasons) if reasons]
    chosen: tuple[float, dict[str, float]] | None = None
    for threshold in THRESHOLD_GRID:
        fires = strongest >= threshold
        fired = set(conversations[fires].tolist())
        right = {
            int(c)
            for c, reason in zip(conversations[fires], named[fires], strict=True)
            if reason in examples.word_reasons[int(c)]
        }
        chosen = (
            float(threshold),
            {
                "cv_threshold": float(threshold),
                "cv_control_fire_rate": sum(c in fired for c in controls) / max(1, len(controls)),
                "cv_recall": sum(c in fired for c in due) / max(1, len(due)),
                "cv_right_reason": sum(c in right for c in due) / max(1, len(due)),
                "cv_controls": float(len(controls)),
                "cv_due": float(len(due)),
            },
        )
        if chosen[1]["cv_control_fire_rate"] <= CONTROL_FIRE_TARGET:
            break
    assert chosen is not None
    threshold, metrics = chosen
    # The same probability reads a failed fix: how many second failures it finds alone,
    # and how many controls it would count two failed fixes in (phrases not included).
    failed = probabilities[:, HANDOVER_LABELS.index(DID_NOT_HELP)] >= threshold
    labelled = np.array(examples.labels) == DID_NOT_HELP
    per_control = np.bincount(conversations[failed], minlength=len(examples.control))
    metrics["cv_did_not_help_recall"] = float(failed[labelled].mean()) if labelled.any() else 0.0
    metrics["cv_controls_with_two_failed_fixes"] = sum(per_control[c] >= 2 for c in controls) / max(
        1, len(controls)
    )
    return threshold, metrics
