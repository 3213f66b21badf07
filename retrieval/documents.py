"""KB documents: what admins upload, parsed from files and kept in SQL.

The document table is the source of truth for what a tenant's KB *should* contain; an
index version is a derived, rebuildable view of it. A reindex compares the two by
content hash, so only new, edited and deleted documents cost any work.

Files: Markdown (``.md``), HTML (``.html``), plain text (``.txt``) become one document
each; JSON and CSV FAQ files (question/answer columns or keys) become one document per
entry, titled by the question.

A Markdown document may open with front matter that lists example questions it answers,
in the words customers use ("How long do I have to send something back?")::

    ---
    questions:
      - How long do I have to send something back?
    ---
    # Returns and refunds

Each becomes an extra search key of the article (see ``knowledge/reindex.py``): an
article's title and text rarely sound like the question it answers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, String, Table, Text, delete, func, select

from core.db import METADATA, change_stamp
from core.errors import InvalidRequestError
from core.ids import check_document_id
from core.json_input import read_json
from retrieval.chunking import (
    Chunk,
    chunk_sections,
    html_sections,
    markdown_sections,
    plain_sections,
    text_hash,
)

MAX_DOCUMENT_CHARS = 2_000_000
MAX_EXAMPLE_QUESTIONS = 50
MAX_QUESTION_CHARS = 300

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)

_SLUG = re.compile(r"[^a-z0-9]+")

SUFFIX_FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
}
FAQ_SUFFIXES = (".json", ".csv")


class DocumentFormat(StrEnum):
    MARKDOWN = "markdown"
    HTML = "html"
    TEXT = "text"


@dataclass(frozen=True)
class Document:
    """One KB document as stored; ``content_hash`` decides whether it needs re-embedding."""

    doc_id: str
    text: str
    title: str = ""
    format: DocumentFormat = DocumentFormat.TEXT
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return text_hash(f"{self.format}\n{self.title}\n{self.text}")

    def example_questions(self) -> list[str]:
        """The questions a Markdown document's front matter says it answers (none when
        the front matter is missing or malformed; ``check_front_matter`` refuses those
        at upload)."""
        if self.format is not DocumentFormat.MARKDOWN:
            return []
        try:
            return parse_front_matter(self.text)[0]
        except InvalidRequestError:
            return []

    def chunks(self, *, max_chars: int, overlap_chars: int) -> list[Chunk]:
        """Cut this document into chunks (headings first, then length)."""
        if self.format is DocumentFormat.MARKDOWN:
            sections = markdown_sections(strip_front_matter(self.text))
        elif self.format is DocumentFormat.HTML:
            sections = html_sections(self.text)[1]
        else:
            sections = plain_sections(self.text)
        return chunk_sections(sections, max_chars=max_chars, overlap_chars=overlap_chars)


def strip_front_matter(text: str) -> str:
    match = _FRONT_MATTER.match(text)
    return text[match.end() :] if match else text


def parse_front_matter(text: str, name: str = "document") -> tuple[list[str], str]:
    """The example questions of a Markdown text's front matter, and the text after it.

    Raises InvalidRequestError (naming ``name``) for front matter that is not YAML, not a
    mapping, or whose ``questions`` is not a list of short strings.
    """
    import yaml

    match = _FRONT_MATTER.match(text)
    if match is None:
        return [], text
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InvalidRequestError(f"{name}: front matter is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"{name}: front matter must be a mapping (questions: [...])")
    questions = data.get("questions", [])
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise InvalidRequestError(f"{name}: front matter 'questions' must be a list of strings")
    questions = [" ".join(q.split()) for q in questions if q.strip()]
    if len(questions) > MAX_EXAMPLE_QUESTIONS:
        raise InvalidRequestError(
            f"{name}: at most {MAX_EXAMPLE_QUESTIONS} example questions, got {len(questions)}"
        )
    long = [q for q in questions if len(q) > MAX_QUESTION_CHARS]
    if long:
        raise InvalidRequestError(
            f"{name}: an example question is at most {MAX_QUESTION_CHARS} characters: "
            f"{long[0][:60]!r}..."
        )
    return questions, text[match.end() :]


def with_example_question(document: Document, question: str) -> Document:
    """``document`` with ``question`` added to its front matter's example questions (a
    Markdown document only; its other front matter keys are kept)."""
    import yaml

    if document.format is not DocumentFormat.MARKDOWN:
        raise InvalidRequestError(
            f"{document.doc_id}: only Markdown articles carry example questions"
        )
    questions, body = parse_front_matter(document.text, document.doc_id)
    match = _FRONT_MATTER.match(document.text)
    data = (yaml.safe_load(match.group(1)) or {}) if match else {}
    if question in questions:
        return document
    data["questions"] = [*questions, question]
    front = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
    updated = Document(
        doc_id=document.doc_id,
        text=f"---\n{front}---\n{body}",
        title=document.title,
        format=document.format,
        source=document.source,
        metadata=document.metadata,
    )
    check_front_matter(updated)
    return updated


def check_front_matter(document: Document) -> None:
    """Refuse a Markdown document whose front matter cannot be read (a clear 400)."""
    if document.format is DocumentFormat.MARKDOWN:
        parse_front_matter(document.text, document.doc_id)


# ---------------------------------------------------------------- files


def documents_from_path(path: Path) -> Iterator[Document]:
    """Documents in a file or, recursively, a folder (ids are paths relative to it)."""
    if path.is_file():
        yield from documents_from_file(path, path.name)
        return
    if not path.is_dir():
        raise InvalidRequestError(f"{path} is neither a file nor a folder", param="path")
    for file in sorted(path.rglob("*")):
        if file.is_file() and not any(part.startswith(".") for part in file.parts):
            suffix = file.suffix.lower()
            if suffix in SUFFIX_FORMATS or suffix in FAQ_SUFFIXES:
                yield from documents_from_file(file, file.relative_to(path).as_posix())


def documents_from_file(path: Path, doc_id: str) -> list[Document]:
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{doc_id}: not UTF-8 text ({exc.reason})") from exc
    return documents_from_upload(doc_id, content)


def documents_from_upload(name: str, content: str) -> list[Document]:
    """Parse one uploaded or read file, its kind chosen by the name's suffix."""
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        return faq_from_json(name, content)
    if suffix == ".csv":
        return faq_from_csv(name, content)
    fmt = SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        known = ", ".join(sorted([*SUFFIX_FORMATS, *FAQ_SUFFIXES]))
        raise InvalidRequestError(f"{name}: unsupported file type (known: {known})")
    document_format = DocumentFormat(fmt)
    document = Document(
        doc_id=check_document_id(name),
        text=content,
        title=guess_title(document_format, content, name),
        format=document_format,
        source=name,
    )
    check_front_matter(document)
    return [document]


def guess_title(fmt: DocumentFormat, content: str, name: str) -> str:
    """The first heading (or HTML ``<title>``), else the file name."""
    if fmt is DocumentFormat.HTML:
        title, sections = html_sections(content)
        if title:
            return title
        if sections and sections[0].heading:
            return sections[0].heading.split(" > ")[0]
    if fmt is DocumentFormat.MARKDOWN:
        for line in strip_front_matter(content).splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return Path(name).stem.replace("_", " ").replace("-", " ")


def faq_from_csv(name: str, content: str) -> list[Document]:
    """One document per row of a CSV with ``question`` and ``answer`` columns."""
    reader = csv.DictReader(io.StringIO(content))
    columns = {column.strip().lower(): column for column in reader.fieldnames or []}
    if "question" not in columns or "answer" not in columns:
        raise InvalidRequestError(
            f"{name}: a CSV FAQ needs 'question' and 'answer' columns, found {list(columns)}"
        )
    rows = [{key: row.get(original) or "" for key, original in columns.items()} for row in reader]
    return _faq_documents(name, rows)


def faq_from_json(name: str, content: str) -> list[Document]:
    """A JSON FAQ: a list of entries (or ``{"documents": [...]}``) with question/answer."""
    try:
        data = read_json(content)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"{name}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):
        data = data.get("documents", data.get("faq"))
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InvalidRequestError(f"{name}: expected a list of FAQ entries (objects)")
    rows = []
    for item in data:
        question = item.get("question", item.get("title", ""))
        answer = item.get("answer", item.get("text", item.get("content", "")))
        if not isinstance(question, str) or not isinstance(answer, str):
            raise InvalidRequestError(f"{name}: question and answer must be strings")
        rows.append({"id": str(item.get("id", "")), "question": question, "answer": answer})
    return _faq_documents(name, rows)


def _faq_documents(name: str, rows: Iterable[dict[str, str]]) -> list[Document]:
    documents = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        question = row.get("question", "").strip()
        answer = row.get("answer", "").strip()
        if not question or not answer:
            raise InvalidRequestError(f"{name}: entry {number} lacks a question or an answer")
        key = row.get("id", "").strip() or _SLUG.sub("-", question.lower()).strip("-")[:80]
        doc_id = f"{name}:{key}"
        if doc_id in seen:
            doc_id = f"{doc_id}-{text_hash(question)[:8]}"
        seen.add(doc_id)
        documents.append(
            Document(
                doc_id=check_document_id(doc_id),
                text=answer,
                title=question,
                format=DocumentFormat.TEXT,
                source=name,
            )
        )
    return documents


# ---------------------------------------------------------------- SQL store

KB_DOCUMENTS = Table(
    "kb_documents",
    METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("doc_id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("format", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)


@dataclass(frozen=True)
class StoreChange:
    """What an upsert or delete did to one document."""

    doc_id: str
    action: str  # created, updated, unchanged, deleted, missing


class DocumentStore:
    """Tenant-scoped CRUD on ``kb_documents``. Synchronous: call it from a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The database the documents live in (the KB index follows it: ``KnowledgeBase``)."""
        return self._engine

    def upsert(self, tenant: str, documents: Sequence[Document]) -> list[StoreChange]:
        """Insert or replace documents in one transaction; unchanged ones are not touched."""
        changes: list[StoreChange] = []
        if not documents:
            return changes
        ids = [doc.doc_id for doc in documents]
        with self._engine.begin() as conn:
            existing = dict(
                conn.execute(
                    select(KB_DOCUMENTS.c.doc_id, KB_DOCUMENTS.c.content_hash).where(
                        KB_DOCUMENTS.c.tenant == tenant, KB_DOCUMENTS.c.doc_id.in_(ids)
                    )
                ).all()
            )
            now = time.time()
            for doc in documents:
                row = {
                    "title": doc.title,
                    "text": doc.text,
                    "format": str(doc.format),
                    "source": doc.source,
                    "metadata": doc.metadata,
                    "content_hash": doc.content_hash,
                    "updated_at": now,
                }
                old = existing.get(doc.doc_id)
                if old is None:
                    conn.execute(
                        KB_DOCUMENTS.insert().values(tenant=tenant, doc_id=doc.doc_id, **row)
                    )
                    existing[doc.doc_id] = doc.content_hash
                    changes.append(StoreChange(doc.doc_id, "created"))
                elif old != doc.content_hash or doc.metadata:
                    conn.execute(
                        KB_DOCUMENTS.update()
                        .where(KB_DOCUMENTS.c.tenant == tenant, KB_DOCUMENTS.c.doc_id == doc.doc_id)
                        .values(**row)
                    )
                    existing[doc.doc_id] = doc.content_hash
                    action = "updated" if old != doc.content_hash else "unchanged"
                    changes.append(StoreChange(doc.doc_id, action))
                else:
                    changes.append(StoreChange(doc.doc_id, "unchanged"))
        return changes

    def delete(self, tenant: str, doc_ids: Sequence[str]) -> list[StoreChange]:
        with self._engine.begin() as conn:
            present = set(
                conn.scalars(
                    select(KB_DOCUMENTS.c.doc_id).where(
                        KB_DOCUMENTS.c.tenant == tenant, KB_DOCUMENTS.c.doc_id.in_(list(doc_ids))
                    )
                ).all()
            )
            if present:
                conn.execute(
                    delete(KB_DOCUMENTS).where(
                        KB_DOCUMENTS.c.tenant == tenant, KB_DOCUMENTS.c.doc_id.in_(list(present))
                    )
                )
        return [StoreChange(d, "deleted" if d in present else "missing") for d in doc_ids]

    def hashes(self, tenant: str) -> dict[str, str]:
        """``doc_id -> content_hash`` of every document the tenant has now."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(KB_DOCUMENTS.c.doc_id, KB_DOCUMENTS.c.content_hash).where(
                    KB_DOCUMENTS.c.tenant == tenant
                )
            ).all()
        return {doc_id: content_hash for doc_id, content_hash in rows}

    def change_stamp(self, tenant: str) -> tuple[int, float]:
        """``(documents, newest updated_at)``: differs after any create, edit or delete.

        What every process serving the tenant's KB compares before a search, so a document
        deleted or edited through one replica stops matching on all of them at once.
        """
        return change_stamp(self._engine, KB_DOCUMENTS, tenant)

    def load(self, tenant: str, doc_ids: Sequence[str]) -> list[Document]:
        """The named documents (missing ones are skipped), in the order asked."""
        found: dict[str, Document] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(doc_ids), 500):
                batch = list(doc_ids[start : start + 500])
                for row in conn.execute(
                    select(KB_DOCUMENTS).where(
                        KB_DOCUMENTS.c.tenant == tenant, KB_DOCUMENTS.c.doc_id.in_(batch)
                    )
                ).mappings():
                    found[row["doc_id"]] = Document(
                        doc_id=row["doc_id"],
                        text=row["text"],
                        title=row["title"],
                        format=DocumentFormat(row["format"]),
                        source=row["source"],
                        metadata=dict(row["metadata"] or {}),
                    )
        return [found[d] for d in doc_ids if d in found]

    def get(self, tenant: str, doc_id: str) -> Document | None:
        loaded = self.load(tenant, [doc_id])
        return loaded[0] if loaded else None

    def count(self, tenant: str) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(KB_DOCUMENTS)
                    .where(KB_DOCUMENTS.c.tenant == tenant)
                )
                or 0
            )

    def tenants(self) -> list[str]:
        with self._engine.connect() as conn:
            return list(conn.scalars(select(KB_DOCUMENTS.c.tenant).distinct()).all())
