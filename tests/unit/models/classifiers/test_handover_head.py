"""The hand-over reason head: how the sets become examples, and how sure it must be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.classifiers import Classifiers, EmbedderIdentity, TrainingDataError
from models.classifiers.handover_head import HANDOVER_LABELS, load_handover_examples
from models.classifiers.head_store import StoredHeads
from tests.classifier_sets import MODEL, head


def write_set(path: Path, conversations: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(c) for c in conversations) + "\n", encoding="utf-8")
    return path


def test_the_due_turn_carries_its_first_word_reason_and_later_turns_are_left_out(
    tmp_path: Path,
) -> None:
    path = write_set(
        tmp_path / "set.jsonl",
        [
            {
                "turns": ["My order is late.", "My lawyer will call you, refund 900 EUR.", "x"],
                "triggers": ["refund_limit", "legal"],
                "trigger_turn": 2,
            },
            {
                "turns": ["It didn't help.", "Still broken."],
                "triggers": ["repeated_failure"],
                "trigger_turn": 2,
            },
            {"turns": ["Is the kettle safe for children?"], "triggers": [], "trigger_turn": None},
        ],
    )
    examples = load_handover_examples((path,))
    assert examples.texts == [
        "My order is late.",
        "My lawyer will call you, refund 900 EUR.",
        "It didn't help.",
        "Still broken.",
        "Is the kettle safe for children?",
    ]
    assert examples.labels == ["none", "legal", "none", "none", "none"]


def test_refund_requests_are_money_back_whether_or_not_above_the_limit(tmp_path: Path) -> None:
    path = write_set(
        tmp_path / "set.jsonl",
        [
            {
                "turns": ["The trip was cancelled.", "Send the 900 EUR deposit back."],
                "triggers": ["refund_limit"],
                "trigger_turn": 2,
                "control": None,
            },
            {
                "turns": ["The lid cracked.", "Could I get the 30 EUR back?"],
                "triggers": [],
                "trigger_turn": None,
                "control": "below_limit",
            },
            {
                "turns": ["I paid 900 EUR, when will it arrive?"],
                "triggers": [],
                "trigger_turn": None,
                "control": "amount_not_refund",
            },
        ],
    )
    assert load_handover_examples((path,)).labels == [
        "none",
        "money_back",
        "none",
        "money_back",
        "none",  # an amount that asks for nothing back
    ]


def test_a_broken_set_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"broken\.jsonl:1"):
        load_handover_examples((broken,))
    with pytest.raises(TrainingDataError, match="missing"):
        load_handover_examples((tmp_path / "absent.jsonl",))


def test_only_reasons_above_the_stored_probability_are_read(tmp_path: Path) -> None:
    weights = [[0, 0, 0, 0]] * len(HANDOVER_LABELS)
    weights = [list(row) for row in weights]
    weights[HANDOVER_LABELS.index("chargeback")] = [9, 0, 0, 0]
    heads = {
        "sentiment": head(("negative", "neutral", "positive"), [[0] * 4] * 3),
        "intent": head(("a", "b"), [[0] * 4] * 2),
        "handover": head(HANDOVER_LABELS, weights),
    }
    manifest = {
        "embedding_model": MODEL,
        "heads": {"handover": {"params": {"min_probability": 0.8}}},
    }
    classifiers = Classifiers(
        tmp_path,
        StoredHeads(tmp_path / "default", 0, heads, manifest),
        embedder=EmbedderIdentity(MODEL, None),
    )
    vectors = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    assert classifiers.handover_reasons(vectors) == [("chargeback",), ()]
    without = Classifiers(
        tmp_path,
        StoredHeads(
            tmp_path / "default",
            0,
            {k: heads[k] for k in ("sentiment", "intent")},
            {"embedding_model": MODEL},
        ),
        embedder=EmbedderIdentity(MODEL, None),
    )
    assert without.handover_reasons(vectors) == [(), ()]
