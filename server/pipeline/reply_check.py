"""Stage 6 in the pipeline: gather a reply's evidence, check the reply, compose a fallback.

``grounding.py`` judges a reply against an ``Evidence``; this module builds that evidence
from what ``prepare`` decided (the passages, the record lines, the history hits, the
suggested products, the tenant's own texts, today's date) and, when the check fails and
``reply_check`` is ``fallback``, replaces the reply with ``composed.py``'s answer. It
also ranks the passages' sentences against the message (``sentence_focus``, one batched
embedding of at most ``composed.MAX_CANDIDATES`` sentences by the KB embedder), before
generation: the prompt quotes the best of them, and a composed answer reuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from core import metrics
from retrieval.knowledge import KnowledgeBase, SearchHit
from server.pipeline.composed import (
    QUANTITY_QUESTION,
    ComposedAnswer,
    SentenceFocus,
    candidates,
    choose_sentences,
    compose_answer,
    rank_sentences,
)
from server.pipeline.grounding import Evidence, Verdict, check_reply, states_a_claim
from server.pipeline.injected import without_instructions
from server.pipeline.prepared import PreparedReply, ReplyCheckMode
from server.pipeline.profile import format_day
from server.pipeline.prompt import reply_language, tenant_rules, today_line, tone_guidance
from server.voice import BrandVoice, LocalizedText

log = logging.getLogger(__name__)

SentenceEmbedder = Callable[[Sequence[str]], Awaitable[npt.NDArray[np.float32]]]
"""Embeds passage sentences with the tenant's KB embedder (``purpose="sentence"``)."""


@dataclass(frozen=True)
class Grounding:
    """What the check found and what was done: the response's ``grounding`` field."""

    checked: bool
    verdict: Verdict
    fallback: bool = False
    composed: str | None = None
    """With ``reply_check=mark``, the answer the fallback would have sent instead of a
    failed reply: a client (an agent's console) may offer it."""

    def followed_by(self, handover: str) -> Grounding:
        """The hand-over message follows every reply, the composed alternative too."""
        if self.composed is None:
            return self
        return replace(self, composed=f"{self.composed}\n\n{handover}".strip())

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "passed": self.verdict.passed,
            "problems": list(self.verdict.problems),
            "unsupported": list(self.verdict.unsupported),
            "support": None if self.verdict.support is None else round(self.verdict.support, 3),
            "fallback": self.fallback,
            "composed": self.composed,
        }


NOT_CHECKED = Grounding(checked=False, verdict=Verdict())
"""A fixed reply (the hand-over message, the human-queue notice): the tenant's own words."""


def _all_texts(value: LocalizedText) -> list[str]:
    return [value] if isinstance(value, str) else list(value.values())


def _voice_texts(voice: BrandVoice) -> list[str]:
    """The tenant's own words: what it says (a phone number in a rule) is evidence too."""
    texts = [voice.persona, *voice.do, *voice.dont]
    for value in (voice.sign_off, voice.handover_message, voice.human_mode_ack):
        texts += _all_texts(value) if value else []
    return texts


def evidence_of(prepared: PreparedReply) -> Evidence:
    """What the model was given to answer from, the question, the language asked for and
    the instructions it must not recite (``grounding.Evidence``)."""
    voice = prepared.config.voice
    texts: list[str] = [today_line(prepared.now), prepared.now.date().isoformat()]
    if prepared.retrieved is not None:
        for hit in prepared.retrieved.passages:
            texts += [hit.title, hit.section, hit.text]
        texts += [f"{format_day(h.occurred_at)} {h.text}" for h in prepared.retrieved.history]
    texts += prepared.facts
    texts += [f"{r.name} ({r.product_id}): {r.reason}" for r in prepared.recommendations]
    texts += _voice_texts(voice)
    rules = [*tenant_rules(voice).splitlines(), tone_guidance(prepared.analysis, voice)]
    return Evidence(  # an instruction planted in the data vouches for nothing it names
        texts=tuple(without_instructions(t) for t in texts if t),
        question=prepared.request.message,
        language=reply_language(voice, prepared.analysis),
        rules=tuple(rules),
    )


def sentence_embedder(knowledge: KnowledgeBase, tenant: str) -> SentenceEmbedder:
    """Embeds passage sentences with the tenant's KB embedder, the one its question vector
    (``Analysis.kb_query_vector``) comes from."""
    embedder = knowledge.query_embedder(tenant)

    async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return await embedder.embed(texts, purpose="sentence")

    return embed


def _asked(prepared: PreparedReply) -> str:
    """The message, after the question before it when there was one ("And Gold members?")."""
    earlier = prepared.memory.last_question()
    return f"{earlier} {prepared.request.message}" if earlier else prepared.request.message


async def sentence_focus(
    prepared: PreparedReply, passages: Sequence[SearchHit], embed: SentenceEmbedder | None
) -> SentenceFocus:
    """The passages' sentences ranked against the message, read by meaning when there is
    an embedder (one batch of at most ``composed.MAX_CANDIDATES`` sentences)."""
    found = candidates(passages)
    meaning: tuple[float, ...] | None = None
    if found and embed is not None:
        vectors = await embed([f"{c.title}: {c.text}" for c in found])
        meaning = tuple(float(v) for v in vectors @ prepared.analysis.kb_query_vector)
    ranked = rank_sentences(_asked(prepared), found, meaning)
    return SentenceFocus(tuple(found), meaning, tuple(ranked))


async def composed_reply(prepared: PreparedReply, embed: SentenceEmbedder | None) -> ComposedAnswer:
    """The answer composed from the evidence (``composed.compose_answer``)."""
    voice = prepared.config.voice
    focus = prepared.focus
    if focus is None:
        passages = prepared.retrieved.passages if prepared.retrieved is not None else []
        focus = await sentence_focus(prepared, passages, embed)
    chosen = choose_sentences(focus.found, focus.ranked)
    facts: list[str] = []
    if prepared.profile is not None:
        facts = [
            without_instructions(f)
            for f in prepared.profile.answering_facts(_asked(prepared), prepared.now)
        ]
    return compose_answer(
        voice,
        reply_language(voice, prepared.analysis),
        unhappy=prepared.analysis.unhappy,
        record_facts=facts,
        sentences=chosen,
        handing_over=prepared.decision.escalate,
        data_language=voice.languages[0] if voice.languages else "en",
    )


def misses_the_answer(reply: str, question: str, answer: ComposedAnswer) -> bool:
    """``reply`` states no figure, date or id while the evidence that answers ``question``
    has some, and the question asks for a figure or about the customer's own record."""
    if states_a_claim(reply) or not any(states_a_claim(text) for text in answer.quoted):
        return False
    return bool(answer.facts) or QUANTITY_QUESTION.search(question) is not None


async def checked(
    prepared: PreparedReply,
    reply: str,
    mode: ReplyCheckMode,
    min_support: float,
    embed: SentenceEmbedder | None,
) -> tuple[str, Grounding]:
    """``reply`` checked under ``mode`` (off, mark, fallback), and the reply to send."""
    if mode == "off":
        return reply, Grounding(checked=False, verdict=Verdict())
    verdict = check_reply(reply, evidence_of(prepared), min_support)
    composed: ComposedAnswer | None = None
    if verdict.passed and not states_a_claim(reply):  # a cheap test first: most have one
        composed = await composed_reply(prepared, embed)
        if misses_the_answer(reply, prepared.request.message, composed):
            verdict = replace(verdict, problems=("misses_the_answer",))
    tenant = metrics.TENANT_LABELS.label(prepared.request.tenant)  # a bounded label set
    for problem in verdict.problems:
        metrics.REPLY_CHECK_PROBLEMS.labels(problem=problem).inc()
    if verdict.passed:
        metrics.REPLY_CHECKS.labels(tenant=tenant, outcome="passed").inc()
        return reply, Grounding(checked=True, verdict=verdict)
    composed = composed or await composed_reply(prepared, embed)
    if mode != "fallback":
        metrics.REPLY_CHECKS.labels(tenant=tenant, outcome="marked").inc()
        return reply, Grounding(checked=True, verdict=verdict, composed=composed.text)
    log.info(
        "reply %s failed its check (%s; unsupported: %s): composed from the evidence",
        prepared.turn_id,
        ", ".join(verdict.problems),
        ", ".join(verdict.unsupported) or "-",
    )
    metrics.REPLY_CHECKS.labels(tenant=tenant, outcome="fallback").inc()
    return composed.text, Grounding(True, verdict, fallback=True)
