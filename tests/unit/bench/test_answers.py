"""The answer benchmark's fallback-on scoring of a ``mark`` run."""

from __future__ import annotations

from bench.answers import with_composed_answers


def test_failed_replies_are_replaced_by_their_composed_answer_and_errors_stay() -> None:
    responses = [
        {"reply": "Delivery costs 150 EUR.", "grounding": {"composed": "It costs 4.90 EUR [1]."}},
        {"reply": "You have 30 days.", "grounding": {"composed": None}},
        None,
    ]
    replaced = with_composed_answers(responses)
    assert [r["reply"] if r else None for r in replaced] == [
        "It costs 4.90 EUR [1].",
        "You have 30 days.",
        None,
    ]
    assert responses[0]["reply"] == "Delivery costs 150 EUR."  # the run's own record stays
