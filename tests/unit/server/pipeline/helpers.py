"""Building pipeline inputs by hand, for tests of one stage at a time."""

from __future__ import annotations

import numpy as np

from core.money import find_amounts, mentions_full_amount
from models.classifiers import IntentResult, LanguageResult, SentimentResult
from retrieval.knowledge import SearchHit
from server.pipeline.analyze import Analysis, asks_money_back, requests_a_person
from server.store.conversations import AnsweredBy, Turn


def analysis(
    message: str = "hello",
    *,
    sentiment: str = "neutral",
    score: float = 0.0,
    frustrated: bool = False,
    intent: str = "track_order",
    intent_confidence: float = 0.9,
    language: str = "en",
    meant_reasons: tuple[str, ...] = (),
) -> Analysis:
    """An analysis with the text-derived signals computed exactly as the analyzer does."""
    return Analysis(
        language=LanguageResult(language, 0.99),
        sentiment=SentimentResult(sentiment, score, 0.9, frustrated),
        intent=IntentResult(intent, intent_confidence),
        vector=np.zeros(384, dtype=np.float32),
        human_requested=requests_a_person(message, IntentResult(intent, intent_confidence)),
        asks_money_back=asks_money_back(message, intent, meant_reasons),
        amounts=tuple(find_amounts(message, locale=language)),
        full_amount=mentions_full_amount(message),
        meant_reasons=meant_reasons,
    )


def turn(seq: int, message: str, reply: str) -> Turn:
    """A stored model turn, as the memory window returns it."""
    return Turn(
        turn_id=f"t{seq}",
        conversation_id="c",
        seq=seq,
        created_at=0.0,
        message=message,
        reply=reply,
        answered_by=AnsweredBy.MODEL,
        language="en",
        sentiment="neutral",
        sentiment_score=0.0,
        frustrated=False,
        intent="x",
        intent_confidence=1.0,
        grounded=True,
    )


def search_hit(
    title: str, text: str, *, doc_id: str | None = None, chunk_id: int = 1, score: float = 0.8
) -> SearchHit:
    """A KB passage as retrieval returns it, scored ``score`` by the dense search; its
    document id is the lower-cased title unless given."""
    return SearchHit(
        chunk_id=chunk_id,
        doc_id=doc_id if doc_id is not None else title.lower(),
        title=title,
        source="",
        position=0,
        section="",
        text=text,
        content_hash="h",
        score=score,
        dense_score=score,
        lexical_score=None,
    )
