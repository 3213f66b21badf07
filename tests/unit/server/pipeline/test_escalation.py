"""The escalation policy: which trigger fires first, and what each policy switch does."""

from __future__ import annotations

import pytest

from server.pipeline.analyze import asks_for_human, refund_amount
from server.pipeline.escalation import (
    EscalationReason,
    Streaks,
    decide_escalation,
    next_streaks,
)
from server.tenants import EscalationPolicy
from tests.unit.server.pipeline.helpers import analysis

POLICY = EscalationPolicy()
CALM = Streaks(0, 0)


@pytest.mark.parametrize(
    "message",
    [
        "I want to talk to a human",
        "Can I speak to a real person please?",
        "put me through to an agent",
        "connect me with someone from your team",
        "Ich möchte mit einem Menschen sprechen",
        "Je voudrais parler à une conseillère",
        "请帮我转人工",
        "我要找人工客服",
    ],
)
def test_explicit_requests_for_a_person_are_recognised(message: str) -> None:
    assert asks_for_human(message)
    decision = decide_escalation(POLICY, message, analysis(message), CALM)
    assert decision.reason is EscalationReason.HUMAN_REQUEST
    assert decision.model_answers is False


@pytest.mark.parametrize(
    "message", ["Is the kettle human-safe?", "How do I talk to my kettle app?", "agent of change"]
)
def test_ordinary_messages_are_not_requests_for_a_person(message: str) -> None:
    assert not asks_for_human(message)


def test_an_unsure_guess_of_the_person_intent_is_not_a_request_for_a_person() -> None:
    """A fault report the intent head called ``contact_human_agent`` at 0.20 is answered."""
    message = "The mobile data on my loan phone stopped working, but calls are fine."
    unsure = analysis(message, intent="contact_human_agent", intent_confidence=0.2)
    assert not unsure.human_requested
    assert decide_escalation(POLICY, message, unsure, CALM).model_answers
    sure = analysis("Get me someone", intent="contact_human_agent", intent_confidence=0.9)
    assert sure.human_requested


def test_triggers_fire_in_order_of_how_clearly_a_person_is_needed() -> None:
    legal = "I will take you to court over this"
    assert decide_escalation(POLICY, legal, analysis(legal), CALM).reason is EscalationReason.LEGAL
    assert decide_escalation(POLICY, legal, analysis(legal), CALM).priority == "urgent"
    complaint = analysis("bad service", intent="complaint")
    assert decide_escalation(POLICY, "bad service", complaint, CALM).reason is (
        EscalationReason.SENSITIVE_INTENT
    )
    refund = "I need a refund of 349 EUR for the espresso machine"
    assert refund_amount(refund, "get_refund") == 349.0
    decision = decide_escalation(POLICY, refund, analysis(refund, intent="get_refund"), CALM)
    assert decision.reason is EscalationReason.REFUND_LIMIT and decision.model_answers
    small = "please refund the €19.90 descaler"
    assert decide_escalation(
        POLICY, small, analysis(small, intent="get_refund"), CALM
    ).escalate is (False)
    angry = analysis("awful", sentiment="negative", score=-0.9, frustrated=True)
    decision = decide_escalation(POLICY, "awful", angry, CALM)
    assert decision.reason is EscalationReason.FRUSTRATION and decision.priority == "high"


def test_streaks_count_consecutive_turns_and_reset() -> None:
    negative = analysis("meh", sentiment="negative", score=-0.5)
    fine = analysis("ok")
    streaks = next_streaks(CALM, negative, grounded=False)
    assert streaks == Streaks(1, 1)
    streaks = next_streaks(streaks, negative, grounded=False)
    assert decide_escalation(POLICY, "meh", negative, streaks).reason is (
        EscalationReason.NEGATIVE_STREAK
    )
    assert next_streaks(streaks, fine, grounded=True) == CALM
    ungrounded = next_streaks(Streaks(0, 1), fine, grounded=False)
    assert decide_escalation(POLICY, "ok", fine, ungrounded).reason is EscalationReason.UNGROUNDED


def test_a_policy_can_switch_triggers_off() -> None:
    relaxed = EscalationPolicy(
        on_human_request=False,
        on_frustration=False,
        negative_turns=0,
        ungrounded_turns=0,
        sensitive_intents=(),
        refund_limit_eur=None,
    )
    angry = analysis(
        "I want to talk to a human", sentiment="negative", frustrated=True, intent="complaint"
    )
    assert not decide_escalation(
        relaxed, "I want to talk to a human", angry, Streaks(9, 9)
    ).escalate


def test_a_weakly_negative_label_is_not_counted_as_unhappy() -> None:
    doubtful = analysis("which descaler fits?", sentiment="negative", score=-0.3)
    assert not doubtful.unhappy
    assert next_streaks(CALM, doubtful, grounded=True) == CALM
