"""Stage 3b, rerank (``CONCIERGE_RERANK=llm``): the generation model judges which of the
retrieved passages answer the message, and the best-judged go to the prompt first.

Retrieval ranks by similarity, and similar is not the same as answering: "How long do I
have to return a kettle?" is close to the descaling FAQ (kettles) as well as to the returns
policy. The model that writes the reply can tell the difference when asked directly, one
passage at a time: "Does this passage answer the customer's question? Answer yes or no."
Each of the top ``candidates`` passages above the grounding threshold is scored by the
probability of "yes" (``EngineClient.judge_yes_no``: one greedy token per passage, all
submitted together so the engine batches them) and the passages are reordered by it;
ties keep the retrieval order, so a model with no opinion changes nothing.

The judge is an extra, never a condition of the reply. When it fails (the engine errs,
admission refuses, or it overruns ``timeout_s``, which counts the wait for admission too)
the failure is logged and counted in ``concierge_rerank_failures_total`` and the reply goes
on with the retrieval order.

**Admission.** The judge's requests reach the same engine as the replies, so they pass the
engine gate's admission like every generation: one reply's batch of judgments takes one
slot (they are one-token requests that vLLM runs side by side, gone within a step), waits
in the same queue and is shed with the same 503 reasons, which here mean "keep the
retrieval order". So an overloaded engine is not handed extra work, and a flood of
replies cannot use the judge to get past the queue. The slot is released before the
reply asks for its own, so a reply never holds two.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import TypeVar

from core import metrics
from core.errors import (
    ConciergeError,
    DeadlineExceededError,
    OverloadedError,
    ShuttingDownError,
)
from models.engine.base import ChatMessage
from retrieval.knowledge import SearchHit
from server.gate.engine_gate import Admission, EngineGate

log = logging.getLogger(__name__)

FAILURE_REASONS = ("timeout", "admission", "engine", "error")
"""Label values of ``concierge_rerank_failures_total``."""

JUDGE_SYSTEM = (
    "You check whether a passage from a company's help articles answers a customer's "
    "question. Reply with one word: yes or no."
)
JUDGE_QUESTION = "Does this passage answer the customer's question? Answer yes or no."
PASSAGE_CHARS = 1500
"""Longest passage text shown to the judge (chunks are shorter by default)."""

_Hit = TypeVar("_Hit")


def judge_messages(
    question: str, passage: SearchHit, earlier: str | None = None
) -> list[ChatMessage]:
    """The judge's prompt for one passage. The question comes before the passage, so the
    prompts of one reply share their beginning and the engine's prefix cache computes it
    once."""
    context = f"Earlier message: {earlier}\n" if earlier else ""
    heading = " / ".join(part for part in (passage.title, passage.section) if part)
    body = passage.text[:PASSAGE_CHARS]
    return [
        ChatMessage("system", JUDGE_SYSTEM),
        ChatMessage(
            "user",
            f"{context}Customer's question: {question}\n\n"
            f"Passage{f' ({heading})' if heading else ''}:\n{body}\n\n{JUDGE_QUESTION}",
        ),
    ]


def reorder(hits: Sequence[_Hit], scores: Sequence[float]) -> list[_Hit]:
    """``hits`` by descending score; equal scores keep their order (a stable sort)."""
    if len(hits) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(hits)} passages")
    ranked = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [hits[i] for i in ranked]


class PassageReranker:
    """Reorders a reply's KB passages by the generation model's judgment; built once."""

    def __init__(self, gate: EngineGate, candidates: int, timeout_s: float) -> None:
        self.candidates = candidates
        """Passages judged per reply: the first ones of the retrieval order."""
        self._gate = gate
        self._timeout_s = timeout_s
        metrics.export_at_zero(metrics.RERANK_FAILURES, "reason", FAILURE_REASONS)

    async def rerank(
        self,
        question: str,
        passages: Sequence[SearchHit],
        earlier: str | None = None,
        held: Admission | None = None,
    ) -> list[SearchHit]:
        """``passages`` with the first ``candidates`` reordered by the judge; the rest
        follow unchanged. On any failure of the judge, ``passages`` as they came.

        ``held`` is the reply's own engine slot, taken before its pipeline ran: the judge
        runs under it rather than queueing for a second one behind the reply itself."""
        judged, rest = list(passages[: self.candidates]), list(passages[self.candidates :])
        if len(judged) < 2:
            return [*judged, *rest]  # nothing to reorder: no judgment asked for
        prompts = [judge_messages(question, hit, earlier) for hit in judged]
        try:
            async with asyncio.timeout(self._timeout_s):
                scores = await self._judge(prompts, held)
            reordered = reorder(judged, scores)  # refuses a score list of the wrong length
        except TimeoutError:
            return self._fallback(passages, "timeout", f"no judgment within {self._timeout_s:g} s")
        except (OverloadedError, ShuttingDownError, DeadlineExceededError) as exc:
            return self._fallback(passages, "admission", exc.message)
        except ConciergeError as exc:
            return self._fallback(passages, "engine", f"{type(exc).__name__}: {exc.message}")
        except Exception as exc:  # a bug in the judge must not cost the customer the reply
            log.exception("the passage judge failed unexpectedly")
            return self._fallback(passages, "error", type(exc).__name__)
        metrics.RERANK_JUDGED_PASSAGES.inc(len(judged))
        log.debug(
            "judged %s", [(h.doc_id, round(s, 3)) for h, s in zip(judged, scores, strict=True)]
        )
        if reordered[0].chunk_id != judged[0].chunk_id:
            metrics.RERANK_FIRST_CHANGED.inc()
        return [*reordered, *rest]

    async def _judge(self, prompts: list[list[ChatMessage]], held: Admission | None) -> list[float]:
        """The scores, under the held slot or one of its own that is always given back."""
        request_id = f"rerank-{uuid.uuid4().hex}"
        if held is not None:
            return await self._gate.engine.judge_yes_no(prompts, request_id)
        admission = await self._gate.admit()
        try:
            return await self._gate.engine.judge_yes_no(prompts, request_id)
        finally:
            admission.release()

    @staticmethod
    def _fallback(passages: Sequence[SearchHit], reason: str, detail: str) -> list[SearchHit]:
        log.warning("reranking skipped, retrieval order kept (%s): %s", reason, detail)
        metrics.RERANK_FAILURES.labels(reason=reason).inc()
        return list(passages)
