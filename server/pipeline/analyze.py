"""Stage 1, analyze: what the customer wrote, in which language, in what mood, wanting what.

The message is embedded once here; the same vector feeds the sentiment and intent
heads, the KB search, the history search and the product recommendations, so a reply
costs one embedding of the message however many stages use it. In the same batch its
sentences are embedded for the hand-over reason head alone, when it has more than one
(``reading_units``): one decisive sentence in a long letter is read on its own. A tenant
whose KB is built by its own tuned embedder (``concierge models tune-embedder``) costs a
second embedding, by that model, for its KB search alone: it is computed here too, so the
analysis time counts both.

Two signals are read directly from the text because a classifier should not be the only
way to catch them: an explicit request for a person, and a refund request with the
amounts it names (``core.money``), which the hand-over rules compare with the tenant's
limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.money import Money, find_amounts, mentions_full_amount
from models.classifiers import (
    Classifiers,
    IntentResult,
    LanguageResult,
    SentimentResult,
    detect_language,
    reading_units,
)
from models.classifiers.handover_head import DID_NOT_HELP
from models.embedder import Embedder
from server.pipeline import handover_cues

HUMAN_INTENTS = frozenset({"contact_human_agent"})
HUMAN_INTENT_MIN_CONFIDENCE = 0.6
"""The intent head asks for a person only this sure. Requests for a person score 0.69-0.99
with EmbeddingGemma's head (0.41-1.0 with MiniLM's, and the pattern below catches the
lowest); a fault report ("The mobile data on my loan phone stopped working") came out as
``contact_human_agent`` at 0.20 and was handed over instead of answered. Over the eleven
escalation sets, the turns that only the intent called a person request, at 0.40-0.60,
were 1 request in 5 (a hearing aid "with no sound", 没声音, at 0.43): the phrases and the
reason head find the others, so the bar is 0.6, not 0.4."""
MONEY_BACK_INTENTS = frozenset({"get_refund"})
"""Intents that ask for money back (``check_refund_policy`` asks about the rules, and
``track_refund`` about a refund already granted)."""

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
    asks_money_back: bool
    amounts: tuple[Money, ...] = ()
    """Money amounts the message writes, read by its language's number format."""
    full_amount: bool = False
    """It asks for "the full amount" back without a figure."""
    meant_reasons: tuple[str, ...] = ()
    """What the reason head reads in the message's meaning (beside the phrases the rules
    match): the reasons ``safety``, ``legal``, ``chargeback``, ``privacy``,
    ``explicit_request``, and the readings ``money_back`` and ``did_not_help``."""
    kb_vector: npt.NDArray[np.float32] | None = None
    """The message embedded by the model the tenant's KB is built with, where that is not
    the base embedder (a tuned one); None: the KB search uses ``vector``."""

    @property
    def says_it_did_not_help(self) -> bool:
        """The reason head reads a failed fix ("reinstalled it, nothing") in a message whose
        mood is not positive: "ah, I had to restart it. Thanks!" is a fix that worked."""
        return DID_NOT_HELP in self.meant_reasons and self.sentiment.label != "positive"

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
                "source": self.intent.source,
            },
        }


def requests_a_person(message: str, intent: IntentResult) -> bool:
    """The message asks for a person: in words the cues know, or by a sure intent."""
    sure = intent.confidence >= HUMAN_INTENT_MIN_CONFIDENCE
    return (intent.label in HUMAN_INTENTS and sure) or handover_cues.says(
        "explicit_request", message
    )


def asks_money_back(message: str, intent: str, meant_reasons: tuple[str, ...] = ()) -> bool:
    """A refund request: by the words, or by the ``get_refund`` intent or the reason head's
    ``money_back`` unless the message asks about the refund policy ("what is your refund
    policy over 500 euros?")."""
    if handover_cues.asks_for_money_back(message):
        return True
    meant = intent in MONEY_BACK_INTENTS or "money_back" in meant_reasons
    return (
        meant
        and not handover_cues.asks_about_policy(message)
        and not handover_cues.paid_back_by_someone_else(message)
    )


class Analyzer:
    """Language, sentiment, intent and hand-over readings of one message, from one
    embedding batch (the message, then its sentences).

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

    def analyze_sync(
        self,
        tenant: str | None,
        message: str,
        locale: str | None = None,
        min_intent_confidence: float = 0.0,
    ) -> Analysis:
        """``locale`` (the client's, e.g. ``de-AT``) decides how ambiguous amounts read;
        without it, the message's detected language does. Below ``min_intent_confidence``
        the tenant's own intent head defers to the general one, and that to ``unknown``
        (the tenant's ``[intents] min_confidence``)."""
        # One batch: the message, then its sentences for the hand-over reason head.
        units = self._embedder.embed_sync(reading_units(message), purpose="query")
        vector = units[:1]
        kb_vector = None
        if tenant is not None and self._kb_embedder is not None:
            kb_embedder = self._kb_embedder(tenant)
            if kb_embedder is not self._embedder:
                kb_vector = kb_embedder.embed_sync([message], purpose="query")[0]
        sentiment = self._classifiers.sentiment([message], vector)[0]
        intent = self._classifiers.intent(vector, tenant, min_confidence=min_intent_confidence)[0]
        language = detect_language(message)
        meant_reasons = self._classifiers.message_handover_reasons(units)
        return Analysis(
            language=language,
            sentiment=sentiment,
            intent=intent,
            vector=vector[0],
            human_requested=requests_a_person(message, intent),
            asks_money_back=asks_money_back(message, intent.label, meant_reasons),
            amounts=tuple(find_amounts(message, locale=locale or language.code)),
            full_amount=mentions_full_amount(message),
            meant_reasons=meant_reasons,
            kb_vector=kb_vector,
        )
