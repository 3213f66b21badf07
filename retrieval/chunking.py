"""Splitting documents into retrievable chunks: by headings first, then by length.

A chunk is what one embedding represents, so it must fit the embedder's window
(all-MiniLM-L6-v2 reads 256 word pieces, about 1,000 characters of English) and stay on
one topic. Headings are the author's own topic boundaries, so sections are cut there;
a section longer than ``max_chars`` is packed sentence by sentence into chunks that
repeat the last ``overlap_chars`` of the previous one, so an answer that straddles a
cut is still whole in one of them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser

DEFAULT_MAX_CHARS = 900
DEFAULT_OVERLAP_CHARS = 150

_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile("(?<=[.!?\u3002\uff01\uff1f])\\s+")  # also CJK full stops
_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path ("Billing > Refunds")."""

    heading: str
    text: str


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, in order."""

    position: int
    section: str
    text: str

    @property
    def content_hash(self) -> str:
        return text_hash(self.section + "\n" + self.text)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def markdown_sections(text: str) -> list[Section]:
    """Sections of a Markdown text, each headed by its heading path."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(" > ".join(title for _, title in path), body))
        lines.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _MARKDOWN_HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, match.group(2).strip()))
        else:
            lines.append(line)
    flush()
    return sections


class _HtmlSections(HTMLParser):
    """Collects visible text, cutting a new section at each ``h1``-``h6``."""

    _SKIP = frozenset({"script", "style", "head", "nav", "footer", "noscript", "template"})
    _BLOCK = frozenset({"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.title = ""
        self._path: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._heading_level = 0
        self._heading_parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        if tag == "title":
            self._in_title = True
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._flush()
            self._heading_level = int(tag[1])
            self._heading_parts = []
        elif tag in self._BLOCK:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip_depth:
            self._skip_depth -= 1
        if tag == "title":
            self._in_title = False
        elif self._heading_level and tag == f"h{self._heading_level}":
            heading = " ".join("".join(self._heading_parts).split())
            level = self._heading_level
            self._path = [(lvl, t) for lvl, t in self._path if lvl < level] + [(level, heading)]
            self._heading_level = 0
        elif tag in self._BLOCK:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip_depth:
            return
        elif self._heading_level:
            self._heading_parts.append(data)
        else:
            self._parts.append(data)

    def _flush(self) -> None:
        raw = "".join(self._parts)
        body = "\n\n".join(" ".join(line.split()) for line in raw.split("\n") if line.strip())
        if body:
            self.sections.append(Section(" > ".join(t for _, t in self._path), body))
        self._parts = []

    def finish(self) -> list[Section]:
        self.close()
        self._flush()
        return self.sections


def html_sections(html: str) -> tuple[str, list[Section]]:
    """``(title, sections)`` of an HTML page; scripts, styles and navigation dropped."""
    parser = _HtmlSections()
    parser.feed(html)
    sections = parser.finish()
    return " ".join(parser.title.split()), sections


def plain_sections(text: str) -> list[Section]:
    body = text.strip()
    return [Section("", body)] if body else []


def chunk_sections(
    sections: list[Section],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
) -> list[Chunk]:
    """Pack each section's sentences into chunks of at most ``max_chars``."""
    if overlap_chars >= max_chars:
        raise ValueError("overlap_chars must be smaller than max_chars")
    chunks: list[Chunk] = []
    for section in sections:
        for text in _pack(_pieces(section.text, max_chars), max_chars, overlap_chars):
            chunks.append(Chunk(len(chunks), section.heading, text))
    return chunks


def _pieces(text: str, max_chars: int) -> list[str]:
    """Sentences (paragraph ends kept as separate pieces), none longer than ``max_chars``."""
    pieces: list[str] = []
    for paragraph in _BLANK_LINES.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > max_chars:  # one enormous "sentence": cut at a space
                cut = sentence.rfind(" ", 0, max_chars)
                cut = cut if cut > max_chars // 2 else max_chars
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
        if pieces:
            pieces[-1] += "\n"
    return pieces


def _pack(pieces: list[str], max_chars: int, overlap_chars: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        if current and size + len(piece) + 1 > max_chars:
            chunks.append(_join(current))
            tail: list[str] = []
            tail_size = 0
            for previous in reversed(current):  # carry the last sentences over as overlap
                if tail_size + len(previous) + 1 > overlap_chars:
                    break
                tail.insert(0, previous)
                tail_size += len(previous) + 1
            current, size = tail, tail_size
        current.append(piece)
        size += len(piece) + 1
    if current:
        chunks.append(_join(current))
    return [chunk for chunk in chunks if chunk]


def _join(pieces: list[str]) -> str:
    text = ""
    for piece in pieces:
        if text and not text.endswith("\n"):
            text += " "
        elif text.endswith("\n"):
            text += "\n"
        text += piece.rstrip("\n") + ("\n" if piece.endswith("\n") else "")
    return text.strip()
