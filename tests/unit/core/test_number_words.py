"""Numbers written in words, and amounts spelled out with a currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import find_amounts
from core.number_words import find_spelled_numbers

_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
    *("seventeen", "eighteen", "nineteen"),
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ZH = "零一二三四五六七八九"


def _english(number: int) -> str:
    """The way an English speaker says `number` (below a million), written here
    independently of the parser under test."""
    parts = []
    if number >= 1000:
        parts.append(f"{_english(number // 1000)} thousand")
        number %= 1000
        if 0 < number < 100:
            parts.append("and")
    if number >= 100:
        parts.append(f"{_ONES[number // 100]} hundred")
        number %= 100
        if number:
            parts.append("and")
    if number >= 20:
        parts.append(_TENS[number // 10] + (f"-{_ONES[number % 10]}" if number % 10 else ""))
    elif number or not parts:
        parts.append(_ONES[number])
    return " ".join(parts)


def _chinese(number: int) -> str:
    """Chinese numerals for `number` (1..99,999,999) in the full written form."""
    if number >= 10_000:
        high, low = divmod(number, 10_000)
        rest = _chinese_below_10k(low, pad=True) if low else ""
        return f"{_chinese_below_10k(high, pad=False)}万{rest}"
    return _chinese_below_10k(number, pad=False)


def _chinese_below_10k(number: int, *, pad: bool) -> str:
    text = ""
    zero = False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = number // unit % 10
        if digit == 0:
            zero = bool(text) or pad
            continue
        if zero:
            text += "零"
            zero = False
        text += _ZH[digit] + name
    return text


def _values(text: str) -> list[Decimal]:
    return [number.value for number in find_spelled_numbers(text)]


@given(st.integers(min_value=1, max_value=999_999))
def test_any_english_number_reads_back(number: int) -> None:
    assert _values(_english(number)) == [Decimal(number)]


@given(st.integers(min_value=1, max_value=99_999_999))
def test_any_chinese_number_reads_back(number: int) -> None:
    assert _values(_chinese(number)) == [Decimal(number)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vingt et un", 21),
        ("soixante et onze", 71),
        ("quatre-vingts", 80),
        ("quatre-vingt-dix-neuf", 99),
        ("septante-cinq", 75),
        ("nonante", 90),
        ("cent vingt", 120),
        ("deux cents", 200),
        ("mille deux cent cinquante", 1250),
        ("deux mille trois cents", 2300),
        ("trois millions", 3_000_000),
    ],
)
def test_french_numbers(text: str, expected: int) -> None:
    assert _values(text) == [Decimal(expected)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("三千八", 3800),  # spoken: the trailing digit is the next lower unit
        ("一万二", 12000),
        ("两百五", 250),
        ("一千零五", 1005),
        ("十五", 15),
        ("壹仟贰佰", 1200),
        ("一亿二千万", 120_000_000),
    ],
)
def test_chinese_spoken_and_financial_forms(text: str, expected: int) -> None:
    assert _values(text) == [Decimal(expected)]


@pytest.mark.parametrize(
    "text",
    [
        "a",  # an article, not one
        "un",
        "une",
        "fifty cents",  # cents are money here, not the French hundred
        "twenty one twenty",
        "三五",
        "万",
        "tenant",  # "ten" inside a word
    ],
)
def test_what_is_not_one_number(text: str) -> None:
    assert _values(text) == []


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("it came to one thousand one hundred dollars all in", "en", [("1100", "USD")]),
        ("a refund of two hundred and fifty pounds", "en", [("250", "GBP")]),
        ("I want my $2 thousand back", "en", [("2000", "USD")]),
        ("2.5 thousand euros", "en", [("2500", "EUR")]),
        ("remboursez-moi deux mille trois cents euros", "fr", [("2300", "EUR")]),
        ("mille deux cents francs", "fr", [("1200", "CHF")]),
        ("剩下的三千八百块退给我吧", "zh", [("3800", "CNY")]),
        ("退我一万二千元", "zh", [("12000", "CNY")]),
        ("five dollars and 3 euros", "en", [("5", "USD"), ("3", "EUR")]),
    ],
)
def test_spelled_amounts(text: str, locale: str, expected: list[tuple[str, str]]) -> None:
    amounts = find_amounts(text, locale)
    assert [(money.amount, money.currency) for money in amounts] == [
        (Decimal(amount), currency) for amount, currency in expected
    ]


@pytest.mark.parametrize(
    "text",
    [
        "the one I bought twenty one days ago",  # numbers in words, no currency
        "一万二的定金什么时候退",  # no marker: never guessed
        "two thousand people use it",
    ],
)
def test_spelled_numbers_without_a_currency_are_no_amounts(text: str) -> None:
    assert find_amounts(text, "zh" if text[0] > "~" else "en") == []


@given(st.integers(min_value=1, max_value=999_999))
def test_any_spelled_dollar_amount_reads_back(number: int) -> None:
    amounts = find_amounts(f"please refund {_english(number)} dollars", "en")
    assert [(money.amount, money.currency) for money in amounts] == [(Decimal(number), "USD")]
