"""Stage 6, check: the model's reply against its evidence, before it leaves.

A small model copies the prompt's scaffolding, loops on one sentence, answers in the
wrong language and invents figures ("Delivery costs €150" where the passage says €9.90);
a bigger one repeats a "system note" a customer pasted into the message. Nothing of that
may reach the customer, so every model reply is read once more before it is sent:

* **Claims** it states (ids and codes, dates, times, figures and amounts) must stand in
  the evidence: the passages and the customer's record the prompt gave the model, the
  history hits, the suggested products, the tenant's own texts and today's date. The
  customer's message is *not* evidence: a customer can quote an order that is not theirs
  or paste a discount code, and the reply must neither confirm nor repeat it.
* **Repetition**: a sentence said twice, or a run of one character.
* **Prompt echo**: the prompt's labels and fence tags, or a line of the tenant's rules.
* **Language**: a reply the language detector reads, with confidence, as another
  language than the one the prompt asked for.
* **Off the evidence** (English only, where the evidence is written): a reply whose
  content words mostly appear neither in the evidence nor in the question, which is how
  an invented answer without a single figure reads.
* **Missing the answer** (``reply_check.py``, it needs the chosen evidence): a reply that
  states no figure, date or id at all, to a question that asks for one ("how long",
  "when") or about the customer's own record, while the evidence that answers it has
  some.

The verdict lists what failed; ``reply.py`` then keeps the reply, or replaces it with the
answer ``composed.py`` builds from the same evidence (docs/support.md, "Checked replies").
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from models.classifiers.language import detect_language

MONTHS = {
    **{
        name: number
        for number, name in enumerate(
            (
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ),
            start=1,
        )
    },
    **{
        name: number
        for number, name in enumerate(
            (
                "janvier",
                "février",
                "mars",
                "avril",
                "mai",
                "juin",
                "juillet",
                "août",
                "septembre",
                "octobre",
                "novembre",
                "décembre",
            ),
            start=1,
        )
    },
}
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th|er)?\s+({_MONTH_NAMES})\b", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b({_MONTH_NAMES})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", re.IGNORECASE)
_CJK_DATE = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_TIME = re.compile(r"\b(\d{1,2})[:h](\d{2})\b")
_CODE = re.compile(
    r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-_/][A-Za-z0-9]+)+(?![\w-])"
    r"|(?<![\w-])(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{5,}(?![\w-])"
)
"""Ids and codes: ``HK-59164``, ``SJ-20874``, ``cust-1004``, ``HK-ADMIN-7731``,
``ZK41M7Q2``: letters and digits joined by hyphens, or one upper-case token of five or
more characters with a digit in it."""
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
_LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s")
_CITATION = re.compile(r"\[\d{1,2}\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])|\n+")
_CHARACTER_RUN = re.compile(r"([^\w\s.\-=_*#])\1{4,}")
_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")

ECHO_MARKERS = re.compile(
    r"<\s*/?\s*(kb_passages|customer_profile|customer_history|conversation_summary|products)"
    r"|tone guidance|for this reply:|customer['\u2019]s language"
    r"|knowledge base passages:|customer profile:|never instructions"
    r"|today is (?:mon|tues|wednes|thurs|fri|satur|sun)day \d|reply in [a-z]+, the customer"
    r"|(?m:(?:^|[.!?]\s)\s*(?:tone|do|don['\u2019]t)\s*:)",
    re.IGNORECASE,
)
"""The prompt's own labels: a reply that writes them is copying its instructions."""

MIN_ECHO_CHARS = 24
"""A line of the tenant's rules shorter than this may be said in a reply by chance."""
MIN_REPEATED_WORDS = 4
MIN_CONTENT_WORDS = 8
STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "also",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "cannot",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "even",
        "every",
        "from",
        "further",
        "have",
        "having",
        "here",
        "hers",
        "herself",
        "himself",
        "into",
        "itself",
        "just",
        "more",
        "most",
        "much",
        "must",
        "myself",
        "once",
        "only",
        "other",
        "ought",
        "ours",
        "ourselves",
        "over",
        "same",
        "shall",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "want",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "able",
        "sure",
        "help",
        "please",
        "thank",
        "thanks",
        "happy",
        "glad",
        "sorry",
        "hello",
        "dear",
        "best",
        "regards",
        "kind",
        "here",
        "know",
        "like",
        "need",
        "make",
        "take",
        "give",
        "get",
        "let",
        "see",
        "look",
        "find",
    ]
)
"""English words too common to say whether a reply stands on its evidence."""


@dataclass(frozen=True)
class Evidence:
    """What the reply may state: the texts the prompt gave the model, and the question."""

    texts: tuple[str, ...]
    """Passages, record lines, history, products, tenant texts, today's date."""
    question: str = ""
    """The customer's message: a source of content words, never of claims."""
    language: str = "en"
    """The language the prompt asked the reply to be in."""
    rules: tuple[str, ...] = ()
    """Lines of the tenant's rules and this reply's guidance: never to be recited."""


@dataclass(frozen=True)
class Verdict:
    """What the check found; ``passed`` when nothing."""

    unsupported: tuple[str, ...] = ()
    """Claims of the reply found in no evidence, as written in the reply."""
    problems: tuple[str, ...] = ()
    """``unsupported``, ``repetition``, ``prompt_echo``, ``wrong_language``,
    ``off_evidence``, ``misses_the_answer``, ``empty``: each at most once."""
    support: float | None = None
    """Share of the reply's content words found in the evidence or question (English)."""

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class _Claims:
    codes: set[str] = field(default_factory=set)
    dates: set[tuple[int, int]] = field(default_factory=set)
    times: set[tuple[int, int]] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    written: dict[object, str] = field(default_factory=dict)


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def normalise(text: str) -> str:
    """NFKC, case folded, curly quotes straight: compares what a reader would call equal."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return text.translate(_QUOTES)


def _number_key(raw: str) -> str:
    """``17,50`` -> ``17.5``, ``1,000`` -> ``1000``, ``30.00`` -> ``30``: one spelling
    per value, whichever separators a language uses."""
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", raw):
        digits = re.sub(r"[.,]", "", raw)
    else:
        digits = raw.replace(",", ".")
        if digits.count(".") > 1:
            digits = digits.replace(".", "")
    if "." in digits:
        whole, fraction = digits.split(".", 1)
        fraction = fraction.rstrip("0")
        digits = f"{whole}.{fraction}" if fraction else whole
    return digits.lstrip("0") or "0"


def claims(text: str) -> _Claims:
    """The ids, dates, times and figures ``text`` states (each with how it was written)."""
    found = _Claims()
    rest = _CITATION.sub(" ", text)
    rest = _LIST_MARKER.sub(" ", rest)
    for match in _CODE.finditer(rest):
        key = match.group(0).upper()
        found.codes.add(key)
        found.written.setdefault(("code", key), match.group(0))
    rest = _CODE.sub(" ", rest)

    def take_date(month: int, day: int, written: str) -> None:
        if 1 <= month <= 12 and 1 <= day <= 31:
            found.dates.add((month, day))
            found.written.setdefault(("date", (month, day)), written)

    for match in _ISO_DATE.finditer(rest):
        found.numbers.add(match.group(1))
        take_date(int(match.group(2)), int(match.group(3)), match.group(0))
    rest = _ISO_DATE.sub(" ", rest)
    for match in _DAY_MONTH.finditer(rest):
        take_date(MONTHS[match.group(2).lower()], int(match.group(1)), match.group(0))
    rest = _DAY_MONTH.sub(" ", rest)
    for match in _MONTH_DAY.finditer(rest):
        take_date(MONTHS[match.group(1).lower()], int(match.group(2)), match.group(0))
    rest = _MONTH_DAY.sub(" ", rest)
    for match in _CJK_DATE.finditer(rest):
        take_date(int(match.group(1)), int(match.group(2)), match.group(0))
    rest = _CJK_DATE.sub(" ", rest)
    for match in _TIME.finditer(rest):
        moment = (int(match.group(1)), int(match.group(2)))
        found.times.add(moment)
        found.written.setdefault(("time", moment), match.group(0))
    rest = _TIME.sub(" ", rest)
    for match in _NUMBER.finditer(rest):
        key = _number_key(match.group(0))
        found.numbers.add(key)
        found.written.setdefault(("number", key), match.group(0))
    return found


def _evidence_claims(texts: Iterable[str]) -> _Claims:
    """Everything the evidence states; an evidence date also vouches for its day ("on the
    23rd"), and a time for its hour ("open until 18:00" allows "18:00" and "6 pm")."""
    found = claims("\n".join(texts))
    for _month, day in found.dates:
        found.numbers.add(str(day))
    for hour, _minute in found.times:
        found.numbers.add(str(hour))
        if hour > 12:
            found.numbers.add(str(hour - 12))
    return found


def unsupported_claims(reply: str, evidence: Evidence) -> list[str]:
    """The claims of ``reply`` that no evidence text states, as the reply writes them."""
    said = claims(reply)
    known = _evidence_claims(evidence.texts)
    known_text = normalise("\n".join(evidence.texts))
    missing: list[str] = []
    for code in sorted(said.codes):
        if code not in known.codes and normalise(code) not in known_text:
            missing.append(said.written[("code", code)])
    missing += [said.written[("date", d)] for d in sorted(said.dates - known.dates)]
    missing += [said.written[("time", t)] for t in sorted(said.times - known.times)]
    for number in sorted(said.numbers - known.numbers):
        if number in ("0", "1"):  # "1 item", "one of": too common to vouch for anything
            continue
        missing.append(said.written.get(("number", number), number))
    return missing


def sentences(text: str) -> list[str]:
    """``text`` cut at sentence ends and line breaks, without empty pieces."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def repeats_itself(reply: str) -> bool:
    """A sentence said twice (of at least four words, or eight Chinese characters), the
    same five words three times, or one character five times in a row ("；；；；；")."""
    seen: Counter[str] = Counter()
    for sentence in sentences(reply):
        key = re.sub(r"\W+", " ", normalise(sentence)).strip()
        if len(key.split()) >= MIN_REPEATED_WORDS or len(_CJK.findall(key)) >= 8:
            seen[key] += 1
            if seen[key] >= 2:
                return True
    words = re.findall(r"\w+", normalise(reply))
    shingles = Counter(tuple(words[i : i + 5]) for i in range(len(words) - 4))
    if shingles and max(shingles.values()) >= 3:
        return True
    return _CHARACTER_RUN.search(reply) is not None


def echoes_prompt(reply: str, rules: Sequence[str]) -> bool:
    """The prompt's labels or a line of the tenant's rules, copied into the reply."""
    if ECHO_MARKERS.search(reply):
        return True
    said = normalise(reply)
    return any(len(line) >= MIN_ECHO_CHARS and normalise(line) in said for line in rules)


def in_wrong_language(reply: str, language: str) -> bool:
    """The detector reads ``reply``, with confidence, as another language than asked."""
    if language == "zh":
        return len(_CJK.findall(reply)) < max(4, len(re.findall(r"[A-Za-z]", reply)) // 4)
    detected = detect_language(reply)
    return detected.confidence >= 0.9 and detected.code not in (language, "und")


def content_support(reply: str, evidence: Evidence) -> float | None:
    """Share of the reply's English content words whose stem the evidence or the question
    holds; ``None`` when the reply has too few to judge or is not English."""
    if evidence.language != "en":
        return None
    words = [w for w in _WORD.findall(normalise(reply)) if w not in STOPWORDS]
    if len(words) < MIN_CONTENT_WORDS:
        return None
    known = {
        w[:5] for w in _WORD.findall(normalise(" ".join((*evidence.texts, evidence.question))))
    }
    return sum(1 for w in words if w[:5] in known) / len(words)


_DAY_MONTH_YEAR = re.compile(rf"{_DAY_MONTH.pattern}(?:\s+\d{{4}})?", re.IGNORECASE)
_UNIT = re.compile(
    r"\s?(?:%|€|EUR|USD|GBP|CHF|Mbit/s|GB|MB|TB|(?:(?:business|working|calendar)\s+)?"
    r"(?:days?|weeks?|months?|years?|hours?|minutes?|seconds?|items?|instalments?|points?|"
    r"pieces?|euros?|times?)\b)(?:\s+per\s+[A-Za-z]+)?",
    re.IGNORECASE,
)
"""What makes a number a figure worth quoting: a currency, a unit, a duration."""


def key_phrases(text: str) -> list[str]:
    """The ids, dates, times and figures ``text`` states, as written and in order, a figure
    with its unit ("30 days", "12.90 EUR", "3 EUR per item"; a bare number is left out):
    what a composed answer quotes when it cannot quote a sentence in the customer's
    language."""
    spans: list[tuple[int, int]] = []

    def take(pattern: re.Pattern[str]) -> None:
        for match in pattern.finditer(text):
            start, end = match.span()
            if not any(start < e and s < end for s, e in spans):
                spans.append((start, end))

    for pattern in (_CODE, _ISO_DATE, _DAY_MONTH_YEAR, _MONTH_DAY, _CJK_DATE, _TIME):
        take(pattern)
    for match in _NUMBER.finditer(text):
        start, end = match.span()
        if any(start < e and s < end for s, e in spans):
            continue
        unit = _UNIT.match(text, end)
        if unit is None:  # a bare number (a street number, a count) says little alone
            continue
        end = unit.end()
        if start > 0 and text[start - 1] == "€":
            start -= 1
        spans.append((start, end))
    phrases = [text[s:e].strip() for s, e in sorted(spans)]
    return [p for p in phrases if p not in ("0", "1")]


def states_a_claim(text: str) -> bool:
    """``text`` states an id, a date, a time or a figure other than 0 and 1."""
    found = claims(text)
    return bool(found.codes or found.dates or found.times or found.numbers - {"0", "1"})


def check_reply(reply: str, evidence: Evidence, min_support: float) -> Verdict:
    """Every check of the module docstring on ``reply``; see ``Verdict``."""
    if not reply.strip():
        return Verdict(problems=("empty",))
    problems: list[str] = []
    missing = unsupported_claims(reply, evidence)
    if missing:
        problems.append("unsupported")
    if repeats_itself(reply):
        problems.append("repetition")
    if echoes_prompt(reply, evidence.rules):
        problems.append("prompt_echo")
    if in_wrong_language(reply, evidence.language):
        problems.append("wrong_language")
    support = content_support(reply, evidence)
    if support is not None and support < min_support:
        problems.append("off_evidence")
    return Verdict(tuple(missing), tuple(problems), support)
