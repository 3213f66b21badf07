"""Stage 2c, which of the customer's record facts to show: ranked against the message and
picked within a token budget.

``record.py`` turns every event into a ``RecordFact``; a small model's prompt has room for
a handful. ``select_facts`` ranks them: a named id first, then a fact whose kind the
message asks about (a parcel, a repair, an instalment, in English, French, German or
Chinese), then what is still open or upcoming, then the most recent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from server.pipeline.record import RecordFact
from server.store.customers import EventKind

KIND_WORDS: dict[EventKind, tuple[str, ...]] = {
    EventKind.ORDER: (
        "order",
        "bought",
        "purchase",
        "paid",
        "item",
        "commande",
        "achat",
        "bestellung",
        "gekauft",
        "订单",
        "购买",
        "买",
    ),
    EventKind.SHIPMENT: (
        "deliver",
        "parcel",
        "package",
        "track",
        "ship",
        "courier",
        "carrier",
        "arriv",
        "late",
        "where is",
        "livraison",
        "colis",
        "suivi",
        "livré",
        "lieferung",
        "paket",
        "sendung",
        "快递",
        "物流",
        "包裹",
        "送达",
        "配送",
        "到",
    ),
    EventKind.RETURN: (
        "return",
        "refund",
        "money back",
        "send back",
        "retour",
        "rembourse",
        "rückgabe",
        "erstattung",
        "zurück",
        "退货",
        "退款",
    ),
    EventKind.TICKET: (
        "ticket",
        "complain",
        "case",
        "reference",
        "request",
        "réclamation",
        "dossier",
        "beschwerde",
        "投诉",
        "工单",
    ),
    EventKind.BOOKING: (
        "book",
        "rent",
        "hire",
        "deposit",
        "appointment",
        "workshop",
        "pick up",
        "pickup",
        "collect",
        "réserv",
        "location",
        "caution",
        "rendez-vous",
        "miete",
        "kaution",
        "termin",
        "buchung",
        "预约",
        "租",
        "押金",
        "预订",
    ),
    EventKind.SERVICE_JOB: (
        "repair",
        "fix",
        "service",
        "broken",
        "part",
        "loan",
        "technician",
        "engineer",
        "réparation",
        "réparer",
        "pièce",
        "prêt",
        "reparatur",
        "ersatzteil",
        "维修",
        "修",
        "零件",
        "备用机",
    ),
    EventKind.PAYMENT_PLAN: (
        "instal",
        "payment",
        "pay ",
        "monthly",
        "klarna",
        "finance",
        "direct debit",
        "mensualité",
        "échéance",
        "paiement",
        "rate",
        "zahlung",
        "ratenzahlung",
        "分期",
        "付款",
        "还款",
    ),
    EventKind.MEMBERSHIP: (
        "member",
        "subscription",
        "renew",
        "tier",
        "club",
        "loyalty",
        "points",
        "plan",
        "adhésion",
        "abonnement",
        "fidélité",
        "mitglied",
        "abo",
        "会员",
        "订阅",
        "续费",
    ),
    EventKind.NOTE: (),
    EventKind.PAGE_VIEW: (),
}
"""Words (stems; lower case) by which a message asks about a kind of record."""


def _kind_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """Latin stems match at the start of a word ("late" not in "translate"); Chinese
    words, written without spaces, anywhere."""
    if not words:
        return None
    parts = [re.escape(w) if not w.isascii() else rf"\b{re.escape(w)}" for w in words]
    return re.compile("|".join(parts))


_KIND_PATTERNS = {str(kind): _kind_pattern(words) for kind, words in KIND_WORDS.items()}


_WORD = re.compile(r"[\w-]{4,}", re.UNICODE)


def relevance(fact: RecordFact, message: str, now: float) -> float:
    """How much ``fact`` bears on ``message``: named ids, asked-about kinds, open items,
    recency (see the module docstring)."""
    if fact.essential:
        return float("inf")
    text = message.lower()
    score = 0.0
    if any(key in text for key in fact.keys):
        score += 8.0
    pattern = _KIND_PATTERNS.get(fact.kind)
    if pattern is not None and pattern.search(text):
        score += 3.0
    message_words = set(_WORD.findall(text))
    named = {w for name in fact.words for w in _WORD.findall(name.lower())}
    score += min(2.0, 1.0 * len(named & message_words))
    if fact.active:
        score += 1.0
    if fact.occurred_at:
        age_days = max(0.0, (now - fact.occurred_at) / 86_400)
        score += 1.0 / (1.0 + age_days / 30.0)
    return score


def select_facts(
    facts: Sequence[RecordFact],
    message: str,
    now: float,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[str]:
    """The lines to show within ``budget_tokens``: the essential header lines always, then
    the most relevant facts that fit. They are shown in the record's own order (header,
    newest event first), not by score, so that two messages which pick the same facts
    share the profile block as a prompt prefix (vLLM's prefix cache)."""
    order = {id(fact): index for index, fact in enumerate(facts)}
    ranked = sorted(facts, key=lambda f: relevance(f, message, now), reverse=True)
    chosen: list[RecordFact] = []
    used = 0
    for fact in ranked:
        cost = count_tokens(fact.text) + 2
        if not fact.essential and used + cost > budget_tokens:
            continue
        chosen.append(fact)
        used += cost
    return [fact.text for fact in sorted(chosen, key=lambda f: order[id(f)])]


MAX_ANSWERING_FACTS = 2
NOT_FOR_THE_CUSTOMER = frozenset({str(EventKind.NOTE), "summary", "customer"})
"""Agent notes, the profile's summary and attribute lines inform the model; a composed
answer never quotes them to the customer."""


def _answer_score(fact: RecordFact, message: str, now: float) -> tuple[float, float]:
    """How surely ``fact`` is what ``message`` asks about: (what the message names of it,
    the ranking's relevance). A named id counts most, then the asked-about kind, then
    each word of the fact's product or item names; zero means the message names nothing
    of it, however recent or open it is."""
    text = message.lower()
    named = 8.0 if any(key in text for key in fact.keys) else 0.0
    pattern = _KIND_PATTERNS.get(fact.kind)
    if pattern is not None and pattern.search(text):
        named += 3.0
    message_words = set(_WORD.findall(text))
    words = {w for name in fact.words for w in _WORD.findall(name.lower())}
    named += 2.0 * min(2, len(words & message_words))
    return named, relevance(fact, message, now)


ABOUT_ONESELF = re.compile(
    r"\b(?:i|i'm|i've|i'd|me|my|mine|we|us|our|ours|je|j'|moi|mon|ma|mes|nous|notre|nos|"
    r"ich|mich|mir|mein\w*|wir|uns|unser\w*)\b|我",
    re.IGNORECASE,
)
"""A message in the first person ("my order", "what time should I be there", "ma
réparation", 我的): only then does a composed answer quote the customer's record; "Do you
offer gift wrapping?" asks the help centre alone."""


def answering_facts(
    facts: Sequence[RecordFact], message: str, now: float, limit: int = MAX_ANSWERING_FACTS
) -> list[RecordFact]:
    """The facts a composed answer quotes: those the message names something of, the
    surest first, at most ``limit``, and only the customer may read; none unless the
    message names an id of the record or speaks in the first person (``ABOUT_ONESELF``)."""
    text = message.lower()
    if not ABOUT_ONESELF.search(message) and not any(k in text for f in facts for k in f.keys):
        return []
    shown = [f for f in facts if not f.essential and f.kind not in NOT_FOR_THE_CUSTOMER]
    scored = [(_answer_score(f, message, now), -index, f) for index, f in enumerate(shown)]
    ranked = sorted((item for item in scored if item[0][0] > 0), reverse=True, key=lambda x: x[:2])
    return [fact for _, _, fact in ranked[:limit]]
