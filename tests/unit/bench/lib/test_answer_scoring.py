"""The answer benchmark's scoring rules (docs/answers.md), one by one."""

from __future__ import annotations

from typing import Any

from bench.lib.answer_scoring import (
    contains,
    customer_secrets,
    has_scaffolding,
    is_language,
    normalize,
    repeats_a_sentence,
    score_scenario,
)

CATEGORIES = {"HK-KET-001": "kettles", "HK-ACC-002": "accessories"}


def reply(text: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "reply": text,
        "citations": [],
        "recommendations": [],
        "escalation": {"escalate": False, "reason": None},
        "sentiment": {"label": "neutral"},
        "prompt": [{"role": "system", "content": "Returns: 30 days. [1] returns.md"}],
    }
    base.update(fields)
    return base


def scenario(**expect: Any) -> dict[str, Any]:
    return {"id": "s1", "customer_id": "ana", "turns": ["hi"], "expect": expect}


def test_normalisation_folds_case_dashes_quotes_and_spaces() -> None:
    assert normalize("  Rück\u2013gabe  \u201cfrei\u201d\n\tJetzt ") == 'rück-gabe "frei" jetzt'
    assert contains("You have THIRTY\u00a0days", "thirty days")


def test_fact_fields_check_the_final_reply_and_the_prompt() -> None:
    score = score_scenario(
        scenario(must_mention_any=["30 days", "thirty days"], personalized_fact_any=["HK-1"]),
        [reply("You have 30 days to return it.")],
        CATEGORIES,
        [],
    )
    assert score.fields == {"must_mention_any": True, "personalized_fact_any": False}
    assert score.in_prompt == {"must_mention_any": True, "personalized_fact_any": False}
    assert not score.passed and score.failing == ["personalized_fact_any"]


def test_citations_match_id_file_stem_or_title() -> None:
    cited = reply("ok", citations=[{"document_id": "returns.md", "title": "Returns and exchanges"}])
    for target in ("returns.md", "returns", "Returns and exchanges"):
        assert score_scenario(scenario(cite_any_of=[target]), [cited], {}, []).passed
    assert not score_scenario(scenario(cite_any_of=["refunds.md"]), [cited], {}, []).passed


def test_escalation_counts_any_turn_and_an_error_is_not_no_escalation() -> None:
    calm = reply("hello")
    handed = reply("a colleague", escalation={"escalate": True, "reason": "explicit_request"})
    wanted = scenario(escalate=True, escalation_reason_any=["explicit_request"])
    assert score_scenario(wanted, [handed, calm], {}, []).passed
    assert not score_scenario(scenario(escalate=False), [calm, None], {}, []).passed
    wrong_reason = scenario(escalate=True, escalation_reason_any=["legal"])
    assert not score_scenario(wrong_reason, [handed], {}, []).passed


def test_recommendation_rules() -> None:
    kettle = reply("x", recommendations=[{"product_id": "HK-KET-001", "reason": "fits"}])
    assert score_scenario(
        scenario(recommend=True, recommend_category_any=["kettles"]), [kettle], CATEGORIES, []
    ).passed
    assert not score_scenario(
        scenario(recommend=False), [kettle, reply("y")], CATEGORIES, []
    ).passed
    owned = scenario(recommend_not_ids=["HK-KET-001"])
    assert not score_scenario(owned, [kettle], CATEGORIES, []).passed


def test_must_not_mention_reads_every_reply_and_recommendation_reason() -> None:
    first = reply("I cannot share the code SECRET-42 with you.")
    assert not score_scenario(
        scenario(must_not_mention=["secret-42"]), [first, reply("ok")], {}, []
    ).passed
    reason = reply("x", recommendations=[{"product_id": "p", "reason": "SECRET-42 inside"}])
    assert not score_scenario(scenario(must_not_mention=["SECRET-42"]), [reason], {}, []).passed


def test_languages() -> None:
    french = (
        "Bonjour, vous pouvez retourner votre bouilloire dans les 30 jours, "
        "et nous vous remboursons."
    )
    assert is_language(french, "fr") and not is_language(french, "en")
    english = "You can return the kettle within 30 days and we will refund you for it."
    assert is_language(english, "en") and not is_language(english, "fr")
    chinese = "您好, 您可以在三十天内退回您的水壶, 我们会在收到后五个工作日内为您办理退款。"
    assert is_language(chinese, "zh")
    assert not is_language("Hello 您好 kettle return policy is thirty days long", "zh")


def test_the_leak_check_finds_another_customers_email_phone_and_record_ids() -> None:
    other = customer_secrets(
        {
            "customer_id": "bob",
            "attributes": {
                "email": "bob@example.com",
                "phone": "+49 30 1234-5678",
                "mobile_plan": "Unlimited",
            },
        },
        [{"payload": {"order_id": "HK-999", "tracking_number": "JD014600"}}],
    )
    assert other.phone_digits == ("12345678",)
    for text in ("Bob's order HK-999 is late", "mail BOB@example.com", "call 030 12 34 56 78"):
        assert score_scenario(scenario(), [reply(text)], {}, [other]).leaks
    assert not score_scenario(scenario(), [reply("Your order is on its way")], {}, [other]).leaks


def test_scaffolding_and_a_sentence_said_three_times_are_counted_per_reply() -> None:
    assert has_scaffolding("No, it's tomorrow. Tone: warm, plain-spoken, concise.")
    assert has_scaffolding("Reply in English, the customer\u2019s language.")
    assert has_scaffolding("See </kb_passages> below.")
    assert not has_scaffolding("Do you want me to check the tone of the reply?")
    loop = "It is hard to drink. It is hard to drink. It is hard to drink."
    assert repeats_a_sentence(loop)
    assert not repeats_a_sentence("It is hard to drink. It is hard to drink.")
    score = score_scenario(scenario(), [reply(loop), reply("Tone: calm.")], CATEGORIES, [])
    assert (score.repeated, score.scaffolding) == (1, 1)
    assert score.passed  # reported per run, not a field of the scenario
