"""Every suite of the answer benchmark is consistent with its own data: each expected
string comes from where it must (a KB article, or this customer's record as the prompt
renders it), every cited file, customer and product exists, every field and tag is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.lib.suites import Suite, all_suites, load_suite
from retrieval.documents import strip_front_matter
from server.pipeline.record import record_facts
from server.schemas.support import CustomerIn, EventIn
from server.store.customers import Customer, CustomerEvent
from server.tenants import parse_tenant_config

EXPECT_FIELDS = {
    "must_mention_any",
    "personalized_fact_any",
    "must_not_mention",
    "cite_any_of",
    "escalate",
    "escalation_reason_any",
    "recommend",
    "recommend_category_any",
    "recommend_not_ids",
    "sentiment",
    "language",
}
REASONS = {
    "safety",
    "legal",
    "chargeback",
    "privacy",
    "refund_limit",
    "explicit_request",
    "repeated_failure",
    "frustration",
}
TAGS = {
    "kb",
    "personalization",
    "memory",
    "tone",
    "escalation",
    "control",
    "recommendation",
    "anti-recommendation",
    "leak",
    "injection",
}
SUITES = all_suites()


def kb_text(suite: Suite) -> str:
    """The articles' text, without the example questions of their front matter."""
    texts = (strip_front_matter(p.read_text(encoding="utf-8")) for p in suite.kb_files())
    return "\n".join(texts).casefold()


def rendered_record(suite: Suite, customer_id: str) -> str:
    """The customer's whole record as the reply prompt renders it, on the suite's today."""
    config = parse_tenant_config(suite.tenant_toml(), "tenant.toml")
    record = CustomerIn.model_validate(
        {k: v for k, v in suite.customers[customer_id].items() if k != "customer_id"}
    )
    customer = Customer(
        suite.tenant,
        customer_id,
        record.name,
        record.tier,
        record.locale,
        {**record.consent, "personalization": True},
        dict(record.attributes),
        0.0,
        0.0,
    )
    events = [
        EventIn.model_validate({k: v for k, v in e.items() if k != "customer_id"})
        for e in suite.events.get(customer_id, [])
    ]
    stored = sorted(
        (CustomerEvent(e.kind, e.timestamp(), dict(e.payload)) for e in events),
        key=lambda e: -e.occurred_at,
    )
    now = suite.as_of.astimezone(config.business.zone)
    return "\n".join(f.text for f in record_facts(customer, stored, now)).casefold()


def test_there_are_suites() -> None:
    assert len(SUITES) >= 2


@pytest.mark.parametrize("folder", SUITES, ids=[p.name for p in SUITES])
def test_every_expectation_comes_from_the_suites_data(folder: Path) -> None:
    suite = load_suite(folder)
    knowledge = kb_text(suite)
    kb_names = {p.name for p in suite.kb_files()} | {p.stem for p in suite.kb_files()}
    products = suite.categories()
    ids = [s["id"] for s in suite.scenarios]
    assert len(ids) == len(set(ids)), "scenario ids repeat"
    records = {cid: rendered_record(suite, cid) for cid in suite.customers}
    for scenario in suite.scenarios:
        where = f"{suite.name}/{scenario['id']}"
        customer_id = scenario["customer_id"]
        assert customer_id in suite.customers, where
        assert 1 <= len(scenario["turns"]) <= 4, where
        expect = scenario.get("expect") or {}
        assert set(expect) <= EXPECT_FIELDS, (where, set(expect) - EXPECT_FIELDS)
        for tag in scenario.get("tags", []):
            assert tag in TAGS or tag.startswith("language-"), (where, tag)
        if facts := expect.get("must_mention_any"):
            assert any(f.casefold() in knowledge for f in facts), (where, facts)
        if facts := expect.get("personalized_fact_any"):
            assert any(f.casefold() in records[customer_id] for f in facts), (where, facts)
        for cited in expect.get("cite_any_of", []):
            assert cited in kb_names, (where, cited)
        for reason in expect.get("escalation_reason_any", []):
            assert reason in REASONS, (where, reason)
        for category in expect.get("recommend_category_any", []):
            assert category in products.values(), (where, category)
        for product_id in expect.get("recommend_not_ids", []):
            assert product_id in products, (where, product_id)


@pytest.mark.parametrize("folder", SUITES, ids=[p.name for p in SUITES])
def test_the_multilingual_questions_name_real_articles(folder: Path) -> None:
    suite = load_suite(folder)
    names = {p.name for p in suite.kb_files()}
    assert suite.multilingual, "no multilingual questions"
    for question in suite.multilingual:
        assert question["language"] in {"fr", "zh"}, question
        assert question["expect_doc"] in names, question
