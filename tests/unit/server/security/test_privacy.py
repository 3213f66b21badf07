"""Personal data detection and redaction (``server/security/privacy.py``)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from server.security.privacy import (
    PiiKind,
    Redactor,
    find_pii,
    iban_valid,
    luhn_valid,
    mask,
    redact_text,
)


def card_number(rng: random.Random, length: int = 16) -> str:
    """A random number with a valid Luhn check digit."""
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(length - 2))
    check = next(str(d) for d in range(10) if luhn_valid(body + str(d)))
    return body + check


def iban(rng: random.Random, country: str = "DE", length: int = 22) -> str:
    """A random IBAN whose mod-97 check digits are right (ISO 13616)."""
    bban = "".join(str(rng.randrange(10)) for _ in range(length - 4))
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def grouped(value: str, separator: str) -> str:
    return separator.join(value[i : i + 4] for i in range(0, len(value), 4))


def kinds(text: str) -> list[PiiKind]:
    return [match.kind for match in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (
            "write to jane.doe+shop@example.co.uk please",
            PiiKind.EMAIL,
            "jane.doe+shop@example.co.uk",
        ),
        ("call +49 30 1234567 today", PiiKind.PHONE, "+49 30 1234567"),
        ("mobile +49 151 2345 6789 please", PiiKind.PHONE, "+49 151 2345 6789"),
        ("my mobile is 0151-2345678", PiiKind.PHONE, "0151-2345678"),
        ("office (030) 1234 5678", PiiKind.PHONE, "(030) 1234 5678"),
        ("US number 555-123-4567.", PiiKind.PHONE, "555-123-4567"),
        ("card 4111 1111 1111 1111 expired", PiiKind.CARD, "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004", PiiKind.CARD, "5500-0000-0000-0004"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", PiiKind.IBAN, "DE89 3704 0044 0532 0130 00"),
        ("iban GB29NWBK60161331926819", PiiKind.IBAN, "GB29NWBK60161331926819"),
        # the probe's formats: lower case, spaced or not; cards with dots or slashes
        ("iban de46935181909378657975 ok", PiiKind.IBAN, "de46935181909378657975"),
        ("iban de46 9351 8190 9378 6579 75 ok", PiiKind.IBAN, "de46 9351 8190 9378 6579 75"),
        ("card 4082.4628.1948.2196.", PiiKind.CARD, "4082.4628.1948.2196"),
        ("card 4082/4628/1948/2196 ok", PiiKind.CARD, "4082/4628/1948/2196"),
        # national shapes, valid in their country's numbering plan (phonenumbers)
        ("appelez-moi au 06 12 34 56 78 svp", PiiKind.PHONE, "06 12 34 56 78"),
        ("mon fixe : 01.23.45.67.89.", PiiKind.PHONE, "01.23.45.67.89"),
        ("我的手机 138 0013 8000 谢谢", PiiKind.PHONE, "138 0013 8000"),
        ("电话13800138000", PiiKind.PHONE, "13800138000"),
        ("手机 139-1234-5678", PiiKind.PHONE, "139-1234-5678"),
        ("SSN 123-45-6789", PiiKind.NATIONAL_ID, "123-45-6789"),
        ("NI number AB 12 34 56 C", PiiKind.NATIONAL_ID, "AB 12 34 56 C"),
    ],
)
def test_each_kind_is_found_with_its_exact_span(text: str, kind: PiiKind, value: str) -> None:
    [match] = find_pii(text)
    assert (match.kind, match.value) == (kind, value)
    assert text[match.start : match.end] == value


@pytest.mark.parametrize(
    "text",
    [
        "Order HK-77001 shipped on 2026-10-02 for 79.00 EUR.",
        "order number 123456789 and ticket T-9001",
        "card 4111 1111 1111 1112 fails its check digit",
        "IBAN DE89 3704 0044 0532 0130 01 fails mod 97",
        "version 1.2.3, 1,299.99 EUR, 15 x 20 cm, room 404",
        "SSN-like but invalid: 000-12-3456 and 666-12-3456",
        "tracking 1Z999AA10123456784",
        # shaped like a French or Chinese number but not a valid one
        "reference 00 12 34 56 78 and 12345678901",
        "commande 2026 10 02 17 30",
    ],
)
def test_order_numbers_dates_prices_and_failed_checks_are_left_alone(text: str) -> None:
    assert find_pii(text) == []


@given(st.randoms(use_true_random=False), st.sampled_from([13, 15, 16, 19]))
def test_every_luhn_valid_card_is_found_and_masked_to_its_last_four(
    rng: random.Random, length: int
) -> None:
    number = card_number(rng, length)
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    for written in (number, spaced):
        text = f"Please refund to {written} thanks"
        assert kinds(text) == [PiiKind.CARD]
        redacted = redact_text(text)
        assert number[:-4] not in redacted.replace(" ", "")
        assert redacted.endswith(f"**** {number[-4:]} thanks")


@given(st.randoms(use_true_random=False), st.sampled_from([" ", ".", "/", "-", ""]))
def test_cards_grouped_by_dots_slashes_dashes_or_spaces_are_found(
    rng: random.Random, separator: str
) -> None:
    number = card_number(rng, 16)
    text = f"my card is {grouped(number, separator)}. thanks"
    assert kinds(text) == [PiiKind.CARD]
    assert number[4:12] not in redact_text(text).replace(separator, "")


@given(
    st.randoms(use_true_random=False),
    st.sampled_from([("DE", 22), ("FR", 27), ("GB", 22), ("NL", 18), ("ES", 24)]),
    st.sampled_from([" ", ".", "-", ""]),
    st.booleans(),
    st.sampled_from(["", " thanks", " and the amount is 40 EUR", "."]),
)
def test_ibans_in_any_case_and_grouping_are_found_whatever_follows(
    rng: random.Random, country: tuple[str, int], separator: str, lower: bool, after: str
) -> None:
    number = iban(rng, *country)
    written = grouped(number, separator)
    written = written.lower() if lower else written
    text = f"refund to {written}{after}"
    [match] = find_pii(text)
    assert (match.kind, match.value) == (PiiKind.IBAN, written)
    assert number[4:-4] not in redact_text(text).replace(separator, "").upper()


@given(st.from_regex(r"[a-z]{1,10}\.[a-z]{1,10}@[a-z]{2,10}\.(com|de|io)", fullmatch=True))
def test_every_email_is_found_and_masked(email: str) -> None:
    text = f"contact: {email}."
    assert [match.value for match in find_pii(text)] == [email]
    assert redact_text(text) == f"contact: {mask(PiiKind.EMAIL, email)}."
    local_part, _, _ = email.partition("@")
    shown_local_part = redact_text(text).removeprefix("contact: ").partition("@")[0]
    assert local_part not in shown_local_part


def test_placeholders_are_numbered_stable_and_reversible_within_a_request() -> None:
    text = "a@example.com, b@example.com, then a@example.com again; call +44 20 7946 0958"
    redactor = Redactor()
    redacted = redactor.redact(text)
    assert redacted == "[EMAIL_1], [EMAIL_2], then [EMAIL_1] again; call [PHONE_1]"
    assert redactor.restore(redacted) == text
    assert redactor.masked("we wrote to [EMAIL_2]") == "we wrote to b***@example.com"
    assert redactor.restore("sent to [EMAIL_9]") == "sent to ***", "invented placeholders"
    assert Redactor().restore(redacted).count("***") == 4, "another request cannot restore"


def test_redactions_are_counted_by_kind_and_place() -> None:
    def count(kind: str) -> float:
        labels = {"kind": kind, "where": "message"}
        return REGISTRY.get_sample_value("concierge_pii_redactions_total", labels) or 0.0

    before = count("email"), count("card")
    redact_text("a@example.com, b@example.com, 4111 1111 1111 1111", where="message")
    assert (count("email") - before[0], count("card") - before[1]) == (2, 1)


def test_masks_reveal_only_what_identifies_the_value_to_its_owner() -> None:
    assert mask(PiiKind.EMAIL, "jane@example.com") == "j***@example.com"
    assert mask(PiiKind.CARD, "4111 1111 1111 1111") == "**** 1111"
    assert mask(PiiKind.IBAN, "DE89 3704 0044 0532 0130 00") == "DE** **** 3000"
    assert mask(PiiKind.PHONE, "+49 30 1234567") == "***67"
    assert mask(PiiKind.NATIONAL_ID, "123-45-6789") == "***"


def test_check_digit_algorithms() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid(
        "GB82 WEST 1234 5698 7654 33"
    )


# ---------------------------------------------------------------- end to end, on the server


@given(
    st.integers(50, 89),
    st.lists(st.integers(0, 99), min_size=3, max_size=3),
    st.sampled_from([" ", "."]),
)
def test_french_mobiles_in_pairs_are_found_and_masked(
    first: int, pairs: list[int], separator: str
) -> None:
    """07 50 .. 07 89: mobile ranges libphonenumber holds valid throughout."""
    number = "07" + "".join(f"{separator}{pair:02d}" for pair in [first, *pairs])
    [match] = find_pii(f"Vous pouvez me joindre au {number}, merci.")
    assert (match.kind, match.value) == (PiiKind.PHONE, number)
    assert redact_text(number).endswith(f"{pairs[-1]:02d}") and number not in redact_text(number)


@given(
    st.sampled_from(["135", "138", "139", "150", "186", "199"]),
    st.integers(0, 9999),
    st.integers(0, 9999),
    st.sampled_from(["", " ", "-"]),
)
def test_chinese_mobiles_are_found_in_any_grouping(
    prefix: str, middle: int, last: int, separator: str
) -> None:
    number = f"{prefix}{separator}{middle:04d}{separator}{last:04d}"
    [match] = find_pii(f"请打我手机{number}，谢谢")
    assert (match.kind, match.value) == (PiiKind.PHONE, number)
