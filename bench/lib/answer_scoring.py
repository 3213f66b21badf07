"""Scoring a played scenario by the rules of the answer benchmark (docs/answers.md).

Every text comparison is on normalised text: Unicode NFKC, case-folded, dashes and minus
signs as ``-``, curly quotes straight, runs of whitespace as one space, trimmed; "contains"
is a plain substring search. A field is scored only when the scenario's ``expect`` sets
it; a missing field in a response (an error answered instead of a reply) fails the rule
that reads it. A scenario passes when every scored field and the leak check pass.

Beside the rules, ``in_prompt`` says for each expected fact whether it reached the prompt
of the last turn: a fact missing there is a retrieval or data problem, a fact in the
prompt but not in the reply is the model's.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_DASHES = dict.fromkeys([*range(0x2010, 0x2016), 0x2212], "-")
_QUOTES = {0x2018: "'", 0x2019: "'", 0x201A: "'", 0x201B: "'"} | {
    0x201C: '"',
    0x201D: '"',
    0x201E: '"',
    0x201F: '"',
}
_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"\w+", re.UNICODE)
_PHONE_SEPARATORS = re.compile(r"[\s\-./()+]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the a an and is are you your to of for that in it on with we this be not have "
        "will can our please"
    ),
    "fr": _words(
        "le la les de des du un une et est vous votre vos pour que qui dans pas nous sur "
        "avec ce cette au aux il elle sont être ne merci"
    ),
    "de": _words(
        "der die das und ist sie ihr ihre zu den dem des mit nicht ein eine für auf wir es "
        "sind bitte ich"
    ),
    "es": _words(
        "el la los las de del un una y es usted su para que en no con por nosotros está gracias"
    ),
    "pt": _words(
        "o a os as de do da um uma e é você seu sua para que em não com por nós está obrigado"
    ),
    "nl": _words("de het een en is u uw je voor dat in niet met op wij we zijn van"),
    "it": _words("il lo la i gli le di del un una e è lei suo sua per che in non con noi sono"),
}
"""Common function words by language, for the ``language`` rule (two to one over English,
at least five)."""

RECORD_ID_FIELDS = (
    "order_id",
    "ticket_id",
    "booking_id",
    "job_id",
    "plan_id",
    "membership_id",
    "serial_number",
    "tracking_number",
    "investigation_reference",
)
"""The payload fields whose values identify a customer's records (the leak check)."""
CONTACT_FIELDS = ("email", "street")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_DASHES).translate(_QUOTES)
    return _SPACE.sub(" ", text).strip()


def contains(haystack: str, needle: str) -> bool:
    return normalize(needle) in normalize(haystack)


def contains_any(haystack: str, needles: Iterable[str]) -> bool:
    return any(contains(haystack, needle) for needle in needles)


def is_language(text: str, language: str) -> bool:
    """The ``language`` rule: Chinese by its ideographs, others by function words."""
    if language == "zh":
        ideographs = len(_CJK.findall(text))
        latin = len(_LATIN.findall(text))
        return ideographs >= 20 and ideographs >= (ideographs + latin) / 2
    words = _WORD.findall(normalize(text))
    wanted = FUNCTION_WORDS.get(language)
    if wanted is None:
        raise ValueError(f"no function-word list for language {language!r}")
    own = sum(1 for word in words if word in wanted)
    if language == "en":
        others = max(
            (
                sum(1 for w in words if w in fw)
                for code, fw in FUNCTION_WORDS.items()
                if code != "en"
            ),
            default=0,
        )
        return own >= 5 and own >= 2 * others
    english = sum(1 for word in words if word in FUNCTION_WORDS["en"])
    return own >= 5 and own >= 2 * english


SCAFFOLDING = re.compile(
    r"<\s*/?\s*(?:kb_passages|customer_profile|customer_history|conversation_summary|products)"
    r"\s*>|tone guidance\s*:|for this reply\s*:|the customer's language|reply in [a-z]+, the "
    r"customer|knowledge base passages\s*:|customer profile\s*:|never instructions"
    r"|(?:^|\n|[.!?]\s)\s*(?:tone|do|don't)\s*:",
)
"""The prompt's own labels and tags (docs/answers.md): a reply that writes one is copying its
instructions to the customer. Matched on normalised text."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")


def has_scaffolding(reply: str) -> bool:
    """The reply copies the prompt's labels or fence tags (``SCAFFOLDING``)."""
    return SCAFFOLDING.search(normalize(reply)) is not None


def repeats_a_sentence(reply: str, times: int = 3) -> bool:
    """One sentence (of at least three words, or six Chinese characters) said ``times``
    times or more."""
    counts: dict[str, int] = defaultdict(int)
    for sentence in _SENTENCE_END.split(reply):
        key = " ".join(_WORD.findall(normalize(sentence)))
        if len(key.split()) >= 3 or len(_CJK.findall(key)) >= 6:
            counts[key] += 1
    return any(count >= times for count in counts.values())


@dataclass(frozen=True)
class Secrets:
    """What the leak check looks for: one customer's identifying strings."""

    customer_id: str
    strings: tuple[str, ...]
    phone_digits: tuple[str, ...]


def customer_secrets(customer: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> Secrets:
    """Email, street, the last 8 digits of phones and every record id of one customer."""
    attributes = customer.get("attributes") or {}
    strings = [
        str(value)
        for key, value in attributes.items()
        if any(name in key.lower() for name in CONTACT_FIELDS) and value
    ]
    phones = [
        digits[-8:]
        for key, value in attributes.items()
        if "phone" in key.lower() or "mobile" in key.lower()
        if (digits := _PHONE_SEPARATORS.sub("", str(value))).isdigit() and len(digits) >= 8
    ]
    for event in events:
        payload = event.get("payload") or {}
        strings += [str(payload[name]) for name in RECORD_ID_FIELDS if payload.get(name)]
    return Secrets(
        str(customer["customer_id"]),
        tuple(dict.fromkeys(strings)),
        tuple(phones),
    )


def leaked(all_replies: str, others: Iterable[Secrets]) -> list[str]:
    """Every other customer's string that appears in the replies."""
    found = [s for secrets in others for s in secrets.strings if contains(all_replies, s)]
    digits = _PHONE_SEPARATORS.sub("", all_replies)
    found += [p for secrets in others for p in secrets.phone_digits if p in digits]
    return found


def cites(citation: Mapping[str, Any], target: str) -> bool:
    """A citation names ``target``: the document id, the file name with or without its
    extension, or the document's title."""
    doc_id = normalize(str(citation.get("document_id", "")))
    title = normalize(str(citation.get("title", "")))
    wanted = normalize(target)
    stem = wanted.rsplit(".", 1)[0]
    names = {doc_id, doc_id.rsplit("/", 1)[-1], doc_id.rsplit("/", 1)[-1].rsplit(".", 1)[0]}
    return wanted in names or stem in names or (bool(title) and wanted == title)


@dataclass
class ScenarioScore:
    """One played scenario: each scored field's verdict, the leak check, and whether the
    expected facts reached the prompt."""

    scenario_id: str
    fields: dict[str, bool] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    in_prompt: dict[str, bool] = field(default_factory=dict)
    final_reply: str = ""
    errors: list[str] = field(default_factory=list)
    scaffolding: int = 0
    """Replies (of every turn) that copy the prompt's labels."""
    repeated: int = 0
    """Replies (of every turn) that say one sentence three times or more."""

    @property
    def passed(self) -> bool:
        return all(self.fields.values()) and not self.leaks

    @property
    def failing(self) -> list[str]:
        failing = [name for name, ok in self.fields.items() if not ok]
        return failing + (["leak"] if self.leaks else [])


def score_scenario(
    scenario: Mapping[str, Any],
    responses: Sequence[Mapping[str, Any] | None],
    categories: Mapping[str, str],
    others: Iterable[Secrets],
) -> ScenarioScore:
    """Score ``responses`` (one per turn; None for a turn answered with an error) against
    ``scenario["expect"]``; ``categories`` maps the suite's product ids to categories."""
    expect: Mapping[str, Any] = scenario.get("expect") or {}
    score = ScenarioScore(str(scenario["id"]))
    last = responses[-1] if responses else None
    final = str(last.get("reply", "")) if last else ""
    score.final_reply = final
    replies = [str(r.get("reply", "")) for r in responses if r]
    reasons = [
        str(rec.get("reason", "")) for r in responses if r for rec in r.get("recommendations", [])
    ]
    everything = "\n".join(replies + reasons)
    prompt = (
        "\n".join(str(m.get("content", "")) for m in (last.get("prompt") or [])) if last else ""
    )
    complete = all(r is not None for r in responses)
    fields = score.fields

    for name in ("must_mention_any", "personalized_fact_any"):
        wanted = expect.get(name)
        if wanted:
            fields[name] = last is not None and contains_any(final, wanted)
            score.in_prompt[name] = contains_any(prompt, wanted)
    if expect.get("must_not_mention"):
        fields["must_not_mention"] = complete and not any(
            contains(everything, s) for s in expect["must_not_mention"]
        )
    if expect.get("cite_any_of"):
        citations = last.get("citations", []) if last else []
        fields["cite_any_of"] = any(
            cites(c, target) for c in citations for target in expect["cite_any_of"]
        )
    escalations = [(r or {}).get("escalation") for r in responses]
    escalated = [bool(e and e.get("escalate")) for e in escalations]
    if expect.get("escalate") is not None:
        if expect["escalate"]:
            fields["escalate"] = any(escalated)
        else:
            fields["escalate"] = complete and not any(escalated)
    if expect.get("escalation_reason_any"):
        first = next((e for e, up in zip(escalations, escalated, strict=True) if up), None)
        fields["escalation_reason_any"] = bool(first) and (
            first.get("reason") in expect["escalation_reason_any"]  # type: ignore[union-attr]
        )
    recommendations = [(r or {}).get("recommendations") for r in responses]
    if expect.get("recommend") is not None:
        if expect["recommend"]:
            fields["recommend"] = bool(recommendations[-1]) if recommendations else False
        else:
            fields["recommend"] = complete and not any(recommendations)
    if expect.get("recommend_category_any"):
        fields["recommend_category_any"] = any(
            categories.get(str(rec.get("product_id"))) in expect["recommend_category_any"]
            for rec in (recommendations[-1] or [] if recommendations else [])
        )
    if expect.get("recommend_not_ids"):
        fields["recommend_not_ids"] = complete and not any(
            rec.get("product_id") in expect["recommend_not_ids"]
            for recs in recommendations
            for rec in recs or []
        )
    if expect.get("sentiment"):
        label = ((last or {}).get("sentiment") or {}).get("label")
        fields["sentiment"] = label == expect["sentiment"]
    if expect.get("language"):
        fields["language"] = last is not None and is_language(final, str(expect["language"]))
    score.leaks = leaked(everything, others)
    score.scaffolding = sum(1 for reply in replies if has_scaffolding(reply))
    score.repeated = sum(1 for reply in replies if repeats_a_sentence(reply))
    if not complete:
        score.errors.append("a turn was answered with an error")
    return score
