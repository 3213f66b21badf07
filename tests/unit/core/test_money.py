"""Money amounts in customer messages (``core/money.py``): formats, locales, currencies."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import Money, convert, find_amounts, mentions_full_amount

NBSP = "\u00a0"
NNBSP = "\u202f"


def amounts(text: str, locale: str = "en") -> list[tuple[Decimal, str]]:
    return [(money.amount, money.currency) for money in find_amounts(text, locale)]


def d(value: str) -> Decimal:
    return Decimal(value)


# --- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        # the readings that kept refunds under the limit
        ("I want the full €2,349 back", "en", [(d("2349"), "EUR")]),
        ("2.349,00 €", "en", [(d("2349.00"), "EUR")]),
        ("2.349,00 €", "fr", [(d("2349.00"), "EUR")]),
        ("2.349,00 €", "de", [(d("2349.00"), "EUR")]),
        ("2.349,00 €", "zh", [(d("2349.00"), "EUR")]),
        ("2 349 €", "en", [(d("2349"), "EUR")]),
        ("2 349 €", "fr", [(d("2349"), "EUR")]),
        ("EUR 2349", "en", [(d("2349"), "EUR")]),
        ("$1,234.56", "en", [(d("1234.56"), "USD")]),
        ("Order HK-59164 from 2024 cost 45 euros", "en", [(d("45"), "EUR")]),
        # every number format
        ("€2349", "en", [(d("2349"), "EUR")]),
        ("€2,349", "en", [(d("2349"), "EUR")]),
        ("€2,349.50", "en", [(d("2349.50"), "EUR")]),
        ("$1,234,567.89", "en", [(d("1234567.89"), "USD")]),
        ("1.234.567,89 €", "de", [(d("1234567.89"), "EUR")]),
        ("2.349 €", "de", [(d("2349"), "EUR")]),
        ("2 349,50 €", "fr", [(d("2349.50"), "EUR")]),
        (f"2{NBSP}349 €", "fr", [(d("2349"), "EUR")]),
        (f"2{NNBSP}349{NBSP}€", "fr", [(d("2349"), "EUR")]),
        (f"1{NNBSP}234{NNBSP}567,89 €", "fr", [(d("1234567.89"), "EUR")]),
        ("CHF 1'234.50", "de-CH", [(d("1234.50"), "CHF")]),
        ("CHF 1\u2019234.50", "de", [(d("1234.50"), "CHF")]),
        ("1'234 CHF", "en", [(d("1234"), "CHF")]),
        ("49,99 €", "en", [(d("49.99"), "EUR")]),
        ("49,99 €", "fr", [(d("49.99"), "EUR")]),
        ("49.99 €", "fr", [(d("49.99"), "EUR")]),
        ("€49.9", "de", [(d("49.9"), "EUR")]),
        ("€0,349", "en", [(d("0.349"), "EUR")]),
        ("12345,678 €", "en", [(d("12345.678"), "EUR")]),
        ("€2k", "en", [(d("2000"), "EUR")]),
        ("€2K", "en", [(d("2000"), "EUR")]),
        ("€2.5k", "en", [(d("2500"), "EUR")]),
        ("2k €", "en", [(d("2000"), "EUR")]),
        ("a 2kg box for €12", "en", [(d("12"), "EUR")]),
        ("１２００元", "zh", [(d("1200"), "CNY")]),
    ],
)
def test_number_formats(text: str, locale: str, expected: list[tuple[Decimal, str]]) -> None:
    assert amounts(text, locale) == expected


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        # a single separator before three digits: thousands unless the locale's decimal sign
        ("€2,349", "en", d("2349")),
        ("€2,349", "fr", d("2.349")),
        ("€2,349", "fr-FR", d("2.349")),
        ("€2,349", "fr_CA", d("2.349")),
        ("€2,349", "de", d("2.349")),
        ("€2,349", "zh", d("2349")),
        ("€2,349", "xx", d("2349")),
        ("€2,349", "", d("2349")),
        ("2,349 €", "en", d("2349")),
        ("2.349 €", "en", d("2.349")),
        ("2.349 €", "fr", d("2349")),
        ("2.349 €", "DE-de", d("2349")),
        ("2,349 €", "de-CH", d("2349")),  # Swiss German writes a decimal point
        ("2.349 €", "de-CH", d("2.349")),
        # both separators: the last is the decimal sign, whatever the locale
        ("1,234.567 €", "fr", d("1234.567")),
        ("1.234,567 €", "en", d("1234.567")),
        # a repeated separator groups thousands, whatever the locale
        ("€1,234,567", "fr", d("1234567")),
        ("€1.234.567", "en", d("1234567")),
        # one or two digits at the end: the decimal sign, whatever the locale
        ("€2,34", "en", d("2.34")),
        ("€2.3", "de", d("2.3")),
    ],
)
def test_ambiguous_separators_follow_the_locale(text: str, locale: str, expected: Decimal) -> None:
    assert amounts(text, locale) == [(expected, "EUR")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # an invalid run: the longest valid part next to the marker
        ("$20 30 days ago", [(d("20"), "USD")]),
        ("€1,234,56", [(d("1234"), "EUR")]),
        ("in 2024 45 euros", [(d("45"), "EUR")]),
        ("in 2024 450 euros", [(d("450"), "EUR")]),
        ("invoice 0 349 €", [(d("349"), "EUR")]),
        ("$10 20 €", [(d("10"), "USD"), (d("20"), "EUR")]),
        ("€1.234,56,78", [(d("1234.56"), "EUR")]),
    ],
)
def test_an_invalid_grouping_reads_the_valid_part_next_to_the_marker(
    text: str, expected: list[tuple[Decimal, str]]
) -> None:
    assert amounts(text) == expected


# --- currencies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "currency"),
    [
        ("€5", "en", "EUR"),
        ("5€", "en", "EUR"),
        ("$5", "en", "USD"),
        ("5 $", "fr", "USD"),
        ("US$5", "en", "USD"),
        ("US$ 5", "en", "USD"),
        ("£5", "en", "GBP"),
        ("5£", "en", "GBP"),
        ("¥5", "en", "JPY"),
        ("¥5", "ja", "JPY"),
        ("¥5", "zh", "CNY"),
        ("¥5", "zh-CN", "CNY"),
        ("￥5", "zh_TW", "CNY"),
        ("5 ¥", "de", "JPY"),
        ("CHF 5", "de", "CHF"),
        ("5 CHF", "de", "CHF"),
        ("chf5", "de", "CHF"),
        ("EUR 5", "en", "EUR"),
        ("5 eur", "en", "EUR"),
        ("5EUR", "en", "EUR"),
        ("USD 5", "en", "USD"),
        ("5 usd", "en", "USD"),
        ("GBP5", "en", "GBP"),
        ("CNY 5", "en", "CNY"),
        ("5 RMB", "en", "CNY"),
        ("rmb 5", "zh", "CNY"),
        ("JPY 5", "en", "JPY"),
        ("5 jpy", "en", "JPY"),
        ("5 euro", "de", "EUR"),
        ("5 Euro", "de", "EUR"),
        ("5 euros", "fr", "EUR"),
        ("5euros", "fr", "EUR"),
        ("5 dollar", "en", "USD"),
        ("5 dollars", "en", "USD"),
        ("5 pound", "en", "GBP"),
        ("5 pounds", "en", "GBP"),
        ("5 franc", "fr", "CHF"),
        ("5 francs", "fr", "CHF"),
        ("5 Franken", "de", "CHF"),
        ("Fr. 5.\u2013", "fr", "CHF"),  # Swiss, with an en dash
        ("5 fr.", "fr", "CHF"),
        ("SFr 5", "de", "CHF"),
        ("5 yen", "en", "JPY"),
        ("5欧元", "zh", "EUR"),
        ("5 美元", "zh", "USD"),
        ("5英镑", "zh", "GBP"),
        ("5元", "zh", "CNY"),
        ("5块", "zh", "CNY"),
        ("5块钱", "zh", "CNY"),
        ("人民币5", "zh", "CNY"),
        ("人民币 5", "zh", "CNY"),
        ("5日元", "zh", "JPY"),
        ("5港元", "zh", "HKD"),
        ("AUD 5", "en", "AUD"),
    ],
)
def test_currency_markers(text: str, locale: str, currency: str) -> None:
    assert amounts(text, locale) == [(d("5"), currency)]


@pytest.mark.parametrize(
    "text",
    [
        "Order HK-59164 arrived in 2024",
        "I bought 2 kettles",
        "call me on +33 6 12 34 56 78",
        "my order number is 123456789",
        "the A4 paper, item x12, SKU-2349",
        "HK59164 €",  # glued to letters: an id, whatever follows
        "HK-59164 €",
        "I try 5 times",  # "try" is no currency in lower case
        "5 europe trips",
        "euros 5",  # words only after the number
        "5 kg",
        "see www.example.fr. 5 stars",  # the end of a name, not Swiss francs
        "",
    ],
)
def test_bare_numbers_are_never_amounts(text: str) -> None:
    assert find_amounts(text) == []


# --- sentences in four languages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        (
            "Hi, I paid $1,234.56 for the TV and £45 for delivery; please refund both.",
            "en",
            [(d("1234.56"), "USD"), (d("45"), "GBP")],
        ),
        (
            "My order #4471 of 3 chairs cost 1,299 euros, I want 2 of them refunded.",
            "en",
            [(d("1299"), "EUR")],
        ),
        (
            "Bonjour, j'ai payé 2 349,50 € le 12/03/2024 pour la commande 88123.",
            "fr",
            [(d("2349.50"), "EUR")],
        ),
        (
            f"Je veux être remboursé de 1{NNBSP}200{NNBSP}€ et non de 49,99 €.",
            "fr-FR",
            [(d("1200"), "EUR"), (d("49.99"), "EUR")],
        ),
        (
            "Ich habe 2.349,00 € bezahlt und möchte den Betrag von EUR 2.349 zurück.",
            "de",
            [(d("2349.00"), "EUR"), (d("2349"), "EUR")],
        ),
        (
            "Die Lieferung kostete CHF 1'234.50, bitte erstatten Sie 50 Franken.",
            "de-CH",
            [(d("1234.50"), "CHF"), (d("50"), "CHF")],
        ),
        (
            "我在2024年买了2台电视，花了1200元，请退款人民币2349。",
            "zh",
            [(d("1200"), "CNY"), (d("2349"), "CNY")],
        ),
        ("订单号59164，价格¥1,200，运费30块。", "zh-CN", [(d("1200"), "CNY"), (d("30"), "CNY")]),
        (
            "我要退1 200 元，另外还有5千元和2万元。",
            "zh",
            [(d(v), "CNY") for v in ("1200", "5000", "20000")],
        ),
        ("在日本花了3000日元，又花了50美元。", "zh", [(d("3000"), "JPY"), (d("50"), "USD")]),
    ],
)
def test_sentences(text: str, locale: str, expected: list[tuple[Decimal, str]]) -> None:
    assert amounts(text, locale) == expected


def test_ranges_give_both_ends_the_currency() -> None:
    assert amounts("between €10-20") == [(d("10"), "EUR"), (d("20"), "EUR")]
    assert amounts("10-20 €") == [(d("10"), "EUR"), (d("20"), "EUR")]
    assert amounts("10 \u2013 20 USD") == [(d("10"), "USD"), (d("20"), "USD")]
    assert amounts("€10 - €20") == [(d("10"), "EUR"), (d("20"), "EUR")]
    assert amounts("100至200元", "zh") == [(d("100"), "CNY"), (d("200"), "CNY")]
    assert amounts("100~200元", "zh") == [(d("100"), "CNY"), (d("200"), "CNY")]
    # a descending pair is no range: a year, a date, an id before an amount
    assert amounts("2024-45 euros") == [(d("45"), "EUR")]
    assert amounts("on 2024-05-01 45 €") == [(d("45"), "EUR")]


def test_negative_amounts_read_as_their_size() -> None:
    assert amounts("-€10") == [(d("10"), "EUR")]
    assert amounts("€-10") == [(d("10"), "EUR")]
    assert amounts("EUR -10") == [(d("10"), "EUR")]
    assert amounts("balance: \u221225,50 €", "fr") == [(d("25.50"), "EUR")]


def test_a_marker_between_two_numbers_belongs_to_the_first() -> None:
    assert amounts("5 € 10 items") == [(d("5"), "EUR")]
    assert amounts("10 EUR 20 USD") == [(d("10"), "EUR"), (d("20"), "USD")]


def test_the_matched_text_is_kept_for_logs() -> None:
    assert find_amounts("I want the full €2,349 back") == [Money(d("2349"), "EUR", "€2,349")]
    assert [m.text for m in find_amounts("人民币2349元", "zh")] == ["人民币2349元"]
    assert [m.text for m in find_amounts("paid 2 349,50 € today", "fr")] == ["2 349,50 €"]


# --- properties ----------------------------------------------------------------------------

CURRENCY_MARKERS: list[tuple[str, str, tuple[str, ...]]] = [
    # marker, currency ("¥" depends on the locale), the sides it may stand on
    ("€", "EUR", ("before", "after")),
    ("$", "USD", ("before", "after")),
    ("US$", "USD", ("before", "after")),
    ("£", "GBP", ("before", "after")),
    ("¥", "¥", ("before", "after")),
    ("EUR", "EUR", ("before", "after")),
    ("eur", "EUR", ("before", "after")),
    ("USD", "USD", ("before", "after")),
    ("GBP", "GBP", ("before", "after")),
    ("CHF", "CHF", ("before", "after")),
    ("CNY", "CNY", ("before", "after")),
    ("RMB", "CNY", ("before", "after")),
    ("JPY", "JPY", ("before", "after")),
    ("人民币", "CNY", ("before", "after")),
    ("euros", "EUR", ("after",)),
    ("Euro", "EUR", ("after",)),
    ("dollars", "USD", ("after",)),
    ("pounds", "GBP", ("after",)),
    ("francs", "CHF", ("after",)),
    ("欧元", "EUR", ("after",)),
    ("美元", "USD", ("after",)),
    ("英镑", "GBP", ("after",)),
    ("元", "CNY", ("after",)),
    ("块", "CNY", ("after",)),
    ("日元", "JPY", ("after",)),
]

# style: (thousands separators, decimal sign, locales that read it right)
STYLES: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "en": ((",",), ".", ("en", "en-US", "en_GB", "zh", "zh-CN", "ja", "ko", "he", "xx")),
    "de": ((".",), ",", ("de", "de-DE", "de_AT", "es", "it", "nl", "pt-BR", "tr")),
    "fr": ((" ", NBSP, NNBSP), ",", ("fr", "fr-FR", "fr_CA", "ru", "pl", "sv", "en", "zh")),
    "swiss": (("'", "\u2019"), ".", ("de-CH", "fr_CH", "en", "de", "fr")),
    "plain-point": (("",), ".", ("en", "zh", "ja", "de-CH")),
    "plain-comma": (("",), ",", ("fr", "de", "es", "it", "pl")),
}

WORD_ALPHABET = "abcdefghijklmnopqrstuvwxyzéèàçüößñ的了我你好请谢,.!?;:()-'"


def written(amount: Decimal, places: int, thousands: str, decimal_sign: str) -> str:
    units, _, cents = f"{amount:.{places}f}".partition(".")
    groups = []
    while len(units) > 3:
        groups.insert(0, units[-3:])
        units = units[:-3]
    groups.insert(0, units)
    text = thousands.join(groups)
    return text + decimal_sign + cents if places else text


def not_a_marker(word: str) -> bool:
    """Neither a currency marker nor a number word ("seventy €1" is read as €70)."""
    return not any(find_amounts(probe) for probe in (f"{word} 1", f"1 {word}", f"{word} euros"))


words = st.lists(
    st.text(alphabet=WORD_ALPHABET, min_size=1, max_size=8).filter(not_a_marker), max_size=6
)


@st.composite
def written_amounts(draw: st.DrawFn) -> tuple[str, str, Decimal, str]:
    """A text with one amount in it, a locale that reads it, the amount and currency."""
    places = draw(st.sampled_from([0, 2]))
    if places:
        amount = Decimal(draw(st.integers(1, 999_999_999))).scaleb(-2)
    else:
        amount = Decimal(draw(st.integers(1, 9_999_999)))
    style = draw(st.sampled_from(sorted(STYLES)))
    separators, decimal_sign, locales = STYLES[style]
    number = written(amount, places, draw(st.sampled_from(separators)), decimal_sign)
    marker, currency, sides = draw(st.sampled_from(CURRENCY_MARKERS))
    locale = draw(st.sampled_from(locales))
    if currency == "¥":
        currency = "CNY" if locale.lower().startswith("zh") else "JPY"
    gap = draw(st.sampled_from(["", " ", NBSP]))
    side = draw(st.sampled_from(sides))
    phrase = marker + gap + number if side == "before" else number + gap + marker
    text = " ".join([*draw(words), phrase, *draw(words)])
    return text, locale, amount, currency


@given(written_amounts())
def test_any_written_amount_reads_back(case: tuple[str, str, Decimal, str]) -> None:
    text, locale, amount, currency = case
    assert amounts(text, locale) == [(amount, currency)], text


@given(st.text(), st.text(max_size=12))
def test_arbitrary_text_never_raises(text: str, locale: str) -> None:
    for money in find_amounts(text, locale):
        assert money.amount >= 0
        assert money.text in text
    mentions_full_amount(text)


@given(
    st.text(
        alphabet="0123456789.,'’ \u00a0\u202f-\u2013~€$¥£元块kK千万EURusdchf人民币HK#", max_size=80
    )
)
def test_digit_and_marker_soup_never_raises(text: str) -> None:
    for locale in ("en", "fr", "zh"):
        for money in find_amounts(text, locale):
            assert money.amount >= 0
            assert money.currency.isupper()


@given(
    st.decimals(min_value=0, max_value=10**9, places=2),
    st.sampled_from(["EUR", "USD", "CNY"]),
    st.floats(min_value=0.001, max_value=1000, allow_nan=False, allow_infinity=False),
)
def test_convert(amount: Decimal, currency: str, rate: float) -> None:
    money = Money(amount, currency, "")
    assert convert(money, currency, {}) == amount
    assert convert(money, currency.lower(), {currency: 2.0}) == amount
    assert convert(money, "GBP", {currency: rate}) == amount * Decimal(repr(rate))
    assert convert(money, "GBP", {}) is None


def test_convert_examples() -> None:
    refund = Money(d("2349"), "USD", "$2,349")
    assert convert(refund, "EUR", {"USD": 0.9}) == d("2114.1")
    assert convert(refund, "EUR", {"USD": 1.1}) == d("2583.9")  # no binary error
    assert convert(refund, "EUR", {"GBP": 1.2}) is None
    assert convert(refund, "EUR", {"USD": float("nan")}) is None
    assert convert(refund, "EUR", {"USD": 0.0}) is None


LONG_INPUTS = {
    "spaced digits": "€" + "1 " * 50_000 + "€",
    "comma digits": "€" + "1," * 50_000 + "1 €",
    "mixed separators": "".join(
        random.Random(7).choice("0123456789.,' \u00a0") for _ in range(100_000)
    ),
    "one huge number": "€" + "9" * 100_000 + " €",
    "many ranges": "€1-2-" * 20_000,
    "many markers": "€ $ EUR 元 " * 10_000,
    "many words": "the full " * 12_000 + "the " + " " * 10_000,
}


@pytest.mark.parametrize("name", sorted(LONG_INPUTS))
def test_long_inputs_take_linear_time(name: str) -> None:
    text = LONG_INPUTS[name]
    began = time.monotonic()
    find_amounts(text)
    find_amounts(text, "fr")
    mentions_full_amount(text)
    assert time.monotonic() - began < 2.0


# --- a request for everything back -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I want the full amount back",
        "Please give me a full refund.",
        "I demand a FULL REFUND",
        "I want all my money back",
        "give me all of my money back now",
        "refund everything I paid",
        "I expect to be refunded in full",
        "I want every penny back",
        "the whole amount, please",
        "Je veux un remboursement intégral",
        "Merci de me rembourser la totalité de ma commande",
        "remboursez-moi intégralement",
        "Remboursez-moi tout, livraison comprise.",
        "je veux récupérer tout mon argent",
        "Ich möchte den vollen Betrag zurück",
        "Bitte erstatten Sie den gesamten Betrag",
        "Ich verlange eine vollständige Rückerstattung",
        "ich will mein ganzes Geld zurück",
        "Quiero un reembolso completo",
        "我要全额退款",
        "请全部退款",
        "我要求退全款",
        "把钱全部退给我",
    ],
)
def test_asks_for_the_full_amount(text: str) -> None:
    assert mentions_full_amount(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is the full address of your store?",
        "my full name is Jane Doe",
        "Is the refund full or partial?",  # a question about the policy, not a request
        "I want a partial refund of €20",
        "the amount is wrong",
        "J'ai besoin de l'adresse complète",
        "Je veux un remboursement partiel",
        "Wie lautet die volle Adresse?",
        "Ich möchte eine Teilerstattung",
        "我要部分退款",
        "我已经全额支付了",
        "全部商品都到了",
        "",
    ],
)
def test_does_not_ask_for_the_full_amount(text: str) -> None:
    assert not mentions_full_amount(text)
