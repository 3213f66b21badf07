"""The answer composed from the evidence, sent when the model's reply fails its check.

It says only what the evidence says: the customer's record lines that the message asks
about, and the passage sentences that bear most on the question, with the citation of
their article, framed by the tenant's own words in the customer's language (the
``[voice.composed]`` texts of the tenant file, ``server/voice.py`` has the defaults).
When the customer's language is not the one the data is written in, only the key phrases
of a line or a sentence are quoted (ids, dates, figures with their unit): no translation
model is at hand, a whole English sentence would make a French answer an English one, and
a quoted fact is better than an invented one.

Sentences are ranked (``rank_sentences``) by what they share with the question
(content-word stems, the rarer among the candidates the more they count, the article's
title at half weight), by meaning when the embedder has read them (it reads across
languages, which stems do not), and by the rank of their passage; a sentence with a
figure counts for more when the question asks for one ("how long", "how much", "when").
The prompt quotes the best of them too (``focused_passages``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from retrieval.knowledge import SearchHit
from server.pipeline.grounding import MONTHS, key_phrases
from server.pipeline.injected import has_instruction
from server.voice import BrandVoice, localized

MAX_SENTENCES = 3
MIN_SENTENCE_CHARS = 20
MAX_SENTENCE_CHARS = 400
MAX_CANDIDATES = 32
"""Sentences read per reply: the first ones of the passages, in rank order."""
RANK_WEIGHT = 0.15
LEXICAL_WEIGHT = 0.25
FIGURE_WEIGHT = 0.1
MIN_MEANING = 0.25
"""Below this similarity to the question a sentence that shares no word with it (nor its
title) is not ranked at all."""

QUANTITY_QUESTION = re.compile(
    r"\b(how (long|much|many|often|soon|late|early)|when|what time|until|cost|price|fee|"
    r"combien|quand|jusqu|wie (lange|viel|oft)|wann|cu[aá]nto)\b|多久|多少|几|什么时候|何时",
    re.IGNORECASE,
)
"""A question that asks for a figure: a sentence with one counts for more."""
_STEM = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[^\s\d][.!?])\s+(?=[A-Z0-9*\"(])")
"""A sentence ends at ``.!?`` after anything but a digit (``1. Fill`` is a list item)."""
_MARKUP = re.compile(r"\*\*|__|`")
_COMMON = frozenset(
    [
        "the",
        "and",
        "for",
        "you",
        "your",
        "are",
        "can",
        "our",
        "with",
        "this",
        "that",
        "from",
        "have",
        "has",
        "not",
        "any",
        "all",
        "will",
        "how",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "does",
        "did",
        "was",
        "were",
        "there",
        "their",
        "its",
        "into",
        "about",
        "may",
        "might",
        "should",
        "would",
        "could",
        "more",
        "most",
        "than",
        "then",
        "them",
        "they",
        "use",
        "using",
        "used",
        "one",
        "two",
        "also",
        "each",
        "per",
        "get",
        "got",
        "been",
        "being",
        "only",
        "just",
        "out",
        "off",
        "own",
        "same",
        "such",
        "too",
        "very",
    ]
)


@dataclass(frozen=True)
class Candidate:
    """A passage sentence that could be quoted, and the passage's number in the prompt."""

    number: int
    title: str
    text: str


@dataclass(frozen=True)
class SentenceFocus:
    """The passages' sentences read against the question: each candidate, its similarity
    to the question when the embedder read it, and the ones that bear on it, best first."""

    found: tuple[Candidate, ...]
    meaning: tuple[float, ...] | None
    ranked: tuple[int, ...]


@dataclass(frozen=True)
class ComposedAnswer:
    text: str
    cited: tuple[int, ...]
    """Citation numbers the answer quotes."""
    facts: tuple[str, ...] = ()
    """The record lines it quotes."""
    sentences: tuple[str, ...] = ()
    """The passage sentences it quotes."""

    @property
    def quoted(self) -> tuple[str, ...]:
        """Everything it quotes: the answer's evidence."""
        return (*self.facts, *self.sentences)


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _STEM.findall(text.casefold()) if w not in _COMMON}


def _table_rows(lines: list[str]) -> list[str]:
    """A markdown table as sentences: ``hard (water): kettles every 2 weeks; coffee
    machines every 3 weeks``, each row read with the header's names."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]
    if len(rows) < 2:
        return []
    header, *body = rows
    out = []
    for row in body:
        cells = [
            f"{name} {value}".strip() for name, value in zip(header[1:], row[1:], strict=False)
        ]
        out.append(f"{row[0]} ({header[0]}): " + "; ".join(cells))
    return out


def passage_sentences(text: str) -> list[str]:
    """A passage's text as sentences: headings left out, list items and table rows kept
    whole, markdown emphasis removed."""
    out: list[str] = []
    table: list[str] = []
    paragraph: list[str] = []

    def flush_paragraph() -> None:
        if paragraph:
            out.extend(_SENTENCE_END.split(" ".join(paragraph)))
            paragraph.clear()

    for raw in text.splitlines():
        line = _MARKUP.sub("", raw).strip()
        if line.startswith("|"):
            flush_paragraph()
            table.append(line)
            continue
        if table:
            out.extend(_table_rows(table))
            table = []
        if not line or line.startswith("#") or line == "---":
            flush_paragraph()
            continue
        if re.match(r"^(\d{1,2}[.)]|[-*•])\s", line):
            flush_paragraph()
        paragraph.append(line)
    if table:
        out.extend(_table_rows(table))
    flush_paragraph()
    return [
        s.strip()
        for s in out
        if MIN_SENTENCE_CHARS <= len(s.strip()) <= MAX_SENTENCE_CHARS
        or (len(s.strip()) >= 6 and re.search(r"[\u3400-\u9fff]", s))
    ]


def candidates(passages: Sequence[SearchHit]) -> list[Candidate]:
    """The sentences that may be quoted, best passage first, at most ``MAX_CANDIDATES``."""
    found: list[Candidate] = []
    for number, hit in enumerate(passages, start=1):
        for sentence in passage_sentences(hit.text):
            if not has_instruction(sentence):  # planted in the KB: never quoted
                found.append(Candidate(number, hit.title, sentence))
    return found[:MAX_CANDIDATES]


def rank_sentences(
    question: str, found: Sequence[Candidate], meaning: Sequence[float] | None = None
) -> list[int]:
    """Indices of the candidates that bear on ``question``, best first (module docstring);
    ``meaning`` is each candidate's similarity to the question, when known.

    A sentence is read with its article's title (an FAQ answer "Yes, for 3 EUR per item."
    shares no word with "Do you offer gift wrapping?", its title does, at half weight).
    """
    asked = _stems(question)
    stems = [_stems(c.text) for c in found]
    titles = [_stems(c.title) for c in found]
    frequency = {s: sum(1 for group in stems if s in group) or 1 for s in asked}
    figure_bonus = FIGURE_WEIGHT * (3 if QUANTITY_QUESTION.search(question) else 1)
    scores = []
    for index, candidate in enumerate(found):
        shared = asked & stems[index]
        from_title = (asked & titles[index]) - shared
        lexical = sum(math.log(1 + len(found) / frequency[s]) for s in shared)
        lexical += 0.5 * sum(math.log(1 + len(found) / frequency[s]) for s in from_title)
        lexical /= 1 + math.log(1 + len(found)) * max(1, len(asked)) ** 0.5
        score = LEXICAL_WEIGHT * lexical + RANK_WEIGHT / candidate.number
        if re.search(r"\d", candidate.text):
            score += figure_bonus
        if meaning is not None:
            if meaning[index] < MIN_MEANING and not (shared or from_title):
                continue
            score += meaning[index]
        elif not (shared or from_title):
            continue
        scores.append((score, index))
    return [index for _, index in sorted(scores, reverse=True)]


def choose_sentences(
    found: Sequence[Candidate], ranked: Sequence[int], limit: int = MAX_SENTENCES
) -> list[Candidate]:
    """The ``limit`` best-ranked candidates of one article, in passage order: the best
    sentence's article, so that the answer cites one source."""
    if not ranked:
        return []
    top_number = found[ranked[0]].number
    chosen = [i for i in ranked if found[i].number == top_number][:limit]
    return [found[i] for i in sorted(chosen)]


def focused_passages(
    passages: Sequence[SearchHit], found: Sequence[Candidate], ranked: Sequence[int], keep: int
) -> list[SearchHit]:
    """The passages cut to their ``keep`` best sentences (``rank_sentences``' order),
    each kept sentence in its passage and in its place there; a passage with none left is
    dropped. Nothing ranked (no candidate bears on the question): the best passage whole,
    cut as the prompt cuts it."""
    kept = sorted(ranked[:keep])
    by_number: dict[int, list[str]] = {}
    for index in kept:
        by_number.setdefault(found[index].number, []).append(found[index].text)
    focused = [
        replace(hit, text="\n".join(by_number[number]))
        for number, hit in enumerate(passages, start=1)
        if number in by_number
    ]
    return focused or list(passages[:1])


def compose_answer(
    voice: BrandVoice,
    language: str,
    *,
    unhappy: bool,
    record_facts: Sequence[str],
    sentences: Sequence[Candidate],
    handing_over: bool,
    data_language: str = "en",
) -> ComposedAnswer:
    """The answer in the tenant's words and ``language``: an apology when the customer is
    unhappy, the record lines, the quoted sentences with their citation, a closing line
    (not when a colleague takes over: the hand-over message follows) and the sign-off.

    When the customer's language is not the one the data is written in
    (``data_language``), a record line or a sentence is quoted by its key phrases only
    (ids, dates, figures with their unit: ``SJ-20874; 1 December 2026``): a whole English
    sentence in a French or Chinese answer would make it an English answer.
    """
    texts = voice.composed
    fallbacks = voice.languages

    def quote(text: str) -> str:
        if language == data_language:
            return _as_sentence(text)
        phrases = [_local_date(p, language) for p in key_phrases(text)]
        return "; ".join(dict.fromkeys(phrases))

    def say(value: str | dict[str, str]) -> str:
        return localized(value, language, fallbacks)

    parts: list[str] = []
    if unhappy:
        parts.append(say(texts.apology))
    if record_facts:
        lines = [line for fact in record_facts if (line := quote(fact) or _as_sentence(fact))]
        if len(lines) == 1:
            parts.append(f"{say(texts.record_intro)} {lines[0]}")
        else:
            parts.append(say(texts.record_intro) + "".join(f"\n- {line}" for line in lines))
    cited: tuple[int, ...] = ()
    if sentences:
        number = sentences[0].number
        if language == data_language:
            quoted = " ".join(_as_sentence(s.text) for s in sentences)
        else:  # the sentences' figures; the first sentence whole when none has one
            quoted = "; ".join(dict.fromkeys(q for s in sentences if (q := quote(s.text))))
            quoted = quoted or _as_sentence(sentences[0].text)
        intro = say(texts.kb_intro).replace("{title}", sentences[0].title)
        parts.append(f"{intro} {quoted} [{number}]")
        cited = (number,)
    if not record_facts and not sentences and not handing_over:
        parts.append(say(texts.no_answer))
    elif not handing_over:
        parts.append(say(texts.closing))
    sign_off = say(voice.sign_off) if voice.sign_off else ""
    if sign_off and parts:
        parts.append(sign_off)
    return ComposedAnswer(
        "\n\n".join(parts), cited, tuple(record_facts), tuple(s.text for s in sentences)
    )


_DATE_WRITTEN = re.compile(r"^(\d{1,2}) ([A-Za-z]+)(?: (\d{4}))?$")


def _local_date(phrase: str, language: str) -> str:
    """``1 December 2026`` as a Chinese reader writes it (``2026年12月1日``); other
    phrases and languages as they are."""
    match = _DATE_WRITTEN.match(phrase)
    month = MONTHS.get(match.group(2).lower()) if match else None
    if language != "zh" or match is None or month is None:
        return phrase
    year = f"{match.group(3)}年" if match.group(3) else ""
    return f"{year}{month}月{int(match.group(1))}日"


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if re.search(r"[.!?。！？:)]$", text) else text + "."
