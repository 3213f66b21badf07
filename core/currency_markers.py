"""The currency markers customers write next to amounts, and the ISO code each one means.

``core.money`` reads an amount only next to one of these. Symbols and codes stand on
either side of the number; words only after it ("45 euros"; "euros 45" is not how anyone
writes it); some codes only in capitals, because in lower case they are words.
"""

from __future__ import annotations

# Currency markers, keyed in lower case. Symbols and codes stand on either side of the
# number; words only after it ("45 euros"; "euros 45" is not how anyone writes it).
EITHER_SIDE: dict[str, str] = {
    "€": "EUR",
    "$": "USD",
    "£": "GBP",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "฿": "THB",
    "us$": "USD",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "hk$": "HKD",
    "nz$": "NZD",
    "s$": "SGD",
    "sg$": "SGD",
    "r$": "BRL",
    "mx$": "MXN",
    "eur": "EUR",
    "usd": "USD",
    "gbp": "GBP",
    "chf": "CHF",
    "fr.": "CHF",  # Swiss: "Fr. 196.-", "20 fr."
    "sfr.": "CHF",
    "sfr": "CHF",
    "cny": "CNY",
    "rmb": "CNY",
    "jpy": "JPY",
    "人民币": "CNY",
}
UPPERCASE_CODES = (
    # Only in capitals: in lower case several are words ("try 5 times", "rub 2 drops").
    "AUD", "BRL", "CAD", "CZK", "DKK", "HKD", "HUF", "ILS", "INR", "KRW", "MXN",
    "NOK", "NZD", "PLN", "RUB", "SEK", "SGD", "THB", "TRY", "TWD", "ZAR",
)  # fmt: skip
AFTER_ONLY: dict[str, str] = {
    "euro": "EUR",
    "euros": "EUR",
    "dollar": "USD",
    "dollars": "USD",
    "us dollar": "USD",
    "us dollars": "USD",
    "u.s. dollars": "USD",
    "american dollars": "USD",
    "dollars américains": "USD",
    "swiss francs": "CHF",
    "francs suisses": "CHF",
    "dólar": "USD",
    "dólares": "USD",
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
    "pfund": "GBP",
    "franc": "CHF",
    "francs": "CHF",
    "franken": "CHF",
    "yen": "JPY",
    "yuan": "CNY",
    "renminbi": "CNY",
    "欧元": "EUR",
    "美元": "USD",
    "美金": "USD",
    "英镑": "GBP",
    "日元": "JPY",
    "円": "JPY",
    "瑞士法郎": "CHF",
    "法郎": "CHF",
    "港元": "HKD",
    "港币": "HKD",
    "澳元": "AUD",
    "加元": "CAD",
    "韩元": "KRW",
    "台币": "TWD",
    "新台币": "TWD",
    "元": "CNY",
    "块": "CNY",
}
YEN_SIGNS = ("¥", "￥")
"""CNY in a Chinese locale, JPY in any other: both currencies write the same sign."""
