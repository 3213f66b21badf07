"""Event payloads: each kind's required fields and types, a message that names the field,
and the business's own extra fields kept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.schemas.records import PAYLOADS, check_event_payload, parse_payload
from server.schemas.support import EventIn
from server.store.customers import EventKind


def test_every_kind_has_a_payload_model() -> None:
    assert set(PAYLOADS) == set(EventKind)


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        (EventKind.ORDER, {"items": []}, "order_id"),
        (EventKind.ORDER, {"order_id": "A", "items": [{"price": "cheap"}]}, "items.0.price"),
        (EventKind.SHIPMENT, {"order_id": "A", "carrier": "DHL", "status": "x"}, "tracking"),
        (
            EventKind.SHIPMENT,
            {"order_id": "A", "carrier": "DHL", "tracking_number": "1", "status": "x", "eta": "?"},
            "eta",
        ),
        (EventKind.BOOKING, {"booking_id": "B", "item": "bike", "status": "booked"}, "starts_at"),
        (EventKind.SERVICE_JOB, {"job_id": "J", "item": "kettle"}, "status"),
        (
            EventKind.PAYMENT_PLAN,
            {"plan_id": "P", "provider": "Klarna", "instalment": 10, "instalments": 0},
            "instalments",
        ),
        (EventKind.MEMBERSHIP, {"membership_id": "M", "plan": "Plus", "status": "active"}, "since"),
        (EventKind.TICKET, {"ticket_id": "T", "status": "pending"}, "status"),
        (EventKind.NOTE, {}, "text"),
    ],
)
def test_a_payload_that_does_not_fit_names_the_field(
    kind: EventKind, payload: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"a {kind} event's payload\.{field}"):
        check_event_payload(kind, payload)


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        (EventKind.ORDER, {"order_id": "A", "total": float("nan")}, "total"),
        (EventKind.ORDER, {"order_id": "A", "total": float("inf")}, "total"),
        (EventKind.ORDER, {"order_id": "A", "items": [{"price": 1e18}]}, "items.0.price"),
        (EventKind.ORDER, {"order_id": "A", "items": [{"quantity": 1e30}]}, "items.0.quantity"),
    ],
)
def test_numbers_that_are_no_money_are_refused_not_stored_as_null(
    kind: EventKind, payload: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"a {kind} event's payload\.{field}"):
        check_event_payload(kind, payload)


def test_extra_fields_are_the_business_own_and_kept() -> None:
    payload = {
        "booking_id": "B-1",
        "item": "Cargo e-bike",
        "starts_at": "2026-12-05T09:00:00+01:00",
        "status": "booked",
        "bike_size": "M",
    }
    check_event_payload(EventKind.BOOKING, payload)
    assert parse_payload(EventKind.BOOKING, payload).model_extra == {"bike_size": "M"}


def test_an_unknown_kind_lists_the_accepted_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate({"kind": "rental", "payload": {}})
    message = str(caught.value)
    for kind in ("order", "shipment", "booking", "service_job", "payment_plan", "membership"):
        assert f"'{kind}'" in message


def test_a_page_view_needs_a_url_or_a_product() -> None:
    with pytest.raises(ValueError, match="'url' or 'product_id'"):
        check_event_payload(EventKind.PAGE_VIEW, {})
