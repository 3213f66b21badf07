"""Money amounts as customers write them: "€2,349", "2.349,00 €", "2 349 €", "1 200 元".

The reply pipeline hands a conversation to a person when a refund request is above the
tenant's limit, so a misread amount ("€2,349" as 2.34, "2 349 €" as 349) silently lets
large refunds through. This module reads amounts the way people write them in the
languages we serve, and never guesses an amount from a bare number.

Rules, in the order they apply:

* An amount is a number with a currency marker right before or after it (nothing, one
  space or one no-break space between; a minus sign before the number is ignored).
  Symbols and codes may stand on either side; words ("euros", "元") only after it,
  except "人民币". Bare numbers (order numbers, years, "2 kettles") are never amounts,
  nor are numbers glued to letters ("HK-59164", "A4").
* A number is digit groups joined by single separators: ``.`` ``,`` an apostrophe
  (Swiss) or a space (space, U+00A0, U+202F, U+2009).
* The decimal sign: a ``.``/``,`` followed by other than three digits at the end; the
  last of ``.``/``,`` when another kind of separator comes before it ("2.349,00",
  "1'234.50"); and, when one ``.``/``,`` alone is followed by exactly three digits
  ("2,349"), the locale decides: it is the decimal sign only where it is the locale's
  decimal sign ("€2,349" is 2.349 in French, 2349 in English). A repeated ``.``/``,``
  and every space or apostrophe group thousands.
* Grouped integer parts must read 1-3 digits (not starting with 0), then groups of
  exactly three, all joined by one kind of separator. When a whole run of digits and
  separators does not read so, the longest valid part next to the marker is the
  amount ("$20 30 days" is 20 USD, "order 2024 45 €" is 45 EUR).
* "k"/"K", "千", "万", "亿" right after the number multiply it ("€2k" is 2000).
* A range ("€10-20", "10-20 €", "100至200元") gives both ends the currency written on
  one of them, when the first is smaller than the second. A marker between two numbers
  belongs to the number before it ("5 € 10 items" is 5 EUR).
* "¥" is CNY for a Chinese locale, JPY for any other.
* A number in words ("one thousand one hundred dollars", "deux mille euros", "三千八百块",
  "$2 thousand") is an amount by the same marker rule (`core.number_words` reads it).

Every pattern here matches in time linear in the text: no nested quantifiers, and the
search for a valid part of a long run of digits only looks at a few groups at its ends.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.currency_markers import AFTER_ONLY, EITHER_SIDE, UPPERCASE_CODES, YEN_SIGNS
from core.number_words import find_spelled_numbers


@dataclass(frozen=True)
class Money:
    """An amount of money written in a message."""

    amount: Decimal
    currency: str
    """ISO 4217 code: "EUR", "USD", "GBP", "CHF", "CNY", "JPY", ..."""
    text: str
    """The matched text, marker included, for logs."""


_CURRENCY: dict[str, str] = {
    **EITHER_SIDE,
    **AFTER_ONLY,
    **{code.lower(): code for code in UPPERCASE_CODES},
    **dict.fromkeys(YEN_SIGNS, "JPY"),
}
_BEFORE_OK = frozenset(EITHER_SIDE) | {c.lower() for c in UPPERCASE_CODES} | set(YEN_SIGNS)


def _alternation(words: Sequence[str]) -> str:
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))


_MARKERS = list(EITHER_SIDE) + list(AFTER_ONLY) + list(YEN_SIGNS)
_LETTERED = [m for m in _MARKERS if m[0].isascii() and m[0].isalpha()]
_OTHERS = [m for m in _MARKERS if m not in _LETTERED]
# Lettered markers must not be parts of words or names ("europe", "BUS$", "site.fr. 20");
# the rest need no edge.
_MARKER = re.compile(
    rf"(?<![A-Za-z.])(?:{_alternation(_LETTERED)})(?![A-Za-z])"
    rf"|(?<![A-Za-z])(?-i:{_alternation(UPPERCASE_CODES)})(?![A-Za-z])"
    rf"|{_alternation(_OTHERS)}",
    re.IGNORECASE,
)

_SPACES = " \u00a0\u202f\u2009"
_APOSTROPHES = "'\u2019"
_SEPARATOR_CLASS = re.escape(".," + _APOSTROPHES + _SPACES)
# Each repetition starts with a separator, which is not a digit: one way to match, linear.
_RUN = re.compile(rf"\d+(?:[{_SEPARATOR_CLASS}]\d+)*")
_SEPARATOR = re.compile(rf"([{_SEPARATOR_CLASS}])")
_PREFIX_GAP = re.compile(rf"[{_SPACES}]?[-\u2212]?")
_RANGE = re.compile(rf"[{_SPACES}]?(?:[-\u2010-\u2014\u2212~\uff5e]|至)[{_SPACES}]?")

_MULTIPLIERS = {"k": 1000, "K": 1000, "千": 1000, "万": 10_000, "亿": 100_000_000}
_MAX_GROUPS = 7
"""A run of digits and separators longer than this is not one amount: only this many
groups at either end of it are read, which keeps long runs linear."""
_MAX_DIGITS = 15
"""A digit group longer than this is an id or garbage, not an amount."""

_DECIMAL_COMMA = frozenset({
    "af", "az", "be", "bg", "bs", "ca", "cs", "da", "de", "el", "es", "et", "eu", "fi",
    "fo", "fr", "gl", "hr", "hu", "hy", "id", "is", "it", "ka", "kk", "ky", "lb", "lt",
    "lv", "mk", "mn", "nb", "nl", "nn", "no", "pl", "pt", "ro", "ru", "sk", "sl", "sq",
    "sr", "sv", "tr", "uk", "uz", "vi",
})  # fmt: skip
"""Languages that write a decimal comma. Any other, or an unknown one, is read as
English (decimal point): en, zh, ja, ko, he, th, hi, ..."""
_DECIMAL_POINT_REGIONS = frozenset({"CH", "LI", "MX"})
"""Regions that write a decimal point in a decimal-comma language (de-CH, es-MX)."""


def _locale_rules(locale: str) -> tuple[str, bool]:
    """The decimal sign of `locale` ("fr", "fr-FR", "fr_CA"), and whether it is Chinese."""
    parts = re.split(r"[-_.@]", locale)
    language = parts[0].lower()
    regions = {part.upper() for part in parts[1:] if len(part) == 2}
    comma = language in _DECIMAL_COMMA and not regions & _DECIMAL_POINT_REGIONS
    return ("," if comma else "."), language == "zh"


def _kind(separator: str) -> str:
    """One name per kind of separator: all spaces group alike, so do both apostrophes."""
    if separator in _SPACES:
        return " "
    if separator in _APOSTROPHES:
        return "'"
    return separator


def _digits(group: str) -> str:
    """ASCII digits for any script's (full-width "１２００元" included)."""
    if group.isascii():
        return group
    return "".join(str(unicodedata.decimal(char)) for char in group)


def _value(groups: Sequence[str], seps: Sequence[str], decimal_sign: str) -> Decimal | None:
    """The number that digit `groups` joined by `seps` (kinds) write, None if invalid."""
    if len(groups) > _MAX_GROUPS or any(len(group) > _MAX_DIGITS for group in groups):
        return None
    if not seps:
        return Decimal(_digits(groups[0]))
    last = seps[-1]
    decimal = False
    if last in ".,":
        earlier = set(seps[:-1])
        if len(groups[-1]) != 3 or (earlier and last not in earlier):
            decimal = True  # "49,99", "2.349,00", "2 349,500"
        elif not earlier:  # "2,349": the locale decides, and "0,349" is no grouping
            first = groups[0]
            decimal = last == decimal_sign or len(first) > 3 or first.startswith("0")
    integer, grouping = (groups[:-1], seps[:-1]) if decimal else (groups, seps)
    if grouping:
        if len(set(grouping)) > 1 or (decimal and last in grouping):
            return None
        first = integer[0]
        if len(first) > 3 or first.startswith("0"):
            return None
        if any(len(group) != 3 for group in integer[1:]):
            return None
    number = "".join(_digits(group) for group in integer)
    if decimal:
        number += "." + _digits(groups[-1])
    return Decimal(number)


@dataclass(frozen=True)
class _Marker:
    start: int
    end: int
    currency: str


@dataclass
class _Reading:
    """A number read from the text; `currency` is None for a bare number, which only
    becomes an amount as the end of a range whose other end names a currency."""

    start: int
    end: int
    amount: Decimal
    currency: str | None


def _is_letter(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


class _Scanner:
    """One pass over one text: its markers, and the numbers next to them."""

    def __init__(self, text: str, locale: str) -> None:
        self.text = text
        self.decimal_sign, chinese = _locale_rules(locale)
        self.before: dict[int, _Marker] = {}  # markers that may precede, by end
        self.after: dict[int, _Marker] = {}  # every marker, by start
        self.used: set[int] = set()  # starts of markers read as suffixes
        for match in _MARKER.finditer(text):
            key = match.group().lower()
            currency = _CURRENCY[key]
            if key in YEN_SIGNS and chinese:
                currency = "CNY"
            marker = _Marker(match.start(), match.end(), currency)
            self.after[marker.start] = marker
            if key in _BEFORE_OK:
                self.before[marker.end] = marker

    def marker_before(self, start: int) -> _Marker | None:
        for gap in (0, 1, 2):
            marker = self.before.get(start - gap)
            if (
                marker is not None
                and marker.start not in self.used
                and _PREFIX_GAP.fullmatch(self.text, start - gap, start)
            ):
                return marker
        return None

    def marker_after(self, end: int) -> _Marker | None:
        marker = self.after.get(end)
        if marker is None and end < len(self.text) and self.text[end] in _SPACES:
            marker = self.after.get(end + 1)
        if marker is not None:
            self.used.add(marker.start)
        return marker

    def glued(self, start: int) -> bool:
        """The number is part of a word or an id: "A4", "HK-59164", "x#12"."""
        text = self.text
        if start == 0:
            return False
        if _is_letter(text[start - 1]):
            return True
        return start >= 2 and text[start - 1] in "-/#." and _is_letter(text[start - 2])

    def multiplier(self, end: int) -> tuple[int, int]:
        """The factor written right after the number ("2k", "5千", "2万"), and its length."""
        text = self.text
        if end < len(text) and text[end] in _MULTIPLIERS:
            if text[end] in "kK" and end + 1 < len(text) and _is_letter(text[end + 1]):
                return 1, 0  # "2kg", "10KB"
            return _MULTIPLIERS[text[end]], 1
        return 1, 0

    def read_spelled(self) -> list[_Reading]:
        """Numbers in words with a currency marker next to them ("two thousand euros",
        "三千八百块", "$2 thousand"); a number in words without one is no amount."""
        readings = []
        for number in find_spelled_numbers(self.text):
            prefix = self.marker_before(number.start)
            suffix = None if prefix else self.marker_after(number.end)
            marker = prefix or suffix
            if marker is not None:
                start = prefix.start if prefix else number.start
                end = suffix.end if suffix else number.end
                readings.append(_Reading(start, end, number.value, marker.currency))
        return readings

    def read_run(self, start: int, end: int) -> list[_Reading]:
        """The amounts in one run of digits and separators."""
        prefix = self.marker_before(start)
        if prefix is None and self.glued(start):
            return []
        parts = _SEPARATOR.split(self.text[start:end])
        groups = parts[0::2]
        seps = [_kind(sep) for sep in parts[1::2]]
        factor, factor_length = self.multiplier(end)
        suffix = self.marker_after(end + factor_length)
        whole = _value(groups, seps, self.decimal_sign)
        if whole is not None:
            marker = prefix or suffix
            return [
                _Reading(
                    prefix.start if prefix else start,
                    suffix.end if suffix else end + factor_length,
                    whole * factor,
                    marker.currency if marker else None,
                )
            ]
        # Not one number: read the longest valid part next to each marker.
        readings = []
        offsets = [start]
        for group in groups[:-1]:
            offsets.append(offsets[-1] + len(group) + 1)
        taken = 0
        if prefix is not None:
            for count in range(min(len(groups), _MAX_GROUPS), 0, -1):
                value = _value(groups[:count], seps[: count - 1], self.decimal_sign)
                if value is not None:
                    group_end = offsets[count - 1] + len(groups[count - 1])
                    readings.append(_Reading(prefix.start, group_end, value, prefix.currency))
                    taken = count
                    break
        if suffix is not None:
            for first in range(max(taken, len(groups) - _MAX_GROUPS), len(groups)):
                value = _value(groups[first:], seps[first:], self.decimal_sign)
                if value is not None:
                    readings.append(
                        _Reading(offsets[first], suffix.end, value * factor, suffix.currency)
                    )
                    break
        return readings


def _spread_over_ranges(text: str, readings: list[_Reading]) -> None:
    """Give both ends of "€10-20" or "10-20 €" the currency written on one of them."""
    ranges = [
        (low, high)
        for low, high in itertools.pairwise(readings)
        if low.amount < high.amount and _RANGE.fullmatch(text, low.end, high.start)
    ]
    for low, high in ranges:
        if high.currency is None:
            high.currency = low.currency
    for low, high in reversed(ranges):
        if low.currency is None:
            low.currency = high.currency


def find_amounts(text: str, locale: str = "en") -> list[Money]:
    """Every money amount written in `text`, in order of appearance.

    `locale` ("en", "fr-FR", "zh_CN") only settles "2,349"/"2.349" (thousands, unless
    that separator is the locale's decimal sign) and "¥" (CNY in Chinese, else JPY).
    Negative amounts are read as their size: the customer means the money either way.
    """
    scanner = _Scanner(text, locale)
    spelled = scanner.read_spelled()
    covered = {index for reading in spelled for index in range(reading.start, reading.end)}
    readings = list(spelled)
    for run in _RUN.finditer(text):
        if run.start() not in covered:  # the "2" of "€2 thousand" is read with its word
            readings.extend(scanner.read_run(run.start(), run.end()))
    readings.sort(key=lambda reading: reading.start)
    _spread_over_ranges(text, readings)
    return [
        Money(reading.amount, reading.currency, text[reading.start : reading.end])
        for reading in readings
        if reading.currency is not None
    ]


def convert(money: Money, target: str, rates: Mapping[str, float]) -> Decimal | None:
    """`money` in `target` currency: itself when the currency is the target, else
    amount * rates[money.currency] (rates give 1 unit of that currency in the target),
    None when no rate is known.

    A rate that is not a positive finite number is no known rate: comparing a refund
    with a limit through it would be meaningless. The rate goes through its shortest
    decimal text, so 1.1 multiplies by exactly 1.1, not by its binary approximation.
    """
    if money.currency == target.upper():
        return money.amount
    rate = rates.get(money.currency)
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return None
    return money.amount * Decimal(repr(float(rate)))


_FULL_AMOUNT = re.compile(
    "|".join(
        [
            # English
            r"\b(?:the|a|my)\s+(?:full|whole|entire|complete)\s+(?:amount|refund|sum)\b",
            r"\bfull\s+refund",
            r"\bfully\s+refund",
            r"\brefund(?:ed)?\s+(?:me\s+|it\s+|everything\s+)?in\s+full\b",
            r"\bback\s+in\s+full\b",
            r"\ball\s+(?:of\s+)?my\s+money\b",
            r"\beverything\s+I\s+(?:paid|spent)\b",
            r"\b(?:refund|pay\s+back|reimburse)\s+(?:me\s+)?(?:everything|the\s+lot|all\s+of\s+it)\b",
            r"\b(?:refund|reimburse)\s+(?:me\s+)?(?:for\s+)?(?:the|my)\s+(?:whole|entire|full)\s+"
            r"(?:order|booking|purchase|amount|bill|thing|lot)\b",
            r"\bevery\s+(?:single\s+)?(?:penny|cent)\b",
            # French
            r"\bremboursement\s+(?:intégral|complet|total)",
            r"\brembours\w*(?:[-\s]moi)?\s+(?:intégralement|entièrement|totalement"
            r"|la\s+totalité|l['’]intégralité)",
            r"\b(?:la\s+totalité|l['’]intégralité)\s+(?:de\s+la\s+somme|du\s+montant"
            r"|de\s+mon\s+argent|de\s+mon\s+achat|de\s+ma\s+commande)",
            r"\btout\s+mon\s+argent\b|\btout\s+ce\s+que\s+j['’]ai\s+(?:payé|versé|dépensé)\b",
            r"\brembours\w*(?:[-\s]moi)?\s+(?:tout|l['’]ensemble)\b|\btout\s+(?:me\s+)?rembourser\b",
            r"\brembours\w*\s+(?:de|à)\s+(?:la\s+totalité|l['’]intégralité|100\s?%)",
            # German
            r"\b(?:den|die)\s+(?:vollen|volle|gesamten|gesamte|ganzen|ganze)\s+"
            r"(?:Betrag|Kaufpreis|Summe)\b",
            r"\b(?:volle|vollen|vollständige|vollständigen|komplette|kompletten)\s+"
            r"(?:Rück)?(?:erstattung|zahlung)",
            r"\bmein\s+(?:ganzes|gesamtes)\s+Geld\b",
            # Spanish
            r"\breembolso\s+(?:completo|total|íntegro)",
            r"\btodo\s+mi\s+dinero\b",
            # Chinese
            r"全额(?:退款|退还|退回|返还)|全部(?:退款|退还|退回|退给)|退(?:还)?全款|全款退"
            r"|钱全部退|退(?:还|回)?全部",
        ]
    ),
    re.IGNORECASE,
)


def mentions_full_amount(text: str) -> bool:
    """The customer asks for everything back without a number: "the full amount",
    "a full refund", "all my money back", "everything I paid", French ("remboursement
    intégral", "rembourser la totalité", "tout mon argent"), German ("den vollen Betrag"),
    Chinese ("全额退款", "全部退款", "退全款", "把钱全部退给我").

    Such a request is for the whole order, which may be above the tenant's refund limit
    though no amount is written. A question about the policy ("is the refund full or
    partial?") is not such a request; a negated one ("I don't want a full refund") still
    counts: a person reads it then, which is the safe side.
    """
    return _FULL_AMOUNT.search(text) is not None
