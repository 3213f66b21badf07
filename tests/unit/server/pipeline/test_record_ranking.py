"""Which record lines a composed answer quotes: the ones the message is about, if any."""

from __future__ import annotations

from server.pipeline.record import RecordFact
from server.pipeline.record_ranking import answering_facts

NOW = 1_800_000_000.0
ORDER = RecordFact(
    "order",
    "Order HK-59164 placed 23 November 2026: Espresso Burr Grinder 60 x1; status shipped",
    NOW - 86_400,
    keys=frozenset({"hk-59164"}),
    words=("Espresso Burr Grinder 60",),
)
SHIPMENT = RecordFact(
    "shipment",
    "Shipment of order HK-59164 with GLS: tracking number ZK41M7Q2, status delayed",
    NOW - 3_600,
    keys=frozenset({"zk41m7q2"}),
)
NOTE = RecordFact("note", "Agent note: prefers email", NOW)
HEADER = RecordFact("customer", "Name: Ana", essential=True)
FACTS = [HEADER, NOTE, SHIPMENT, ORDER]


def test_the_lines_the_customer_asks_about_are_quoted_best_first() -> None:
    chosen = answering_facts(
        FACTS, "Can you give me the tracking number for my grinder order?", NOW
    )
    assert chosen == [ORDER, SHIPMENT]  # the grinder named, then the tracking asked for


def test_a_named_id_is_enough_and_agent_notes_never_show() -> None:
    assert answering_facts(FACTS, "Where is HK-59164?", NOW)[0] == ORDER
    assert NOTE not in answering_facts(FACTS, "What did my note say about email?", NOW)


def test_a_help_centre_question_quotes_no_record() -> None:
    assert answering_facts(FACTS, "Do you ship orders to Norway on Saturdays?", NOW) == []
    assert answering_facts(FACTS, "What time should I be there for my order?", NOW) != []
    assert answering_facts(FACTS, "我的订单到哪里了？", NOW) != []
