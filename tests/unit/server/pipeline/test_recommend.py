"""Recommendations on a real embedded catalog: relevance, exclusions, reasons, and restraint."""

from __future__ import annotations

from pathlib import Path

from core.db import create_database_engine
from models.embedder import Embedder
from retrieval.catalog import Product, ProductCatalog
from server.pipeline.escalation import EscalationDecision, EscalationReason
from server.pipeline.profile import build_profile
from server.pipeline.recommend import recommend_sync, should_recommend
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
    calm = analysis("which grinder?")
    assert should_recommend(policy, calm, None, EscalationDecision(False)) is None
    angry = analysis("awful!!!", sentiment="negative", score=-0.9, frustrated=True)
    assert should_recommend(policy, angry, None, EscalationDecision(False)) is not None
    complaint = analysis("bad", intent="complaint")
    assert should_recommend(policy, complaint, None, EscalationDecision(False)) is not None
    escalating = EscalationDecision(True, EscalationReason.REFUND_LIMIT, "normal")
    assert should_recommend(policy, calm, None, escalating) is not None
    no_consent = build_profile(customer(marketing=False), [], [], None, None)
    assert should_recommend(policy, calm, no_consent, EscalationDecision(False)) is not None
    assert (
        should_recommend(Recommendations(enabled=False), calm, None, EscalationDecision(False))
        is not None
    )
