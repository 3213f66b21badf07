"""Yes/no judgments from a first token's log-probabilities, and from answers without them."""

from __future__ import annotations

import asyncio
import math

import pytest

from core.errors import UpstreamError
from models.engine.judge import UNDECIDED, all_or_cancel, yes_probability, yes_probability_of_text
from models.engine.openai_wire import judged_score


def test_yes_against_no_is_normalised_over_the_two_words() -> None:
    top = [("Yes", math.log(0.6)), ("No", math.log(0.2)), ("Maybe", math.log(0.15))]
    assert yes_probability(top) == pytest.approx(0.75)


def test_every_spelling_of_a_word_counts() -> None:
    top = [
        ("Yes", math.log(0.3)),
        (" yes", math.log(0.2)),
        ("YES ", math.log(0.1)),
        (" No", math.log(0.3)),
        ("no", math.log(0.1)),
    ]
    assert yes_probability(top) == pytest.approx(0.6)


def test_words_that_only_start_like_yes_or_no_do_not_count() -> None:
    top = [("Yesterday", math.log(0.5)), ("Not", math.log(0.3)), ("no", math.log(0.1))]
    assert yes_probability(top) == pytest.approx(0.0)


def test_neither_word_among_the_top_tokens_is_no_opinion() -> None:
    assert yes_probability([("The", -0.1), ("I", -2.0)]) == UNDECIDED
    assert yes_probability([]) == UNDECIDED
    assert yes_probability([("yes", -math.inf), ("no", -math.inf)]) == UNDECIDED


def test_a_bare_answer_scores_one_zero_or_undecided() -> None:
    assert yes_probability_of_text(" Yes.") == 1.0
    assert yes_probability_of_text("no") == 0.0
    assert yes_probability_of_text("The passage") == UNDECIDED


def test_an_openai_chat_answer_with_top_logprobs() -> None:
    answer = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "Yes"},
                "logprobs": {
                    "content": [
                        {
                            "token": "Yes",
                            "logprob": math.log(0.7),
                            "top_logprobs": [
                                {"token": "Yes", "logprob": math.log(0.7)},
                                {"token": "No", "logprob": math.log(0.3)},
                            ],
                        }
                    ]
                },
            }
        ]
    }
    assert judged_score(answer) == pytest.approx(0.7)


def test_an_openai_chat_answer_without_logprobs_is_read_from_its_text() -> None:
    answer = {"choices": [{"message": {"content": "No"}, "logprobs": None}]}
    assert judged_score(answer) == 0.0


def test_a_judgment_in_another_shape_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        judged_score({"choices": []})


def test_the_first_failure_cancels_the_other_calls() -> None:
    cancelled: list[str] = []

    async def slow() -> float:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return 1.0

    async def failing() -> float:
        await asyncio.sleep(0)
        raise UpstreamError("down")

    async def scenario() -> None:
        with pytest.raises(UpstreamError):
            await all_or_cancel([slow(), failing()])

    asyncio.run(scenario())
    assert cancelled == ["slow"]
