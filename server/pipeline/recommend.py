"""Stage 3b, recommend: products that fit the question and what the customer already has.

Candidates are scored by closeness to the message blended with closeness to the
products the customer bought or looked at, and what the customer owns is excluded.
Recommending is skipped altogether when it would be tone-deaf or unwanted:
a negative or frustrated message, a complaint or escalation, or no marketing consent.
Each suggestion carries a one-line reason built from the evidence that chose it.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.catalog import Product, ProductCatalog
from server.pipeline.analyze import Analysis
from server.pipeline.escalation import EscalationDecision
from server.pipeline.profile import CustomerProfile
from server.tenants import Recommendations

TONE_DEAF_INTENTS = frozenset(
    {"complaint", "contact_human_agent", "cancel_order", "delete_account", "get_refund"}
)
CANDIDATES = 8


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
    analysis: Analysis,
    profile: CustomerProfile | None,
    decision: EscalationDecision,
) -> str | None:
    """None when recommending is fine, else why not (for logs and tests)."""
    if not policy.enabled or policy.max_items == 0:
        return "disabled for this tenant"
    if profile is not None and not profile.customer.allows("marketing"):
        return "no marketing consent"
    if decision.escalate:
        return "the conversation is being escalated"
    if analysis.unhappy:
        return "the customer is unhappy"
    if analysis.intent.label in TONE_DEAF_INTENTS:
        return f"intent {analysis.intent.label}"
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
                _reason(catalog, tenant, product, query_sim, history_sim, owned, viewed),
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
    query_sim: float,
    history_sim: float,
    owned: list[str],
    viewed: list[str],
) -> str:
    """Say what chose the product: the question, something owned, or a recent view."""
    anchor = _closest_owned(catalog, tenant, product, owned)
    if product.product_id in viewed:
        seen = "you looked at it recently"
        return f"{seen}, and it goes well with your {anchor}" if anchor else seen
    if anchor and history_sim >= query_sim:
        return f"goes well with your {anchor}"
    return f"matches your question ({product.category})"


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
