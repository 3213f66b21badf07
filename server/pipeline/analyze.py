"""Stage 1, analyze: what the customer wrote, in which language, in what mood, wanting what.

The message is embedded once here; the same vector feeds the sentiment and intent
heads, the KB search, the history search and the product recommendations, so a reply
costs one embedding however many stages use it. A tenant whose KB is built by its own
tuned embedder (``concierge models tune-embedder``) costs a second one, by that model, for
its KB search alone: it is computed here too, so the analysis time counts both.

Two signals are read directly from the text because a classifier should not be the only
way to catch them: an explicit request for a person, and a refund amount to compare with
the tenant's limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.classifiers import (
    Classifiers,
    IntentResult,
    LanguageResult,
    SentimentResult,
    detect_language,
)
from models.embedder import Embedder

HUMAN_INTENTS = frozenset({"contact_human_agent"})
HUMAN_INTENT_MIN_CONFIDENCE = 0.4
"""The intent head asks for a person only this sure. Requests for a person score 0.69-0.99
with EmbeddingGemma's head (0.41-1.0 with MiniLM's, and the pattern below catches the
lowest); a fault report ("The mobile data on my loan phone stopped working") came out as
``contact_human_agent`` at 0.20 and was handed over instead of answered."""
REFUND_INTENTS = frozenset({"get_refund", "track_refund", "check_refund_policy"})

_HUMAN_REQUEST = re.compile(
    r"\b(?:talk|speak|chat|connect|transfer|put)\b[^.?!]{0,40}\b(?:human|person|agent|"
    r"representative|operator|someone|somebody|manager|supervisor|staff)\b"
    r"|\b(?:real|live|actual)\s+(?:human|person|agent)\b"
    r"|\bhuman\s+(?:agent|being|please)\b"
    r"|\b(?:mit einem menschen|un humain|une personne|um humano|een mens)\b"
    r"|\b(?:parler|discuter)\b[^.?!]{0,30}\b(?:conseill[eè]re?|humain|agent)\b"
    r"|人工客服|转人工|真人",
    re.IGNORECASE,
)
_AMOUNT = re.compile(
    r"(?:€|eur(?:o|os)?\s*)\s*(\d{1,7}(?:[.,]\d{1,2})?)"
    r"|(\d{1,7}(?:[.,]\d{1,2})?)\s*(?:€|eur(?:o|os)?\b)",
    re.IGNORECASE,
)
_REFUND_WORDS = re.compile(r"\b(?:refund|money back|reimburse|erstattung|rembourse)", re.I)

UNHAPPY_SCORE = -0.5
"""``P(positive) - P(negative)`` at or below which a message counts as unhappy.

The sentiment head is tuned to catch negative messages (high negative recall), so its
label alone also marks many plain questions "negative" with low confidence. Decisions
that change how we treat the customer (apologising, not recommending, counting a
negative streak) need the stronger signal; the label is still reported as is."""


@dataclass(frozen=True)
class Analysis:
    """Everything the later stages need to know about one message."""

    language: LanguageResult
    sentiment: SentimentResult
    intent: IntentResult
    vector: npt.NDArray[np.float32]
    human_requested: bool
    refund_amount: float | None
    kb_vector: npt.NDArray[np.float32] | None = None
    """The message embedded by the model the tenant's KB is built with, where that is not
    the base embedder (a tuned one); None: the KB search uses ``vector``."""

    @property
    def kb_query_vector(self) -> npt.NDArray[np.float32]:
        """The vector the KB search compares with the tenant's articles."""
        return self.vector if self.kb_vector is None else self.kb_vector

    @property
    def unhappy(self) -> bool:
        """Clearly negative or frustrated: what tone, recommendations and streaks act on."""
        return self.sentiment.frustrated or self.sentiment.score <= UNHAPPY_SCORE

    def as_dict(self) -> dict[str, object]:
        return {
            "language": {"code": self.language.code, "confidence": self.language.confidence},
            "sentiment": {
                "label": self.sentiment.label,
                "score": round(self.sentiment.score, 4),
                "frustrated": self.sentiment.frustrated,
            },
            "intent": {
                "label": self.intent.label,
                "confidence": round(self.intent.confidence, 4),
            },
        }


def asks_for_human(message: str) -> bool:
    """An explicit request for a person, in any wording the pattern knows."""
    return _HUMAN_REQUEST.search(message) is not None


def requests_a_person(message: str, intent: IntentResult) -> bool:
    """The message asks for a person: in words the pattern knows, or by a sure intent."""
    sure = intent.confidence >= HUMAN_INTENT_MIN_CONFIDENCE
    return (intent.label in HUMAN_INTENTS and sure) or asks_for_human(message)


def refund_amount(message: str, intent: str) -> float | None:
    """The largest money amount in a message about refunds, in the message's currency units."""
    if intent not in REFUND_INTENTS and not _REFUND_WORDS.search(message):
        return None
    amounts = []
    for match in _AMOUNT.finditer(message):
        raw = (match.group(1) or match.group(2)).replace(",", ".")
        amounts.append(float(raw))
    return max(amounts) if amounts else None


class Analyzer:
    """Language, sentiment and intent of one message, from one embedding.

    ``analyze_sync`` runs in the embedder's worker thread: embedding and the two
    heads are CPU work that must not run on the event loop. ``kb_embedder`` names the
    embedder of a tenant's KB queries (``KnowledgeBase.query_embedder``).
    """

    def __init__(
        self,
        embedder: Embedder,
        classifiers: Classifiers,
        kb_embedder: Callable[[str], Embedder] | None = None,
    ) -> None:
        self._embedder = embedder
        self._classifiers = classifiers
        self._kb_embedder = kb_embedder

    def analyze_sync(self, tenant: str | None, message: str) -> Analysis:
        vector = self._embedder.embed_sync([message], purpose="query")
        kb_vector = None
        if tenant is not None and self._kb_embedder is not None:
            kb_embedder = self._kb_embedder(tenant)
            if kb_embedder is not self._embedder:
                kb_vector = kb_embedder.embed_sync([message], purpose="query")[0]
        sentiment = self._classifiers.sentiment([message], vector)[0]
        intent = self._classifiers.intent(vector, tenant)[0]
        return Analysis(
            language=detect_language(message),
            sentiment=sentiment,
            intent=intent,
            vector=vector[0],
            human_requested=requests_a_person(message, intent),
            refund_amount=refund_amount(message, intent.label),
            kb_vector=kb_vector,
        )
