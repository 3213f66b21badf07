"""Recommendations on a real embedded catalog: relevance, exclusions, reasons, and restraint."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.db import create_database_engine
from models.embedder import Embedder
from retrieval.catalog import Product, ProductCatalog
from server.pipeline.analyze import Analysis
from server.pipeline.escalation import ConversationSignals, EscalationDecision, EscalationReason
from server.pipeline.profile import CustomerProfile, build_profile
from server.pipeline.recommend import asks_for_advice, recommend_sync, should_recommend
from server.store.customers import Customer, CustomerEvent, EventKind
from server.store.schema import create_schema
from server.tenants import Recommendations
from tests.unit.server.pipeline.helpers import analysis

PRODUCTS = [
    Product("ESP-1", "Barista espresso machine", "coffee machines", "15 bar espresso machine"),
    Product("GRN-1", "Burr coffee grinder", "coffee grinders", "Conical burr grinder for espresso"),
    Product("DSC-1", "Descaler for coffee machines", "accessories", "Removes limescale"),
    Product("TST-1", "Two-slot toaster", "toasters", "Toaster with a crumb tray"),
]


def customer(marketing: bool = True) -> Customer:
    consent = {"personalization": True, "marketing": marketing}
    return Customer("shop", "ana", "Ana", "gold", "en", consent, {}, 0.0, 0.0)


def events() -> list[CustomerEvent]:
    order = {
        "order_id": "O-1",
        "items": [
            {
                "product_id": "ESP-1",
                "name": "Barista espresso machine",
                "quantity": 1,
                "price": 300.0,
            }
        ],
        "total": 300.0,
        "status": "delivered",
    }
    return [
        CustomerEvent(EventKind.PAGE_VIEW, 2.0, {"product_id": "GRN-1"}),
        CustomerEvent(EventKind.ORDER, 1.0, order),
    ]


def test_suggestions_fit_the_question_skip_what_is_owned_and_say_why(
    tmp_path: Path, embedder: Embedder
) -> None:
    database = create_database_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    create_schema(database)
    catalog = ProductCatalog(database, embedder)
    assert catalog.put("shop", PRODUCTS) == 4
    profile = build_profile(customer(), events(), [], None, catalog)
    assert profile.owned_products == ["ESP-1"] and profile.viewed_products == ["GRN-1"]
    assert profile.favourite_categories == ["coffee machines"]
    message = "How do I make my espresso taste less sour?"
    question = analysis(message)
    question = type(question)(**{**vars(question), "vector": embedder.embed_sync([message])[0]})
    picks = recommend_sync(catalog, "shop", Recommendations(max_items=2), question, profile)
    ids = [p.product_id for p in picks]
    assert "ESP-1" not in ids and ids[0] == "GRN-1"
    assert picks[0].reason == (
        "you looked at it recently, and it goes well with your Barista espresso machine"
    )
    assert "TST-1" not in ids


def test_no_pitch_when_it_would_be_tone_deaf_or_unwanted() -> None:
    policy = Recommendations()
    calm_decision, quiet = EscalationDecision(False), ConversationSignals()
    asking = "Which grinder would you suggest for espresso?"

    def refusal(
        message: str = asking,
        result: Analysis | None = None,
        *,
        rules: Recommendations = policy,
        profile: CustomerProfile | None = None,
        decision: EscalationDecision = calm_decision,
        signals: ConversationSignals = quiet,
    ) -> str | None:
        return should_recommend(
            rules, message, result or analysis(message), profile, decision, signals
        )

    assert refusal() is None
    angry = analysis("awful!!!", sentiment="negative", score=-0.9, frustrated=True)
    assert refusal(result=angry) == "the customer's mood is negative"
    assert refusal(result=analysis(asking, intent="complaint")) == "intent complaint"
    escalating = EscalationDecision(True, EscalationReason.REFUND_LIMIT, "normal")
    assert refusal(decision=escalating) is not None
    no_consent = build_profile(customer(marketing=False), [], [], None, None)
    assert refusal(profile=no_consent) == "no marketing consent"
    assert refusal(rules=Recommendations(enabled=False)) is not None
    assert refusal(signals=ConversationSignals(harm_reported=True)) is not None
    assert refusal(signals=ConversationSignals(handed_over_before=True)) is not None
    assert (
        refusal(
            rules=Recommendations(after_escalation=True),
            signals=ConversationSignals(handed_over_before=True),
        )
        is None
    )
    happy_only = Recommendations(moods=("positive",))
    assert refusal(rules=happy_only) == "the customer's mood is neutral"


@pytest.mark.parametrize(
    "message",
    [
        "Which grinder would suit my new espresso machine?",
        "Which descaler should I use to keep my kettle free of limescale?",
        "I'm often away from a socket all day. What could keep my phone charged on the go?",
        "I'd like a kettle for pour-over coffee. What would you suggest?",
        "My Barista Pro is great. Is there anything I should buy to go with it?",
        "Je travaille à la maison et la Fibre 300 est trop lente. Que me conseillez-vous ?",
        "我想买一个适合手冲咖啡的电动磨豆机，你有什么推荐吗？",
    ],
)
def test_a_request_for_advice_allows_suggestions(message: str) -> None:
    assert asks_for_advice(message)


@pytest.mark.parametrize(
    "message",
    [
        "Where is my parcel? It was due on Monday.",
        "When will I get my Autobean back from the repair?",
        "What happens if GLS can't find it?",
        "The mobile data on my loan phone stopped working, but calls are fine.",
        "Pour quand m'aviez-vous promis de la réparer ?",
        "我等的手机到现在还没到。",
    ],
)
def test_a_question_about_an_order_or_a_fault_gets_no_pitch(message: str) -> None:
    assert not asks_for_advice(message)
    assert (
        should_recommend(
            Recommendations(),
            message,
            analysis(message),
            None,
            EscalationDecision(False),
            ConversationSignals(),
        )
        == "the customer did not ask for a suggestion"
    )
