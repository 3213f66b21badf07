"""Stage 3b, recommend: products that fit the question and what the customer already has.

Candidates are scored by closeness to the message blended with closeness to the
products the customer bought or looked at, and what the customer owns is excluded.
Whether to suggest anything at all is the tenant's rule (``[recommendations]``): the moods
that allow it, never in a conversation that was handed over or reported harm, only when
the customer asks what to buy or for advice on a product (``only_when_asked``), never
beside intents the tenant lists, and never without marketing consent. Each suggestion
carries a one-line reason, in the customer's language, built from the evidence that
chose it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.catalog import Product, ProductCatalog
from server.pipeline.analyze import Analysis
from server.pipeline.escalation import ConversationSignals, EscalationDecision
from server.pipeline.profile import CustomerProfile
from server.tenants import Recommendations

CANDIDATES = 8

_ASKS_FOR_ADVICE = re.compile(
    "|".join(
        (
            r"\b(?:recommend|suggest|advise|advice)\w*\b",
            r"\b(?:which|what) (?:\w+ ){0,3}(?:should|would|could|do) (?:i|you|we) "
            r"(?:buy|get|book|choose|pick|order|suggest|recommend|take|use|try|go for)\b",
            r"\b(?:what(?:'s| is) the best|which is (?:the )?best|which one is better)\b",
            r"\bwhat (?:could|would|can) (?:i (?:use|buy|get)|keep|help me)\b",
            r"\b(?:which|what) (?:\w+ ){0,3}(?:would|will|might) (?:suit|fit|go with|work with|"
            r"be best|be good)",
            r"\b(?:anything|something) (?:i|we) (?:should|could|can) (?:buy|get|add)\b",
            r"\bgoes (?:well )?with\b|\bto go with\b|\bupgrade\b|\bbest (?:\w+ )?for\b",
            r"\bi(?:'d| would)? (?:like|want|need|am looking for|'m looking for) (?:a|an|some) "
            r"(?:new |good |better |second )?\w+ (?:for|to|that)\b",
            r"\b(?:me )?(?:conseill\w*|recommand\w*|sugg[eé]r\w*)|\bque (?:me )?(?:proposez|"
            r"conseillez)|\bquel(?:le)?s? (?:\w+ )?(?:choisir|acheter|prendre)\b",
            r"\b(?:empfehl\w*|welche[snm]? (?:\w+ )?(?:soll|sollte) ich)\b",
            r"\b(?:recomiend\w*|recomendar\w*|qué (?:\w+ )?(?:compro|me conviene))\b",
            r"推荐|建议(?:买|选|入手)|买(?:什么|哪个|哪款)|选(?:哪个|哪款|什么)|哪款|哪个(?:好|合适|适合)|"
            r"适合我的|有什么好的",
        )
    ),
    re.IGNORECASE,
)

REASONS: dict[str, dict[str, str]] = {
    "viewed": {
        "en": "you looked at it recently",
        "fr": "vous l'avez consulté récemment",
        "de": "Sie haben es sich kürzlich angesehen",
        "es": "lo ha visto recientemente",
        "zh": "您最近浏览过",
    },
    "viewed_with": {
        "en": "you looked at it recently, and it goes well with your {anchor}",
        "fr": "vous l'avez consulté récemment, et il va bien avec votre {anchor}",
        "de": "Sie haben es sich kürzlich angesehen, und es passt zu Ihrem {anchor}",
        "es": "lo ha visto recientemente y combina bien con su {anchor}",
        "zh": "您最近浏览过，而且和您的{anchor}很搭配",
    },
    "goes_with": {
        "en": "goes well with your {anchor}",
        "fr": "va bien avec votre {anchor}",
        "de": "passt zu Ihrem {anchor}",
        "es": "combina bien con su {anchor}",
        "zh": "和您的{anchor}很搭配",
    },
    "question": {
        "en": "matches your question ({category})",
        "fr": "correspond à votre question ({category})",
        "de": "passt zu Ihrer Frage ({category})",
        "es": "responde a su pregunta ({category})",
        "zh": "符合您的问题（{category}）",
    },
}
"""Why a product is suggested, per language; English where a language is missing."""


def asks_for_advice(message: str) -> bool:
    """The customer asks what to buy, or for advice on a product."""
    return _ASKS_FOR_ADVICE.search(message) is not None


@dataclass(frozen=True)
class Recommendation:
    product_id: str
    name: str
    reason: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "reason": self.reason,
            "score": round(self.score, 4),
        }


def should_recommend(
    policy: Recommendations,
    message: str,
    analysis: Analysis,
    profile: CustomerProfile | None,
    decision: EscalationDecision,
    signals: ConversationSignals,
) -> str | None:
    """None when recommending is fine, else why not (for logs and tests)."""
    if not policy.enabled or policy.max_items == 0:
        return "disabled for this tenant"
    if profile is not None and not profile.customer.allows("marketing"):
        return "no marketing consent"
    if decision.escalate:
        return "the conversation is being handed over"
    if not policy.after_escalation and (signals.handed_over_before or signals.harm_reported):
        return "the conversation was handed over or reported harm"
    mood = "negative" if analysis.unhappy else analysis.sentiment.label
    if mood not in policy.moods:
        return f"the customer's mood is {mood}"
    if analysis.intent.label in policy.blocked_intents:
        return f"intent {analysis.intent.label}"
    if policy.only_when_asked and not asks_for_advice(message):
        return "the customer did not ask for a suggestion"
    return None


def recommend_sync(
    catalog: ProductCatalog,
    tenant: str,
    policy: Recommendations,
    analysis: Analysis,
    profile: CustomerProfile | None,
) -> list[Recommendation]:
    """Up to ``policy.max_items`` products above ``policy.min_similarity``."""
    owned = profile.owned_products if profile else []
    viewed = profile.viewed_products if profile else []
    related = owned + viewed
    history = catalog.vectors_of(tenant, related) if related else None
    matches = catalog.search(
        tenant, analysis.vector, CANDIDATES, exclude=owned, history_vectors=history
    )
    chosen: list[Recommendation] = []
    for match, query_sim, history_sim in matches:
        if match.score < policy.min_similarity:
            break
        product = match.product
        chosen.append(
            Recommendation(
                product.product_id,
                product.name,
                _reason(
                    catalog,
                    tenant,
                    product,
                    (query_sim, history_sim),
                    (owned, viewed),
                    analysis.language.code,
                ),
                match.score,
            )
        )
        if len(chosen) >= policy.max_items:
            break
    return chosen


def _reason(
    catalog: ProductCatalog,
    tenant: str,
    product: Product,
    similarities: tuple[float, float],
    related: tuple[list[str], list[str]],
    language: str,
) -> str:
    """Say what chose the product, in ``language``: the question, something owned, or a
    recent view. ``similarities`` are to the question and to the customer's products,
    ``related`` the products owned and viewed."""
    query_sim, history_sim = similarities
    owned, viewed = related
    anchor = _closest_owned(catalog, tenant, product, owned)
    if product.product_id in viewed:
        key = "viewed_with" if anchor else "viewed"
    elif anchor and history_sim >= query_sim:
        key = "goes_with"
    else:
        key = "question"
    template = REASONS[key].get(language, REASONS[key]["en"])
    return template.format(anchor=anchor or "", category=product.category)


def _closest_owned(
    catalog: ProductCatalog, tenant: str, product: Product, owned: list[str]
) -> str | None:
    """The name of the owned product most similar to the recommended one."""
    known = [p for p in owned if p != product.product_id and catalog.get(tenant, p) is not None]
    if not known:
        return None
    target = catalog.vectors_of(tenant, [product.product_id])[0]
    similarity = catalog.vectors_of(tenant, known) @ target
    anchor = catalog.get(tenant, known[int(similarity.argmax())])
    return anchor.name if anchor else None
