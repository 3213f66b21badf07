"""The customer's record as facts: every kind rendered with its dates and amounts, and the
facts that bear on a message picked within a budget."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from server.pipeline.profile import build_profile
from server.pipeline.record import attribute_line, dated, format_date, record_facts
from server.pipeline.record_ranking import relevance, select_facts
from server.store.customers import Customer, CustomerEvent, EventKind

BERLIN = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 12, 4, 10, 0, tzinfo=BERLIN)


def words(text: str) -> int:
    return len(text.split())


def at(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


def customer(personalization: bool = True, **attributes: object) -> Customer:
    return Customer(
        "shop",
        "ana",
        "Ana Ribeiro",
        "gold",
        "pt-PT",
        {"personalization": personalization},
        dict(attributes),
        0.0,
        0.0,
    )


EVENTS = [  # newest first, as the store returns them
    CustomerEvent(
        EventKind.SERVICE_JOB,
        at("2026-11-20T09:00:00"),
        {
            "job_id": "SJ-881",
            "item": "Aurora Espresso Machine",
            "serial_number": "AUR-7731",
            "status": "waiting_for_part",
            "diagnosis": "faulty pump",
            "promised_on": "2026-12-01",
            "loan_item": "Brio Capsule Machine",
        },
    ),
    CustomerEvent(
        EventKind.SHIPMENT,
        at("2026-11-28T08:00:00"),
        {
            "order_id": "HK-60001",
            "carrier": "DHL",
            "tracking_number": "00340434161094042557",
            "status": "delayed",
            "eta": "2026-12-03",
            "investigation_reference": "DHL-INV-5521",
            "investigation_status": "open",
        },
    ),
    CustomerEvent(
        EventKind.SHIPMENT,
        at("2026-11-27T08:00:00"),
        {
            "order_id": "HK-60001",
            "carrier": "DHL",
            "tracking_number": "00340434161094042557",
            "status": "in_transit",
        },
    ),
    CustomerEvent(
        EventKind.PAYMENT_PLAN,
        at("2026-09-05T10:00:00"),
        {
            "plan_id": "PP-3001",
            "provider": "Klarna",
            "instalment": 99.0,
            "instalments": 6,
            "paid_instalments": 3,
            "schedule": "monthly on the 5th",
            "next_due_on": "2026-12-05",
        },
    ),
    CustomerEvent(
        EventKind.BOOKING,
        at("2026-11-01T10:00:00"),
        {
            "booking_id": "BK-204",
            "item": "Barista workshop",
            "starts_at": "2026-12-12T10:00:00+01:00",
            "ends_at": "2026-12-12T12:00:00+01:00",
            "place": "Hearth & Kettle Berlin-Mitte",
            "deposit": 20,
            "deposit_status": "held",
            "status": "booked",
        },
    ),
    CustomerEvent(
        EventKind.MEMBERSHIP,
        at("2024-03-03T10:00:00"),
        {
            "membership_id": "M-77",
            "plan": "Kettle Club Plus",
            "since": "2024-03-03",
            "status": "active",
            "renews_on": "2027-03-03",
            "price": 29,
            "period": "year",
        },
    ),
    CustomerEvent(
        EventKind.ORDER,
        at("2026-07-09T08:30:00"),
        {
            "order_id": "HK-55102",
            "items": [{"product_id": "HK-KET-004", "name": "Tempo Kettle", "price": 89.0}],
            "total": 89.0,
            "status": "delivered",
            "delivered_on": "2026-07-11",
        },
    ),
]


def facts_by_kind() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for fact in record_facts(customer(), EVENTS, NOW):
        grouped.setdefault(fact.kind, []).append(fact.text)
    return grouped


def test_dates_are_written_out_with_how_far_they_are_from_today() -> None:
    assert format_date(dt.date(2026, 12, 1)) == "1 December 2026"
    assert dated(dt.date(2026, 12, 1), NOW.date()) == "1 December 2026 (3 days ago)"
    assert dated(dt.date(2026, 12, 5), NOW.date()) == "5 December 2026 (tomorrow)"


def test_every_kind_shows_what_a_customer_asks_about() -> None:
    facts = facts_by_kind()
    (job,) = facts["service_job"]
    assert "SJ-881" in job and "serial number AUR-7731" in job
    assert "status waiting for part" in job and "diagnosis: faulty pump" in job
    assert "promised for 1 December 2026 (3 days ago), now overdue" in job
    assert "loan item: Brio Capsule Machine" in job
    (shipment,) = facts["shipment"]  # the newest state of the parcel only
    assert "status delayed" in shipment and "in transit" not in shipment
    assert "tracking number 00340434161094042557" in shipment and "with DHL" in shipment
    assert "estimated delivery 3 December 2026 (yesterday)" in shipment
    assert "carrier investigation DHL-INV-5521 (open)" in shipment
    (plan,) = facts["payment_plan"]
    assert "6 instalments of 99.00 EUR" in plan and "3 of 6 paid, 297.00 EUR left" in plan
    assert "next instalment due 5 December 2026 (tomorrow)" in plan
    (booking,) = facts["booking"]
    assert "from 12 December 2026 (in 8 days) 10:00 to 12 December 2026 (in 8 days) 12:00" in (
        booking
    )
    assert "at Hearth & Kettle Berlin-Mitte" in booking and "deposit 20.00 EUR held" in booking
    (membership,) = facts["membership"]
    assert "Kettle Club Plus" in membership and "renews 3 March 2027" in membership
    assert "member since 3 March 2024" in membership and "29.00 EUR per year" in membership
    (order,) = facts["order"]
    assert "Order HK-55102 placed 9 July 2026: Tempo Kettle x1" in order
    assert "total 89.00 EUR" in order and "delivered 11 July 2026" in order


def test_contact_details_never_reach_the_facts() -> None:
    line = attribute_line(
        {
            "email": "ana@example.com",
            "phone": "+351 912 345 678",
            "street": "Rua Augusta 10",
            "postcode": "1100-053",
            "household": "two adults, one toddler",
            "preferred_language": "pt",
        }
    )
    assert line == "Details: household: two adults, one toddler; preferred language: pt"
    assert attribute_line({"email": "x@example.com"}) is None


def test_without_consent_only_the_name_and_tier_are_known() -> None:
    facts = record_facts(customer(personalization=False, household="two"), EVENTS, NOW)
    assert [f.text for f in facts] == ["Name: Ana Ribeiro", "Loyalty tier: gold"]


def test_a_tight_budget_keeps_what_the_message_asks_about() -> None:
    facts = record_facts(customer(), EVENTS, NOW)

    def chosen(message: str) -> list[str]:
        return select_facts(facts, message, NOW.timestamp(), 60, words)

    repair = chosen("Is my espresso machine repair late?")
    assert repair[:2] == ["Name: Ana Ribeiro", "Loyalty tier: gold"]
    assert any("SJ-881" in line for line in repair)
    assert not any("Klarna" in line for line in repair)
    named = chosen("what about DHL-INV-5521?")
    assert any("DHL-INV-5521" in line for line in named)
    french = chosen("Mon colis n'est toujours pas arrivé")
    assert any("tracking number" in line for line in french)
    chinese = chosen("我的分期付款下一期是什么时候")
    assert any("Klarna" in line for line in chinese)


def test_the_chosen_facts_keep_the_records_order() -> None:
    facts = record_facts(customer(), EVENTS, NOW)
    everything = select_facts(facts, "hello", NOW.timestamp(), 10_000, words)
    assert everything == [fact.text for fact in facts]


def test_a_rental_is_not_a_product_the_customer_owns() -> None:
    profile = build_profile(customer(), EVENTS, [], None, None)
    assert profile.owned_products == ["HK-KET-004"]
    facts = profile.facts_for("hi", NOW, 10_000, words)
    assert "Lifetime: 1 orders, 89.00 EUR spent" in facts


def test_personal_data_in_free_text_is_masked_and_ids_are_not() -> None:
    note = CustomerEvent(
        EventKind.NOTE, at("2026-12-01T10:00:00"), {"text": "Call her on +49 151 2345 6789"}
    )
    facts = record_facts(customer(contact="ana@example.com"), [note, *EVENTS], NOW)
    text = "\n".join(f.text for f in facts)
    assert "+49 151 2345 6789" not in text and "ana@example.com" not in text
    assert "00340434161094042557" in text and "AUR-7731" in text


def test_kind_words_match_at_the_start_of_a_word_only() -> None:
    facts = {f.kind: f for f in record_facts(customer(), EVENTS, NOW)}
    now = NOW.timestamp()
    shipment = facts["shipment"]
    assert relevance(shipment, "Is my parcel late?", now) > relevance(
        shipment, "Can you translate the manual?", now
    )
