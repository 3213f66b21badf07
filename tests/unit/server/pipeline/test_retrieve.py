"""Follow-up turns searched with the previous message too, and passages spread over articles."""

from __future__ import annotations

from retrieval.knowledge import SearchHit
from server.pipeline.retrieve import (
    choose_passages,
    follow_up_query,
    merge_hits,
    spread_over_articles,
)


def hit(chunk_id: int, dense: float, fused: float = 0.5, doc: str | None = None) -> SearchHit:
    return SearchHit(
        chunk_id=chunk_id,
        doc_id=doc or f"doc-{chunk_id}.md",
        title="",
        source="",
        position=0,
        section="",
        text="",
        content_hash="h",
        score=fused,
        dense_score=dense,
        lexical_score=None,
    )


def test_a_first_message_has_no_follow_up_query() -> None:
    assert follow_up_query(None, "How long can I rent a bike?") is None


def test_a_follow_up_is_searched_after_the_previous_message() -> None:
    query = follow_up_query("How much is a day's bike rental?", "And for a whole week?")
    assert query == "How much is a day's bike rental?\nAnd for a whole week?"
    assert follow_up_query("x" * 1000, "and?") == "x" * 300 + "\nand?"


def test_merged_hits_rank_by_similarity_and_keep_each_chunk_once() -> None:
    alone = [hit(1, 0.31, fused=0.9), hit(2, 0.30)]
    in_context = [hit(3, 0.62), hit(1, 0.55)]
    merged = merge_hits(alone, in_context, top_k=2)
    assert [(h.chunk_id, h.dense_score) for h in merged] == [(3, 0.62), (1, 0.55)]


def test_each_searchs_best_hit_is_kept_even_below_the_others_similarity() -> None:
    """Either reading of a follow-up may be the customer's: both get a passage."""
    alone = [hit(1, 0.40), hit(2, 0.39)]
    in_context = [hit(3, 0.70), hit(4, 0.65)]
    assert [h.chunk_id for h in merge_hits(alone, in_context, top_k=2)] == [3, 1]
    assert [h.chunk_id for h in merge_hits(alone, in_context, top_k=3)] == [3, 1, 4]


def test_one_article_gives_one_passage_while_others_qualify() -> None:
    hits = [
        hit(1, 0.7, doc="plans.md"),
        hit(2, 0.6, doc="plans.md"),
        hit(3, 0.5, doc="plans.md"),
        hit(4, 0.4, doc="roaming.md"),
        hit(5, 0.3, doc="top-ups.md"),
    ]
    assert [h.chunk_id for h in spread_over_articles(hits, 3)] == [1, 4, 5]
    assert [h.chunk_id for h in spread_over_articles(hits[:4], 3)] == [1, 2, 4]  # refilled
    assert [h.chunk_id for h in spread_over_articles(hits[:3], 3)] == [1, 2, 3]  # no other
    assert [h.chunk_id for h in spread_over_articles(hits, 3, per_article=2)] == [1, 2, 4]


def test_passages_below_the_grounding_floor_never_displace_good_ones() -> None:
    hits = [
        hit(1, 0.7, doc="plans.md"),
        hit(2, 0.6, doc="plans.md"),
        hit(3, 0.2, doc="roaming.md"),
        hit(4, 0.5, doc="plans.md"),
    ]
    assert [h.chunk_id for h in choose_passages(hits, 3, min_similarity=0.3)] == [1, 2, 4]
    assert choose_passages(hits, 3, min_similarity=0.8) == []
