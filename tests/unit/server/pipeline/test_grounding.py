"""The check of a reply against its evidence: claims, repetition, echo, language, support."""

from __future__ import annotations

import pytest

from server.pipeline.grounding import (
    Evidence,
    check_reply,
    claims,
    echoes_prompt,
    in_wrong_language,
    key_phrases,
    repeats_itself,
    unsupported_claims,
)

PASSAGE = (
    "You can return any item within 30 days of delivery, for any reason. Gold members have "
    "60 days. We refund within 5 business days; refunds above 200 EUR are checked first. "
    "Standard delivery costs 4.90 EUR. The shop is open until 18:00."
)
RECORD = (
    "Order HK-59164 placed 20 November 2026: Crisp 4-Slice Toaster x1; total 59.00 EUR; "
    "status delivered; delivered 23 November 2026, 11 days ago"
)
EVIDENCE = Evidence(
    texts=(PASSAGE, RECORD, "Today is Friday 4 December 2026, 10:00 (CET)."),
    question="Can I still return my toaster? I was charged 80 EUR for order HK-99999.",
    rules=("Answer the question in the first sentence, then give the steps.",),
)


def test_figures_ids_and_dates_from_the_evidence_pass() -> None:
    reply = (
        "Yes: your order HK-59164 was delivered on 23 November, so you have 30 days from "
        "then, until about 23 December. We refund 59.00 EUR within 5 business days [1]."
    )
    assert unsupported_claims(reply, EVIDENCE) == ["23 December"]
    assert unsupported_claims("Delivered on November 23rd; refund of 59 EUR.", EVIDENCE) == []
    assert unsupported_claims("Standard delivery costs 4,90 €.", EVIDENCE) == []
    assert unsupported_claims("Open until 6 pm today (2026-12-04).", EVIDENCE) == []


def test_invented_figures_and_codes_are_named_as_written() -> None:
    reply = "Delivery costs €150. Use code SAVE-2026X for 12% off."
    assert unsupported_claims(reply, EVIDENCE) == ["SAVE-2026X", "12", "150"]


def test_what_only_the_customer_wrote_is_not_evidence() -> None:
    reply = "I can confirm the 80 EUR refund for order HK-99999."
    assert unsupported_claims(reply, EVIDENCE) == ["HK-99999", "80"]
    verdict = check_reply(reply, EVIDENCE, min_support=0.0)
    assert not verdict.passed and "unsupported" in verdict.problems


def test_list_markers_citations_and_one_are_not_claims() -> None:
    reply = "1. Open My orders [2].\n2. Choose the order.\n3. Press Return items for 1 item."
    assert unsupported_claims(reply, EVIDENCE) == []


def test_claims_read_dates_in_several_languages() -> None:
    found = claims("le 1er décembre, 12月5日, December 3rd, 2026-11-20 at 18:00")
    assert found.dates == {(12, 1), (12, 5), (12, 3), (11, 20)}
    assert found.times == {(18, 0)}


@pytest.mark.parametrize(
    "reply",
    [
        "The barista is very hard to drink. The barista is very hard to drink.",
        "我是一个热汉食品；；；；；；；；",
        "you can pay one euro per month you can pay one euro per month you can pay one "
        "euro per month",
    ],
)
def test_repetition_is_found(reply: str) -> None:
    assert repeats_itself(reply)


def test_a_plain_reply_does_not_repeat_itself() -> None:
    assert not repeats_itself("You have 30 days. Gold members have 60 days. Thanks!")


@pytest.mark.parametrize(
    "reply",
    [
        "Tone guidance: Be clear, friendly and efficient.",
        "No, it's tomorrow.\nTone: warm, plain-spoken, concise.\nDo: answer first.",
        "Today is Friday 4 December 2026, 10:00 (CET). Reply in English, the customer's language.",
        "See </kb_passages> for details.",
        "Answer the question in the first sentence, then give the steps.",
    ],
)
def test_prompt_echo_is_found(reply: str) -> None:
    assert echoes_prompt(reply, EVIDENCE.rules)


def test_a_reply_that_names_the_tone_in_passing_is_no_echo() -> None:
    assert not echoes_prompt("Do you want a refund? I can do that.", EVIDENCE.rules)


def test_wrong_language_needs_a_confident_detector() -> None:
    assert in_wrong_language("You can return any item within 30 days of delivery.", "fr")
    assert not in_wrong_language("Vous pouvez retourner un article sous 30 jours.", "fr")
    assert in_wrong_language("You have 30 days to return it.", "zh")
    assert not in_wrong_language("您可以在收货后 30 天内退货。", "zh")


def test_a_reply_off_its_evidence_is_found_and_one_on_it_passes() -> None:
    off = check_reply(
        "Beer is very hard to drink, and the German barista prefers wine with cheese "
        "instead of mountains, castles and sunshine in summer.",
        EVIDENCE,
        min_support=0.5,
    )
    assert off.problems == ("off_evidence",) and off.support is not None and off.support < 0.5
    on = check_reply(
        "You can return any item within 30 days of delivery, for any reason; Gold members "
        "have 60 days, and refunds arrive within 5 business days.",
        EVIDENCE,
        min_support=0.5,
    )
    assert on.passed and on.support is not None and on.support > 0.8


def test_an_empty_reply_fails() -> None:
    assert check_reply("  ", EVIDENCE, 0.5).problems == ("empty",)


def test_key_phrases_are_figures_with_their_unit_ids_dates_and_times() -> None:
    assert key_phrases(
        "Booking BK-30512 at Lindenhof 12: to 5 December 2026 18:00; deposit 200.00 EUR, "
        "returns within 30 days, 3 EUR per item, fibre at 300 Mbit/s."
    ) == [
        "BK-30512",
        "5 December 2026",
        "18:00",
        "200.00 EUR",
        "30 days",
        "3 EUR per item",
        "300 Mbit/s",
    ]
