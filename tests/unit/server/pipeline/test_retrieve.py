"""Follow-up turns: searched with the previous message too, hits merged by similarity."""

from __future__ import annotations

from retrieval.knowledge import SearchHit
from server.pipeline.retrieve import follow_up_query, merge_hits


def hit(chunk_id: int, dense: float, fused: float = 0.5) -> SearchHit:
    return SearchHit(
        chunk_id=chunk_id,
        doc_id=f"doc-{chunk_id}.md",
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
