"""BM25's reading of a question: how much of it the indexed texts share."""

from __future__ import annotations

import pytest

from retrieval.lexical import LexicalIndex

ARTICLES = [
    "Number porting: bring your number to Lumen and get a bonus of 25 EUR on the second bill.",
    "Lumen Care phone insurance covers theft and accidental damage.",
]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(ARTICLES)


def test_a_question_in_the_kbs_language_is_read_almost_whole(index: LexicalIndex) -> None:
    assert index.known_share("Can I port my number to Lumen and get the bonus?") >= 0.7


def test_a_question_in_another_language_is_read_only_where_a_token_is_shared(
    index: LexicalIndex,
) -> None:
    """Only "lumen" is shared: 5 of the 26 characters of its words."""
    share = index.known_share("如果我把朋友的号码从别的运营商转到 Lumen,有奖励吗?")
    assert share == pytest.approx(5 / 26)
    assert index.known_share("Combien coûte la livraison express ?") == 0.0


def test_nothing_to_read_gives_no_share() -> None:
    assert LexicalIndex.build([""]).known_share("anything at all") == 0.0
    assert LexicalIndex.build(ARTICLES).known_share("?!") == 0.0
