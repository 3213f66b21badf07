"""Stage 6, decide: does this conversation go to a person, why, and how urgently?

The tenant's policy (``[escalation]`` in its config file) lists the triggers; the
first that fires names the reason, in order of how clearly a person is needed:

1. ``human_request``  the customer asked for a person (words or the intent head)
2. ``legal``          lawyers, courts, chargebacks: never for a bot to handle
3. ``sensitive_intent`` an intent the tenant listed (complaints by default)
4. ``refund_limit``   a refund request above the tenant's limit
5. ``frustration``    the sentiment head flagged frustration
6. ``negative_streak`` N negative customer turns in a row
7. ``ungrounded``     N replies in a row with no KB passage to stand on

A plain function of its inputs, so it is tested alone and measured on Bitext by
``bench/quality.py`` exactly as the server runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from server.pipeline.analyze import Analysis
from server.tenants import EscalationPolicy

_LEGAL = re.compile(
    r"\b(?:lawyer|attorney|solicitor|legal action|sue|suing|lawsuit|court|chargeback|"
    r"ombudsman|consumer protection|anwalt|avocat|advogado|advocaat)\b",
    re.IGNORECASE,
)


class EscalationReason(StrEnum):
    HUMAN_REQUEST = "human_request"
    LEGAL = "legal"
    SENSITIVE_INTENT = "sensitive_intent"
    REFUND_LIMIT = "refund_limit"
    FRUSTRATION = "frustration"
    NEGATIVE_STREAK = "negative_streak"
    UNGROUNDED = "ungrounded"


_PRIORITY = {
    EscalationReason.HUMAN_REQUEST: None,  # the tenant's default
    EscalationReason.LEGAL: "urgent",
    EscalationReason.SENSITIVE_INTENT: None,
    EscalationReason.REFUND_LIMIT: None,
    EscalationReason.FRUSTRATION: "high",
    EscalationReason.NEGATIVE_STREAK: "high",
    EscalationReason.UNGROUNDED: "low",
}


@dataclass(frozen=True)
class Streaks:
    """Counts carried by the conversation, including the current turn."""

    negative: int
    ungrounded: int


@dataclass(frozen=True)
class EscalationDecision:
    escalate: bool
    reason: EscalationReason | None = None
    priority: str | None = None

    @property
    def model_answers(self) -> bool:
        """Whether the model still writes this turn's reply.

        A customer who asked for a person gets the handover message at once; for the
        other reasons the model still answers (with the tone guidance) and says a
        colleague will follow up.
        """
        return self.reason is not EscalationReason.HUMAN_REQUEST


def mentions_legal_action(message: str) -> bool:
    return _LEGAL.search(message) is not None


def next_streaks(previous: Streaks, analysis: Analysis, grounded: bool) -> Streaks:
    """Consecutive negative turns and ungrounded replies, counting this turn."""
    negative = previous.negative + 1 if analysis.unhappy else 0
    ungrounded = previous.ungrounded + 1 if not grounded else 0
    return Streaks(negative, ungrounded)


def decide_escalation(
    policy: EscalationPolicy, message: str, analysis: Analysis, streaks: Streaks
) -> EscalationDecision:
    """The first trigger of ``policy`` that fires for this turn, or no escalation."""
    reason = _first_reason(policy, message, analysis, streaks)
    if reason is None:
        return EscalationDecision(False)
    return EscalationDecision(True, reason, _PRIORITY[reason] or policy.priority_default)


def _first_reason(
    policy: EscalationPolicy, message: str, analysis: Analysis, streaks: Streaks
) -> EscalationReason | None:
    if policy.on_human_request and analysis.human_requested:
        return EscalationReason.HUMAN_REQUEST
    if mentions_legal_action(message):
        return EscalationReason.LEGAL
    if analysis.intent.label in policy.sensitive_intents:
        return EscalationReason.SENSITIVE_INTENT
    if (
        policy.refund_limit_eur is not None
        and analysis.refund_amount is not None
        and analysis.refund_amount > policy.refund_limit_eur
    ):
        return EscalationReason.REFUND_LIMIT
    if policy.on_frustration and analysis.sentiment.frustrated:
        return EscalationReason.FRUSTRATION
    if policy.negative_turns and streaks.negative >= policy.negative_turns:
        return EscalationReason.NEGATIVE_STREAK
    if policy.ungrounded_turns and streaks.ungrounded >= policy.ungrounded_turns:
        return EscalationReason.UNGROUNDED
    return None
