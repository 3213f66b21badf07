"""Numbers written in words: "one thousand one hundred", "mille deux cents", "三千八百".

Customers say amounts the way they speak them ("a refund of one thousand one hundred
dollars", "remboursez-moi deux mille euros", "剩下的三千八百块退给我"), most of all in
voice-to-text. `core.money` reads such a number as an amount only when a currency marker
stands right after it, as it does for digits; this module only turns the words into a
number.

What is read:

* English: zero to nineteen, the tens, "hundred", "thousand", "million", "billion",
  joined by spaces, hyphens or "and" ("two hundred and fifty"); "a" or "an" before a
  scale word ("a thousand"); a digit number before a scale word ("2 thousand",
  "1.5 million", "2,5 millions" in a decimal-comma language is left to the caller).
* French: zéro to seize, dix-sept to dix-neuf, the tens with "soixante-dix",
  "quatre-vingt(s)" and "quatre-vingt-dix", Belgian and Swiss "septante", "huitante",
  "octante", "nonante", "cent(s)", "mille", "million(s)", "milliard(s)", joined by
  spaces, hyphens or "et" ("vingt et un").
* Chinese: 零 (or \u3007) 一二两三四五六七八九 with 十百千万亿, the financial forms
  壹贰叁肆伍陆柒捌玖拾佰仟, and the spoken shortening where a trailing digit stands
  for the next lower unit ("三千八" is 3800, "一万二" is 12000, "两百五" is 250).

A sequence that does not read as one number (“hundred thousand hundred”) is not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

_EN_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_FR_SMALL = {
    "zéro": 0, "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4,
    "cinq": 5, "six": 6, "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11,
    "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16, "vingt": 20,
    "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60,
    "septante": 70, "huitante": 80, "octante": 80, "nonante": 90,
}  # fmt: skip
_HUNDRED = {"hundred": 100, "cent": 100, "cents": 100}
_SCALES = {
    "thousand": 1000, "million": 10**6, "billion": 10**9,
    "mille": 1000, "millions": 10**6,
    "milliard": 10**9, "milliards": 10**9,
}  # fmt: skip
_JOINERS = frozenset({"and", "et"})
_ENGLISH_ONLY = frozenset(_EN_SMALL) - frozenset(_FR_SMALL)
"""After one of these, "cent(s)" is money ("fifty cents"), not the French hundred."""
_ARTICLES = frozenset({"a", "an"})
"""Read as one only right before "hundred" or a scale word ("a thousand euros")."""

_WORDS = {**_EN_SMALL, **_FR_SMALL, **_HUNDRED, **_SCALES}
_WORD_ALTERNATION = "|".join(sorted(map(re.escape, _WORDS), key=len, reverse=True))
_EDGE_LEFT = r"(?<![\w-])"
_EDGE_RIGHT = r"(?![\w-])"
_TOKEN = rf"(?:{_WORD_ALTERNATION}|and|et|an?)"
# Words joined by one space or one hyphen each; the first word is never a joiner.
_SPELLED = re.compile(
    rf"{_EDGE_LEFT}(?:{_WORD_ALTERNATION}|an?)(?:[ \u00a0-]{_TOKEN})*{_EDGE_RIGHT}",
    re.IGNORECASE,
)
_DIGITS_THEN_SCALE = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:[.,]\d{1,2})?)[ \u00a0](thousand|million|billion|mille|millions?)"
    rf"{_EDGE_RIGHT}",
    re.IGNORECASE,
)

_ZH_DIGITS = {
    "零": 0, "\u3007": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3,
    "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8,
    "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_ZH_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_ZH_BIG = {"万": 10_000, "亿": 100_000_000}
_ZH_SPELLED = re.compile(f"[{''.join(_ZH_DIGITS)}{''.join(_ZH_UNITS)}{''.join(_ZH_BIG)}]+")


@dataclass(frozen=True)
class SpelledNumber:
    """A number written in words, and where it stands in the text."""

    start: int
    end: int
    value: Decimal


def _western_value(words: list[str]) -> int | None:
    """The number that English or French number words write, None if they do not read
    as one number. `words` are lower case, joiners included."""
    total = 0  # finished scale groups ("two thousand" in "two thousand five")
    group = 0  # the group below the next scale word
    last_scale = None
    previous = None  # kind of the previous word: "small", "hundred", "scale", "joiner"
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        if word in _JOINERS:
            if previous in (None, "joiner"):
                return None
            previous = "joiner"
            continue
        if word in _ARTICLES:
            if previous not in (None, "joiner") or following not in {*_HUNDRED, *_SCALES}:
                return None
            group += 1
            previous = "small"
            continue
        if word in _HUNDRED:
            after_english = index > 0 and words[index - 1] in _ENGLISH_ONLY | _ARTICLES
            if group >= 100 or (word != "hundred" and after_english):
                return None
            group = (group or 1) * 100
            previous = "hundred"
            continue
        if word in _SCALES:
            scale = _SCALES[word]
            if last_scale is not None and scale >= last_scale:
                return None
            total += (group or 1) * scale
            group = 0
            last_scale = scale
            previous = "scale"
            continue
        value = _EN_SMALL.get(word, _FR_SMALL.get(word))
        if value is None:
            return None
        if word in ("vingt", "vingts") and previous == "small" and group % 100 == 4:
            group += 76  # quatre-vingt(s): 4 * 20
        elif group % 100 == 0 or (group % 10 == 0 and group % 100 >= 20 and value < 10):
            group += value  # "twenty" then "one"; "cent" then "vingt"
        elif group % 100 in (60, 80) and 10 <= value < 20:
            group += value  # soixante-dix, quatre-vingt-dix-neuf
        else:
            return None
        previous = "small"
    if previous == "joiner":
        return None
    return total + group


def _chinese_value(text: str) -> int | None:
    """The number that Chinese numerals write ("三千八百", "一万二", "两百五"), None if
    they do not read as one."""
    total = 0
    section = 0  # below 万
    digit: int | None = None
    zero_seen = False  # "一千零五" is 1005: after a zero, a trailing digit is plain
    last_unit = 10_000_000_000
    last_big = 10**12
    for char in text:
        if char in _ZH_DIGITS:
            if digit is not None and digit != 0 and _ZH_DIGITS[char] != 0:
                return None  # "三五" is not a number here
            digit = _ZH_DIGITS[char]
            zero_seen = zero_seen or digit == 0
        elif char in _ZH_UNITS:
            unit = _ZH_UNITS[char]
            if unit >= last_unit:
                return None
            section += (1 if digit is None else digit) * unit
            digit, last_unit, zero_seen = None, unit, False
        else:
            big = _ZH_BIG[char]
            if big >= last_big:
                return None
            section += digit or 0
            if section == 0:
                return None
            total = (total + section) * big if big > 10_000 else total + section * big
            section, digit, last_unit, last_big = 0, None, 10_000_000_000, big
            zero_seen = False
    if digit:
        # A trailing digit after a unit is the next lower unit: 三千八 = 3800.
        if zero_seen:
            section += digit
        elif last_unit < 10_000_000_000 and last_unit >= 100:
            section += digit * (last_unit // 10)
        elif last_big < 10**12 and last_unit == 10_000_000_000:
            section += digit * (last_big // 10)
        else:
            section += digit
    value = total + section
    return value if value > 0 or text in ("零", "\u3007") else None


def find_spelled_numbers(text: str) -> list[SpelledNumber]:
    """Every number written in words in `text` (English, French, Chinese, and a digit
    number before a scale word: "2 thousand", "1,5 million"), in order of appearance.

    A phrase of number words that does not read as one number is skipped; so is a lone
    "a"/"an"/"un"/"une", which is an article far more often than a number.
    """
    found = [
        SpelledNumber(
            match.start(),
            match.end(),
            Decimal(match.group(1).replace(",", ".")) * _SCALES[match.group(2).lower()],
        )
        for match in _DIGITS_THEN_SCALE.finditer(text)
    ]
    taken = {index for number in found for index in range(number.start, number.end)}
    for match in _SPELLED.finditer(text):
        if match.start() in taken:
            continue  # the scale word of "2 thousand"
        words = re.split(r"[ \u00a0-]", match.group().lower())
        while words and words[-1] in _JOINERS | _ARTICLES:
            words.pop()
        if not words or words in (["un"], ["une"]):
            continue
        value = _western_value(words)
        if value is not None:
            end = match.start() + len(" ".join(words))
            found.append(SpelledNumber(match.start(), end, Decimal(value)))
    for match in _ZH_SPELLED.finditer(text):
        if match.start() and text[match.start() - 1].isdigit():
            continue  # the 千 of "5千元" multiplies a number in digits: core.money's to read
        chinese = _chinese_value(match.group())
        if chinese is not None:
            found.append(SpelledNumber(match.start(), match.end(), Decimal(chinese)))
    found.sort(key=lambda number: number.start)
    return found
