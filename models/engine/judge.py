"""Yes/no judgments read from a model's first answer token, the same way for every engine.

The reranker asks the generation model "does this passage answer the question? yes or
no" and wants a graded answer, not a verdict: a passage the model is 90% sure about
should rank above one it is 55% sure about. So each engine generates one token greedily
with the log-probabilities of its top candidates, and this module turns those into
``P(yes) / (P(yes) + P(no))``. Tokens are matched case-insensitively after stripping
spaces ("Yes", " yes", "YES" all count), because tokenizers split the same word into
different pieces depending on what precedes it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from models.engine.base import SamplingOptions

_T = TypeVar("_T")

JUDGE_TOP_LOGPROBS = 20
"""Candidates whose log-probability the engine reports: vLLM's and OpenAI's maximum."""

JUDGE_OPTIONS = SamplingOptions(max_tokens=1, temperature=0.0)
"""One greedy token: the answer is the first word, and greedy makes it repeatable."""

UNDECIDED = 0.5
"""The score when neither yes nor no is among the top tokens: no opinion either way."""

YES = "yes"
NO = "no"


def answer_word(token: str) -> str:
    """A token as it is compared with yes and no: spaces stripped, lower case."""
    return token.strip().lower()


def yes_probability(top_logprobs: Iterable[tuple[str, float]]) -> float:
    """``P(yes) / (P(yes) + P(no))`` over the first token's top candidates.

    ``top_logprobs`` holds ``(token text, log-probability)`` pairs; every spelling of a
    word adds to its probability. ``UNDECIDED`` when neither word is among them.
    """
    yes = no = 0.0
    for token, logprob in top_logprobs:
        if not math.isfinite(logprob):
            continue
        word = answer_word(token)
        if word == YES:
            yes += math.exp(logprob)
        elif word == NO:
            no += math.exp(logprob)
    if yes + no <= 0.0:
        return UNDECIDED
    return yes / (yes + no)


def yes_probability_of_text(text: str) -> float:
    """The score of an answer whose probabilities are unknown: 1 for yes, 0 for no.

    For OpenAI-compatible servers that do not return log-probabilities (llama.cpp's older
    builds, or another Concierge): the greedy answer is still a judgment, only a coarse one.
    """
    word = answer_word(text).rstrip(".!,")
    if word == YES:
        return 1.0
    if word == NO:
        return 0.0
    return UNDECIDED


async def all_or_cancel(calls: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run ``calls`` concurrently; the first failure cancels the others (so the engine drops
    their requests) and is raised as it is, not wrapped in an exception group."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
