"""The hand-over reason head: how the sets become examples, and how sure it must be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.classifiers import Classifiers, EmbedderIdentity, TrainingDataError
from models.classifiers.handover_head import (
    CONTROL_FIRE_TARGET,
    HANDOVER_LABELS,
    MAX_SENTENCES_READ,
    HandoverExamples,
    _choose_threshold,
    fit_handover_head,
    load_handover_examples,
    reading_units,
)
from models.classifiers.head_store import StoredHeads
from models.classifiers.training_data import LabelledTexts
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
                "turns": ["No wifi.", "Rebooted, nothing.", "Reset it too, still no wifi."],
                "triggers": ["repeated_failure"],
                "trigger_turn": 3,
            },
            {"turns": ["Is the kettle safe for children?"], "triggers": [], "trigger_turn": None},
            {
                "turns": ["No sound.", "Tried that, no.", "Now it works, thanks!"],
                "triggers": [],
                "trigger_turn": None,
                "control": "thanks",
            },
        ],
    )
    examples = load_handover_examples((path,))
    # the first failed fix of each is left out: it says what did_not_help means, or not
    assert examples.texts == [
        "My order is late.",
        "My lawyer will call you, refund 900 EUR.",
        "No wifi.",
        "Reset it too, still no wifi.",
        "Is the kettle safe for children?",
        "No sound.",
        "Now it works, thanks!",
    ]
    assert examples.labels == ["none", "legal", "none", "did_not_help", "none", "none", "none"]
    assert examples.conversation == [0, 0, 1, 1, 2, 3, 3]
    assert examples.word_reasons == [("legal",), (), (), ()]
    assert examples.control == [False, False, True, True]


def test_each_conversation_remembers_the_set_it_came_from(tmp_path: Path) -> None:
    first = write_set(tmp_path / "a.jsonl", [{"turns": ["Hi."], "triggers": []}] * 2)
    second = write_set(tmp_path / "b.jsonl", [{"turns": ["Hello."], "triggers": []}])
    assert load_handover_examples((first, second)).group == [0, 0, 1]


def test_a_message_is_read_whole_and_sentence_by_sentence() -> None:
    letter = "The repair was never done. I have asked UBS to recover the amount.\nRegards, Jo"
    assert reading_units(letter) == [
        letter,
        "The repair was never done.",
        "I have asked UBS to recover the amount.",
        "Regards, Jo",
    ]
    assert reading_units("修好以后还是不行。我要投诉！") == [
        "修好以后还是不行。我要投诉！",
        "修好以后还是不行。",
        "我要投诉！",
    ]
    many = " ".join(f"Sentence number {n}." for n in range(40))
    assert len(reading_units(many)) == 1 + MAX_SENTENCES_READ
    # one sentence, decimals, and fragments too short to mean anything stay whole
    assert reading_units("It weighs 3.5 kg, is that right?") == ["It weighs 3.5 kg, is that right?"]
    assert reading_units("Ok. Thanks. Bye.") == ["Ok. Thanks. Bye."]


def _examples(controls: int, due: int) -> HandoverExamples:
    """One turn per conversation: ``controls`` controls, then ``due`` legal hand-overs."""
    examples = HandoverExamples()
    for index in range(controls + due):
        control = index < controls
        examples.texts.append(f"turn {index}")
        examples.labels.append("none" if control else "legal")
        examples.conversation.append(index)
        examples.group.append(0)
        examples.word_reasons.append(() if control else ("legal",))
        examples.control.append(control)
    return examples


def test_the_threshold_is_the_lowest_that_keeps_false_hand_overs_under_the_target() -> None:
    examples = _examples(controls=20, due=10)
    probabilities = np.zeros((30, len(HANDOVER_LABELS)), dtype=np.float32)
    legal = HANDOVER_LABELS.index("legal")
    probabilities[:2, legal] = 0.52  # two controls (10%) look legal at 0.52
    probabilities[2, legal] = 0.62  # one control (5%, the target) at 0.62
    probabilities[20:29, legal] = 0.8  # nine of ten hand-overs are clear
    probabilities[29, HANDOVER_LABELS.index("privacy")] = 0.9  # one is read as another reason
    threshold, metrics = _choose_threshold(probabilities, examples)
    assert threshold == 0.55
    assert metrics["cv_control_fire_rate"] == pytest.approx(CONTROL_FIRE_TARGET)
    assert metrics["cv_recall"] == pytest.approx(1.0)
    assert metrics["cv_right_reason"] == pytest.approx(0.9)
    assert metrics["cv_did_not_help_recall"] == 0.0
    assert metrics["cv_controls_with_two_failed_fixes"] == 0.0


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
    # rows: the message, then its sentences; one sure sentence is enough
    diluted = np.array([[0.1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    assert classifiers.message_handover_reasons(diluted) == ("chargeback",)
    unsure = np.array([[0.1, 1, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    assert classifiers.message_handover_reasons(unsure) == ()
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
    assert without.message_handover_reasons(diluted) == ()


REASON_WORDS = {
    "safety": "burn",
    "legal": "lawyer",
    "chargeback": "bank",
    "privacy": "data",
    "explicit_request": "human",
}
WORDS = (*REASON_WORDS.values(), "refund", "nothing", "order")


def keyword_embed(texts: list[str]) -> np.ndarray:
    """A stand-in embedder for the fitting logic: one dimension per keyword, plus noise."""
    rng = np.random.default_rng(len(texts))
    rows = [[float(word in text.lower()) for word in WORDS] for text in texts]
    return np.asarray(rows, dtype=np.float32) + rng.normal(0, 0.05, (len(texts), len(WORDS)))


def test_the_head_is_fitted_on_every_set_and_its_threshold_left_one_set_out(
    tmp_path: Path,
) -> None:
    def conversations(set_number: int) -> list[dict[str, object]]:
        due = [
            {"turns": [f"{word} {n}"], "triggers": [reason], "trigger_turn": 1}
            for reason, word in REASON_WORDS.items()
            for n in range(4)
        ]
        refunds = [
            {"turns": ["refund the 900 EUR"], "triggers": ["refund_limit"], "trigger_turn": 1}
        ] * 4
        failed = [
            {
                "turns": ["my order broke", "tried it, nothing", "nothing again"],
                "triggers": ["repeated_failure"],
                "trigger_turn": 3,
            }
        ] * (3 if set_number == 2 else 0)  # only the last set has failed fixes
        calm = [{"turns": [f"where is my order {n}?"], "triggers": []} for n in range(8)]
        return [*due, *refunds, *failed, *calm]

    paths = tuple(write_set(tmp_path / f"set-{n}.jsonl", conversations(n)) for n in range(3))
    examples = load_handover_examples(paths)
    bitext = LabelledTexts(["human please", "my order"] * 3, ["contact_human_agent", "x"] * 3)
    head, report = fit_handover_head(keyword_embed, examples, bitext, keyword_embed(bitext.texts))
    assert tuple(head.labels) == HANDOVER_LABELS
    assert report.params["threshold_split"] == "leave one escalation set out"
    metrics = report.metrics
    assert metrics["cv_recall"] == 1.0 and metrics["cv_right_reason"] == 1.0
    assert metrics["cv_control_fire_rate"] <= CONTROL_FIRE_TARGET
    assert metrics["cv_due"] == 60 and metrics["cv_controls"] == 24
    # each set is scored by a model that never saw it: the one scoring the last set has no
    # did_not_help column at all (its probabilities are mapped by class), so finds none
    assert metrics["cv_did_not_help_recall"] == 0.0
    assert head.labels[int(np.argmax(head.probabilities(keyword_embed(["nothing"]))[0]))] == (
        "did_not_help"
    )
    assert head.labels[int(np.argmax(head.probabilities(keyword_embed(["lawyer"]))[0]))] == "legal"


def test_a_label_no_set_gives_an_example_of_is_a_clear_error(tmp_path: Path) -> None:
    only_legal = write_set(
        tmp_path / "set.jsonl",
        [{"turns": ["My lawyer will call."], "triggers": ["legal"], "trigger_turn": 1}] * 3
        + [{"turns": ["Where is my order?"], "triggers": []}] * 3,
    )
    bitext = LabelledTexts(["talk to a human", "track my order"], ["contact_human_agent", "x"])
    with pytest.raises(TrainingDataError, match="no example of"):
        fit_handover_head(
            keyword_embed,
            load_handover_examples((only_legal,)),
            bitext,
            keyword_embed(bitext.texts),
        )
