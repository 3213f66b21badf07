"""Stage 6, decide: does this conversation go to a person, why, and how urgently?

The tenant's policy (``[escalation]`` in its file, ``server.tenants.EscalationPolicy``)
lists the reasons in the order it wants them named, and sets each one's ticket priority,
thresholds and extra phrases. The reasons:

* ``safety``            someone was hurt, or a product sparks, smokes, burns, swells
* ``legal``             lawyers, courts, consumer-protection bodies
* ``chargeback``        a disputed or reversed card or bank payment
* ``privacy``           a demand about personal data, a hijacked account, a leak
* ``explicit_request``  the customer asks for a person (words, or a sure intent)
* ``refund_limit``      money back above the tenant's limit, in any currency it has a
                        rate for; "the full amount" is read as the order it refers to
* ``repeated_failure``  the customer says ``failed_answers`` times that an answer did not
                        help (or, where the tenant sets ``ungrounded_turns``, that many
                        replies in a row found no help-centre passage)
* ``frustration``       ``frustrated_turns`` clearly frustrated turns, or
                        ``negative_turns`` negative turns in a row
* ``sensitive_intent``  an intent the tenant always hands over (none by default)

The first five are read from the customer's words: the phrase tables of
``handover_cues`` (plus the tenant's own phrases) or the reason head's reading of the
message's meaning (``Analysis.meant_reasons``). Every reason that fires is reported
(``fired``); the first in the tenant's order names the ticket. A plain function of its
inputs, so it is tested alone and measured by ``bench/reading.py`` exactly as the server
runs it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from core.money import Money, convert
from server.pipeline import handover_cues
from server.pipeline.analyze import Analysis
from server.pipeline.memory import Memory
from server.pipeline.profile import OrderSummary
from server.tenants import EscalationPolicy, Reason


class EscalationReason(StrEnum):
    SAFETY = "safety"
    LEGAL = "legal"
    CHARGEBACK = "chargeback"
    PRIVACY = "privacy"
    EXPLICIT_REQUEST = "explicit_request"
    REFUND_LIMIT = "refund_limit"
    REPEATED_FAILURE = "repeated_failure"
    FRUSTRATION = "frustration"
    SENSITIVE_INTENT = "sensitive_intent"


@dataclass(frozen=True)
class ConversationSignals:
    """What the conversation so far says, counting the current turn once it is added.

    ``negative`` and ``ungrounded`` are streaks kept on the conversation row; the other
    counts are read from the turns in the memory window (``Memory.recent``).
    """

    negative: int = 0
    ungrounded: int = 0
    frustrated: int = 0
    failed_answers: int = 0
    harm_reported: bool = False
    handed_over_before: bool = False


@dataclass(frozen=True)
class EscalationDecision:
    escalate: bool
    reason: EscalationReason | None = None
    priority: str | None = None
    fired: tuple[EscalationReason, ...] = field(default=())
    """Every reason that fired, in the tenant's order (the first is ``reason``)."""

    @property
    def model_answers(self) -> bool:
        """Whether the model still writes this turn's reply.

        A customer who asked for a person gets the hand-over message at once; for the
        other reasons the model still answers (a safety case gets the help centre's
        "unplug it" advice) and the hand-over message follows its reply.
        """
        return self.reason is not EscalationReason.EXPLICIT_REQUEST


def earlier_signals(
    memory: Memory, negative_streak: int, ungrounded_streak: int, handed_over: bool
) -> ConversationSignals:
    """The signals of the turns before this one."""
    turns = memory.recent
    return ConversationSignals(
        negative=negative_streak,
        ungrounded=ungrounded_streak,
        frustrated=sum(1 for t in turns if t.frustrated),
        failed_answers=sum(1 for t in turns if t.help_failed or fails_an_answer(t.message, t.seq)),
        harm_reported=any(handover_cues.says("safety", t.message) for t in turns),
        handed_over_before=handed_over,
    )


def next_signals(
    previous: ConversationSignals, analysis: Analysis, message: str, seq: int, grounded: bool
) -> ConversationSignals:
    """``previous`` with turn ``seq`` (this ``message``) added.

    A turn that says our help did not help counts toward ``repeated_failure`` and leaves
    the negative streak as it is: "restarted it, still no signal" is a verdict, and two of
    them name the reason the customer gave, not their mood. Told with feeling ("still
    nothing, really disappointing", 还是不行，挺失望的) it counts toward the streak too.
    """
    failed = fails_an_answer(message, seq, analysis.says_it_did_not_help)
    if failed and not analysis.sentiment.frustrated and not handover_cues.tells_a_feeling(message):
        negative = previous.negative
    else:
        negative = previous.negative + 1 if analysis.unhappy else 0
    return ConversationSignals(
        negative=negative,
        ungrounded=previous.ungrounded + 1 if not grounded else 0,
        frustrated=previous.frustrated + (1 if analysis.sentiment.frustrated else 0),
        failed_answers=previous.failed_answers + (1 if failed else 0),
        harm_reported=previous.harm_reported or handover_cues.says("safety", message),
        handed_over_before=previous.handed_over_before,
    )


def fails_an_answer(message: str, seq: int, read_as_failed: bool = False) -> bool:
    """Whether the message says our help did not help, in the phrases' words or as the
    reason head reads it (``read_as_failed``). After an answer, any "that did not work"
    counts; a first message's "it doesn't work" is the problem itself, not a verdict on
    our help, unless it names advice we gave before ("your steps"). The head's reading
    does not count where the message says it worked: "tried that, no... oh wait, it works
    now, thanks" reads like a failed fix to a model of meaning."""
    read_as_failed = read_as_failed and not handover_cues.says_it_worked(message)
    if not (read_as_failed or handover_cues.says_it_did_not_help(message)):
        return False
    return seq >= 2 or handover_cues.refers_to_earlier_advice(message)


def decide_escalation(
    policy: EscalationPolicy,
    message: str,
    analysis: Analysis,
    signals: ConversationSignals,
    orders: Sequence[OrderSummary] = (),
) -> EscalationDecision:
    """The reasons of ``policy`` that fire for this turn; the first names the ticket."""
    fired = tuple(
        EscalationReason(reason)
        for reason in policy.order
        if _fires(reason, policy, message, analysis, signals, orders)
    )
    if not fired:
        return EscalationDecision(False)
    return EscalationDecision(True, fired[0], policy.priority_of(fired[0].value), fired)


def _fires(
    reason: Reason,
    policy: EscalationPolicy,
    message: str,
    analysis: Analysis,
    signals: ConversationSignals,
    orders: Sequence[OrderSummary],
) -> bool:
    extra = policy.keywords.get(reason)
    if reason in handover_cues.BUILT_IN:
        meant = (
            reason in analysis.meant_reasons
            and not handover_cues.is_hypothetical(reason, message)
            and not handover_cues.denies(reason, message)
        )
        if reason == "explicit_request" and analysis.human_requested:
            return True
        return meant or handover_cues.says(reason, message, extra)
    if reason == "refund_limit":
        claimed = refund_claim(policy, analysis, message, orders)
        return (
            policy.refund_limit is not None
            and claimed is not None
            and claimed > Decimal(str(policy.refund_limit))
        )
    if reason == "repeated_failure":
        return bool(
            (policy.failed_answers and signals.failed_answers >= policy.failed_answers)
            or (policy.ungrounded_turns and signals.ungrounded >= policy.ungrounded_turns)
        )
    if reason == "frustration":
        return bool(
            (policy.frustrated_turns and signals.frustrated >= policy.frustrated_turns)
            or (policy.negative_turns and signals.negative >= policy.negative_turns)
        )
    if reason == "sensitive_intent":
        return analysis.intent.label in policy.sensitive_intents
    raise ValueError(f"no rule for escalation reason {reason!r}")


def refund_claim(
    policy: EscalationPolicy,
    analysis: Analysis,
    message: str,
    orders: Sequence[OrderSummary] = (),
) -> Decimal | None:
    """The largest sum a money-back request asks for, in the tenant's currency.

    Amounts in another currency count through the tenant's ``rates`` (none known: not
    compared). "The full amount" with no figure is the total of the order the message
    names, else of the customer's latest order.
    """
    if not analysis.asks_money_back:
        return None
    values = [convert(m, policy.currency, policy.rates) for m in analysis.amounts]
    known = [v for v in values if v is not None]
    if known:
        return max(known)
    if analysis.full_amount and orders:
        order = _named_order(message, orders) or orders[0]
        return convert(
            Money(Decimal(str(order.total)), policy.currency, order.order_id),
            policy.currency,
            policy.rates,
        )
    return None


def _named_order(message: str, orders: Sequence[OrderSummary]) -> OrderSummary | None:
    """The order whose id, or one of whose products, the message names."""
    folded = message.casefold()
    for order in orders:
        if order.order_id and order.order_id.casefold() in folded:
            return order
    for order in orders:
        for item in order.items:
            name = str(item.get("name", "")).casefold()
            if name and re.search(rf"\b{re.escape(name)}\b", folded):
                return order
    return None
