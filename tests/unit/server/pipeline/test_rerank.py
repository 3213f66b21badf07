"""The LLM reranker's pure parts: the judge's prompt, the stable reorder, and its fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from core.errors import EngineUnavailableError
from models.engine.base import ChatMessage
from retrieval.knowledge import SearchHit
from server.gate.admission import AdmissionController
from server.gate.engine_gate import EngineGate
from server.pipeline.rerank import PassageReranker, judge_messages, reorder
from tests.unit.server.pipeline.helpers import search_hit


def hit(chunk_id: int, text: str = "", title: str = "") -> SearchHit:
    return search_hit(title, text, doc_id=f"doc-{chunk_id}.md", chunk_id=chunk_id, score=0.5)


def test_reorder_by_descending_score() -> None:
    assert reorder(["a", "b", "c"], [0.2, 0.9, 0.5]) == ["b", "c", "a"]


def test_ties_keep_the_retrieval_order() -> None:
    assert reorder(["a", "b", "c", "d"], [0.5, 0.9, 0.5, 0.9]) == ["b", "d", "a", "c"]
    assert reorder(["a", "b", "c"], [0.5, 0.5, 0.5]) == ["a", "b", "c"]


def test_reorder_refuses_scores_that_do_not_match() -> None:
    with pytest.raises(ValueError):
        reorder(["a", "b"], [0.1])


def test_the_judge_sees_the_question_before_the_passage() -> None:
    messages = judge_messages(
        "How long do I have to return a kettle?",
        hit(1, "Items may be returned within 30 days.", "Returns"),
        earlier="I bought a kettle.",
    )
    assert [m.role for m in messages] == ["system", "user"]
    user = messages[1].content
    assert user.index("I bought a kettle.") < user.index("return a kettle")
    assert user.index("return a kettle") < user.index("within 30 days") < user.index("yes or no")
    assert "(Returns)" in user


class ScriptedEngine:
    """Only what the reranker uses of an engine: ``judge_yes_no``, with set answers."""

    def __init__(self, scores: list[float] | None = None, error: Exception | None = None):
        self.scores = scores
        self.error = error
        self.delay_s = 0.0
        self.prompts: list[Sequence[ChatMessage]] = []

    async def judge_yes_no(
        self, prompts: Sequence[Sequence[ChatMessage]], request_id: str
    ) -> list[float]:
        self.prompts = list(prompts)
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        assert self.scores is not None
        return self.scores


def rerank(
    engine: ScriptedEngine, passages: list[SearchHit], candidates: int = 3, timeout_s: float = 5
) -> tuple[list[int], AdmissionController]:
    admission = AdmissionController(max_running=1, max_queued=0, deadline_s=30)
    gate = EngineGate(engine, admission)  # type: ignore[arg-type]
    reranker = PassageReranker(gate, candidates, timeout_s)
    result = asyncio.run(reranker.rerank("Where is my parcel?", passages))
    return [h.chunk_id for h in result], admission


def test_the_first_candidates_are_reordered_and_the_rest_follow() -> None:
    engine = ScriptedEngine(scores=[0.1, 0.8, 0.8])
    order, admission = rerank(engine, [hit(i) for i in range(1, 6)], candidates=3)
    assert order == [2, 3, 1, 4, 5]
    assert len(engine.prompts) == 3
    assert admission.running == 0  # the judge's slot is given back


@pytest.mark.parametrize(
    "error", [EngineUnavailableError("the engine is not ready"), RuntimeError("a bug")]
)
def test_a_failing_judge_keeps_the_retrieval_order(error: Exception) -> None:
    order, admission = rerank(ScriptedEngine(error=error), [hit(i) for i in range(1, 4)])
    assert order == [1, 2, 3]
    assert admission.running == 0


def test_a_slow_judge_is_cut_at_its_timeout() -> None:
    engine = ScriptedEngine(scores=[0.0, 0.0, 1.0])
    engine.delay_s = 5.0
    order, admission = rerank(engine, [hit(i) for i in range(1, 4)], timeout_s=0.05)
    assert order == [1, 2, 3]
    assert admission.running == 0


def test_one_passage_is_not_judged() -> None:
    engine = ScriptedEngine(scores=[])
    order, _ = rerank(engine, [hit(7)])
    assert order == [7]
    assert engine.prompts == []


def test_a_judge_that_answers_the_wrong_number_of_scores_changes_nothing() -> None:
    order, _ = rerank(ScriptedEngine(scores=[1.0]), [hit(i) for i in range(1, 4)])
    assert order == [1, 2, 3]


def test_a_reply_that_holds_the_only_slot_is_judged_under_it() -> None:
    """The support reply takes its slot before the pipeline; the judge must not queue for a
    second one behind it (with one slot and no queue that would be a refusal)."""
    engine = ScriptedEngine(scores=[0.1, 0.9])
    admission = AdmissionController(max_running=1, max_queued=0, deadline_s=30)
    gate = EngineGate(engine, admission)  # type: ignore[arg-type]
    reranker = PassageReranker(gate, candidates=2, timeout_s=5)

    async def reply() -> tuple[list[int], int]:
        held = await gate.admit("support")
        judged = await reranker.rerank("Where is my parcel?", [hit(1), hit(2)], held=held)
        still_running = admission.running  # the reply still owns its slot
        held.release()
        return [h.chunk_id for h in judged], still_running

    order, still_running = asyncio.run(reply())
    assert order == [2, 1]
    assert still_running == 1 and admission.running == 0
