"""Chunking by headings, then by length with overlap."""

from __future__ import annotations

import itertools

import pytest

from retrieval.chunking import chunk_sections, html_sections, markdown_sections, plain_sections


def test_markdown_is_cut_at_headings_with_the_heading_path_kept() -> None:
    text = "# Billing\n\nIntro.\n\n## Refunds\nFive days.\n\n```\n# not a heading\n```\n# Other\nX."
    sections = markdown_sections(text)
    assert [s.heading for s in sections] == ["Billing", "Billing > Refunds", "Other"]
    assert "# not a heading" in sections[1].text


def test_long_sections_are_packed_with_overlap_and_never_exceed_the_limit() -> None:
    sentences = [
        f"Sentence number {i} explains one more detail of the refund policy." for i in range(80)
    ]
    chunks = chunk_sections(plain_sections(" ".join(sentences)), max_chars=400, overlap_chars=120)
    assert len(chunks) > 5
    assert all(len(chunk.text) <= 400 for chunk in chunks)
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    for previous, current in itertools.pairwise(chunks):
        last_sentence = previous.text.rsplit(". ", 1)[-1]
        assert last_sentence in current.text  # the cut is covered by the overlap
    joined = " ".join(chunk.text for chunk in chunks)
    assert all(sentence in joined for sentence in sentences)


def test_a_giant_sentence_is_cut_at_spaces() -> None:
    chunks = chunk_sections(plain_sections("word " * 1_000), max_chars=300, overlap_chars=50)
    assert all(len(chunk.text) <= 300 for chunk in chunks)
    assert sum(chunk.text.count("word") for chunk in chunks) >= 1_000


def test_html_keeps_visible_text_and_headings_only() -> None:
    title, sections = html_sections(
        "<html><head><title>Help</title><style>p{}</style></head><body><nav>Menu</nav>"
        "<h1>Returns</h1><p>Within <b>30</b> days.</p><script>alert(1)</script>"
        "<h2>Labels</h2><ul><li>Free</li><li>Printed</li></ul></body></html>"
    )
    assert title == "Help"
    assert [(s.heading, s.text) for s in sections] == [
        ("Returns", "Within 30 days."),
        ("Returns > Labels", "Free\n\nPrinted"),
    ]


def test_content_hash_follows_the_text() -> None:
    a = chunk_sections(plain_sections("Alpha.\n\nBeta."), max_chars=200, overlap_chars=0)[0]
    b = chunk_sections(plain_sections("Alpha.\n\nBeta."), max_chars=200, overlap_chars=0)[0]
    assert a.content_hash == b.content_hash
    other = chunk_sections(plain_sections("Alpha!"), max_chars=200, overlap_chars=0)[0]
    assert other.content_hash != a.content_hash


def test_overlap_must_be_smaller_than_the_chunk() -> None:
    with pytest.raises(ValueError):
        chunk_sections(plain_sections("x"), max_chars=100, overlap_chars=100)
