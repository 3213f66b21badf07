"""When a reply misses the answer, and what the response says about the check."""

from __future__ import annotations

from server.pipeline.composed import ComposedAnswer
from server.pipeline.grounding import Verdict
from server.pipeline.reply_check import Grounding, misses_the_answer

FROM_RECORD = ComposedAnswer("...", (), facts=("Service job SJ-1: promised 1 December 2026",))
FROM_KB = ComposedAnswer("...", (1,), sentences=("Returns are free within 30 days.",))
NO_FIGURE = ComposedAnswer("...", (1,), sentences=("Returns are free.",))


def test_a_reply_without_any_figure_misses_a_record_or_figure_answer() -> None:
    vague = "We are working on it and will get back to you."
    assert misses_the_answer(vague, "Where is my repair?", FROM_RECORD)
    assert misses_the_answer(vague, "How long do I have to return it?", FROM_KB)
    assert not misses_the_answer(vague, "Can I return an opened kettle?", FROM_KB)
    assert not misses_the_answer(vague, "How long do I have?", NO_FIGURE)
    assert not misses_the_answer("You have 30 days.", "How long do I have?", FROM_KB)


def test_the_composed_alternative_carries_the_hand_over_too() -> None:
    marked = Grounding(True, Verdict(("150",), ("unsupported",)), composed="Returns: 30 days.")
    shown = marked.followed_by("A colleague takes over (ticket T-1).").as_dict()
    assert shown["composed"] == "Returns: 30 days.\n\nA colleague takes over (ticket T-1)."
    assert shown["passed"] is False and shown["unsupported"] == ["150"]
    plain = Grounding(True, Verdict())
    assert plain.followed_by("A colleague takes over.") is plain
