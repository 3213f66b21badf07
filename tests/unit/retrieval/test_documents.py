"""Parsing uploaded files into documents, and the SQL document store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import InvalidRequestError
from core.ids import check_document_id, check_tenant
from retrieval.documents import (
    DocumentFormat,
    documents_from_path,
    documents_from_upload,
    with_example_question,
)


def test_a_folder_yields_one_document_per_file_and_one_per_faq_entry(tmp_path: Path) -> None:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "returns.md").write_text("# Returns policy\n\n30 days.")
    (tmp_path / "about.html").write_text("<title>About us</title><h1>About</h1><p>Hi.</p>")
    (tmp_path / "note.txt").write_text("Plain note.")
    (tmp_path / "faq.csv").write_text(
        "Question,Answer\nDo you ship abroad?,Yes.\nCan I pay later?,No.\n"
    )
    (tmp_path / "faq.json").write_text(
        json.dumps([{"id": "hours", "question": "When are you open?", "answer": "9-5."}])
    )
    (tmp_path / ".hidden.md").write_text("# secret")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    documents = {doc.doc_id: doc for doc in documents_from_path(tmp_path)}
    assert sorted(documents) == [
        "about.html",
        "faq.csv:can-i-pay-later",
        "faq.csv:do-you-ship-abroad",
        "faq.json:hours",
        "guides/returns.md",
        "note.txt",
    ]
    assert documents["guides/returns.md"].title == "Returns policy"
    assert documents["guides/returns.md"].format is DocumentFormat.MARKDOWN
    assert documents["about.html"].title == "About us"
    assert documents["faq.json:hours"].title == "When are you open?"
    assert documents["faq.csv:do-you-ship-abroad"].text == "Yes."


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("faq.csv", "q,a\nx,y\n", "'question' and 'answer'"),
        ("faq.csv", "question,answer\nx,\n", "lacks a question or an answer"),
        ("faq.json", "{not json", "invalid JSON"),
        ("faq.json", '{"documents": 3}', "list of FAQ entries"),
        ("faq.json", '[{"question": 1, "answer": "x"}]', "must be strings"),
        ("report.pdf", "%PDF", "unsupported file type"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(name: str, content: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        documents_from_upload(name, content)


@pytest.mark.parametrize("doc_id", ["", "../etc/passwd", "a/../b", "has space", "x" * 201, "-lead"])
def test_unsafe_document_ids_are_refused(doc_id: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_document_id(doc_id)


@pytest.mark.parametrize("tenant", ["", "Acme", "a/b", "a" * 64, "ünï"])
def test_unsafe_tenant_names_are_refused(tenant: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_tenant(tenant)


RETURNS_WITH_QUESTIONS = """---
questions:
  - How long do I have to send something back?
  - "Can I return   a gift?"
---
# Returns and refunds

You can return any item within 30 days of delivery.
"""


def test_front_matter_lists_example_questions_and_is_not_text() -> None:
    (document,) = documents_from_upload("returns.md", RETURNS_WITH_QUESTIONS)
    assert document.title == "Returns and refunds"
    assert document.example_questions() == [
        "How long do I have to send something back?",
        "Can I return a gift?",
    ]
    chunks = document.chunks(max_chars=900, overlap_chars=150)
    assert [c.text for c in chunks] == ["You can return any item within 30 days of delivery."]
    assert "questions" not in chunks[0].section


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("questions: [unclosed", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("questions: one question", "list of strings"),
        ("questions: [" + ", ".join(["q"] * 51) + "]", "at most 50"),
        ("questions: ['" + "x" * 301 + "']", "at most 300 characters"),
    ],
)
def test_unreadable_front_matter_is_refused(front: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        documents_from_upload("faq.md", f"---\n{front}\n---\n# Title\n\nText.")


def test_a_rule_line_later_in_a_document_is_not_front_matter() -> None:
    (document,) = documents_from_upload("a.md", "# A\n\nText.\n\n---\n\nMore text.")
    assert document.example_questions() == []
    assert document.chunks(max_chars=900, overlap_chars=150)[0].text.startswith("Text.")


def test_an_approved_question_joins_the_front_matter_once() -> None:
    (document,) = documents_from_upload("returns.md", RETURNS_WITH_QUESTIONS)
    updated = with_example_question(document, "Can I send back a kettle I opened?")
    assert updated.example_questions()[-1] == "Can I send back a kettle I opened?"
    assert len(updated.example_questions()) == 3
    assert updated.chunks(max_chars=900, overlap_chars=150) == document.chunks(
        max_chars=900, overlap_chars=150
    )
    assert with_example_question(updated, "Can I send back a kettle I opened?") == updated
    (plain,) = documents_from_upload("a.md", "# A\n\nText.")
    assert with_example_question(plain, "What is A?").example_questions() == ["What is A?"]
    (page,) = documents_from_upload("a.html", "<h1>A</h1><p>Text.</p>")
    with pytest.raises(InvalidRequestError, match="only Markdown"):
        with_example_question(page, "What is A?")
