"""Finding and redacting personal data in text: emails, phones, payment cards, IBANs, national ids.

Support messages are full of contact and payment details. Anything Concierge logs,
stores in conversation history, indexes or exports goes through ``Redactor`` first.
Detection favours precision where a false positive would hurt support work: a run
of digits is a card only if it passes the Luhn check, an IBAN only if it passes
ISO 7064 mod 97, and a phone number needs an international ``+``, a trunk ``0``, an
area code in parentheses or the grouped ``555-123-4567`` shape, or the French and
Chinese national shapes with a number valid in that country (``phonenumbers``), so order
numbers, prices and dates stay readable.

Within one request the redaction is reversible: ``Redactor.redact`` swaps each value
for a numbered placeholder (``[EMAIL_1]``) and keeps the originals in memory, so the
reply shown to the customer who wrote them can say them back (``restore``), while
what is stored says ``j***@example.com`` (``masked``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

import phonenumbers

from core import metrics


class PiiKind(StrEnum):
    EMAIL = "email"
    IBAN = "iban"
    CARD = "card"
    NATIONAL_ID = "national_id"
    PHONE = "phone"


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data found in a text: ``text[start:end] == value``."""

    kind: PiiKind
    start: int
    end: int
    value: str


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# Any case ("de46 9351 ..." typed in lower case), spaces, dots or dashes between groups;
# the mod-97 check, tried on the longest prefix first (``_iban_in``), keeps words out.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ .-]?[A-Za-z0-9]){11,30}\b")
# Digits grouped by spaces, dashes, dots or slashes ("4082.4628.1948.2196"); after "+": a
# phone number.
_CARD = re.compile(r"(?<![\d+./-])\d(?:[ ./-]?\d){12,18}(?![\d-]|[./]\d)")
_NATIONAL_ID = re.compile(
    r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"  # US social security number
    r"|\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"  # UK national insurance number
)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +49 30 1234567
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"  # (030) 1234 5678
    r"|0\d{2,4}[ /.-]?\d{3,4}[ .-]?\d{2,4}"  # 030 1234567, 0151-2345678
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r")(?![\w])"
)
# National shapes without a "+" or the trunk-and-area-code layout above, written as people
# of the project's languages write them (06 12 34 56 78; 138 0013 8000); each must be a
# valid number of its country by libphonenumber's ranges (``phonenumbers``), so an order
# number rarely passes. Chinese text has no spaces and its characters count as word
# characters, so these shapes are bounded by ASCII letters and digits only.
_NOT_AFTER = r"(?<![0-9A-Za-z_+.-])"
_NOT_BEFORE = r"(?![0-9A-Za-z_]|[.-]\d)"
_FRENCH_PHONE = re.compile(rf"{_NOT_AFTER}0[1-9](?:[ .]\d{{2}}){{4}}{_NOT_BEFORE}")
_CHINESE_MOBILE = re.compile(rf"{_NOT_AFTER}1[3-9]\d(?:[ -]?\d{{4}}){{2}}{_NOT_BEFORE}")
_ORDER: tuple[tuple[PiiKind, re.Pattern[str], str | None], ...] = (
    (PiiKind.EMAIL, _EMAIL, None),
    (PiiKind.IBAN, _IBAN, None),
    (PiiKind.CARD, _CARD, None),
    (PiiKind.NATIONAL_ID, _NATIONAL_ID, None),
    (PiiKind.PHONE, _PHONE, None),
    (PiiKind.PHONE, _FRENCH_PHONE, "FR"),
    (PiiKind.PHONE, _CHINESE_MOBILE, "CN"),
)
"""Most specific first: a card number must not be taken for a phone number. The third
field is the country whose numbering plan a match must fit."""

_PLACEHOLDER = re.compile(r"\[(EMAIL|IBAN|CARD|NATIONAL_ID|PHONE)_(\d+)\]")


def luhn_valid(digits: str) -> bool:
    """The payment-card check digit (ISO/IEC 7812)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1.

    Case and the separators people type (spaces, dots, dashes) do not matter."""
    compact = re.sub(r"[ .-]", "", candidate).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


_IBAN_LENGTHS = {
    country: int(length)
    for country, length in re.findall(
        r"([A-Z]{2}):(\d+)",
        "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BR:29 BY:28 CH:21 CR:22 "
        "CY:28 CZ:24 DE:22 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FO:18 FR:27 GB:22 GE:22 "
        "GI:23 GL:18 GR:27 GT:28 HR:21 HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 KW:30 "
        "KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 LV:21 MC:27 MD:24 ME:22 MK:19 MR:27 MT:31 "
        "MU:30 NL:18 NO:15 PK:24 PL:28 PS:29 PT:25 QA:29 RO:24 RS:22 SA:24 SC:31 SE:24 "
        "SI:19 SK:24 SM:27 ST:25 SV:28 TL:23 TN:24 TR:26 UA:29 VA:22 VG:24 XK:20",
    )
}
"""IBAN length by country (ISO 13616 registry): where it is known, only that length counts."""


def _iban_in(text: str, start: int, end: int) -> int | None:
    """The end of the valid IBAN that starts at ``start`` within ``text[start:end]``.

    The pattern runs on over the words after an account number typed in lower case ("de46
    9351 ... thanks"), so the candidate is cut back group by group: to the country's IBAN
    length where the registry knows it, else to the longest prefix that passes mod 97.
    """
    stops = [m.start() for m in re.finditer(r"[ .-]", text[start:end])] + [end - start]
    length = _IBAN_LENGTHS.get(text[start : start + 2].upper())
    for stop in sorted(stops, reverse=True):
        candidate = text[start : start + stop]
        if length is not None and len(re.sub(r"[ .-]", "", candidate)) != length:
            continue
        if iban_valid(candidate):
            return start + stop
    return None


def _valid(kind: PiiKind, value: str, country: str | None = None) -> bool:
    if country is not None:
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(value, country))
        except phonenumbers.NumberParseException:
            return False
    if kind is PiiKind.CARD:
        digits = re.sub(r"\D", "", value)
        return 13 <= len(digits) <= 19 and luhn_valid(digits)
    if kind is PiiKind.IBAN:
        return iban_valid(value)
    if kind is PiiKind.PHONE:
        return 7 <= sum(char.isdigit() for char in value) <= 15
    return True


def find_pii(text: str) -> list[PiiMatch]:
    """Every piece of personal data in ``text``, in order, never overlapping."""
    taken: list[PiiMatch] = []
    claimed: list[tuple[int, int]] = []
    for kind, pattern, country in _ORDER:
        for found in pattern.finditer(text):
            start, end = found.span()
            if any(start < other_end and other_start < end for other_start, other_end in claimed):
                continue
            if kind is PiiKind.IBAN:
                iban_end = _iban_in(text, start, end)
                if iban_end is not None:
                    taken.append(PiiMatch(kind, start, iban_end, text[start:iban_end]))
                    claimed.append((start, iban_end))
                    continue
            if _valid(kind, found.group(), country):
                taken.append(PiiMatch(kind, start, end, found.group()))
                claimed.append((start, end))
            elif kind in (PiiKind.IBAN, PiiKind.CARD):
                # shaped like an account or card number but failing its check: a reference
                # number of some kind, whose digit groups must not turn into a phone number
                claimed.append((start, end))
    return sorted(taken, key=lambda match: match.start)


def mask(kind: PiiKind, value: str) -> str:
    """A form that tells the customer which one is meant without revealing it."""
    if kind is PiiKind.EMAIL:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = re.sub(r"[^0-9A-Za-z]", "", value)
    if kind is PiiKind.IBAN:
        return f"{digits[:2]}** **** {digits[-4:]}"
    if kind is PiiKind.CARD:
        return f"**** {digits[-4:]}"
    if kind is PiiKind.PHONE:
        return f"***{digits[-2:]}"
    return "***"  # national ids: no part of them helps a support conversation


def redact_text(text: str, where: str | None = None) -> str:
    """``text`` with every piece of personal data replaced by its masked form (one-way).

    ``where`` names the place for ``concierge_pii_redactions`` (message, history).
    """
    redactor = Redactor()
    masked = redactor.masked(redactor.redact(text))
    if where is not None:
        for kind, _ in redactor.found:
            metrics.PII_REDACTIONS.labels(kind=kind.value, where=where).inc()
    return masked


@dataclass
class Redactor:
    """Redaction for one request: numbered placeholders, reversible until it is dropped."""

    _values: dict[str, tuple[PiiKind, str]] = field(default_factory=dict)
    _numbers: dict[tuple[PiiKind, str], str] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        """Replace each value with ``[KIND_n]``; the same value keeps the same placeholder."""
        parts: list[str] = []
        cursor = 0
        for match in find_pii(text):
            parts.append(text[cursor : match.start])
            parts.append(self._placeholder(match.kind, match.value))
            cursor = match.end
        parts.append(text[cursor:])
        return "".join(parts)

    def restore(self, text: str) -> str:
        """Put the original values back (for the customer who wrote them, never for storage)."""
        return _PLACEHOLDER.sub(lambda found: self._lookup(found, masked=False), text)

    def masked(self, text: str) -> str:
        """Replace placeholders with masked forms (``j***@example.com``): safe to keep."""
        return _PLACEHOLDER.sub(lambda found: self._lookup(found, masked=True), text)

    @property
    def found(self) -> list[tuple[PiiKind, str]]:
        """What was redacted, for counting (the values never leave the request)."""
        return list(self._values.values())

    def _placeholder(self, kind: PiiKind, value: str) -> str:
        key = (kind, value)
        if key not in self._numbers:
            count = sum(1 for other, _ in self._values.values() if other is kind) + 1
            placeholder = f"[{kind.name}_{count}]"
            self._numbers[key] = placeholder
            self._values[placeholder] = key
        return self._numbers[key]

    def _lookup(self, found: re.Match[str], masked: bool) -> str:
        entry = self._values.get(found.group())
        if entry is None:  # a placeholder the model invented: say nothing
            return "***"
        kind, value = entry
        return mask(kind, value) if masked else value
