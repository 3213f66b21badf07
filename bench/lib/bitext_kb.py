"""The Bitext knowledge base the retrieval benchmarks share: one canonical response per
intent (the first row's ``response``), ``doc_id`` = the intent, built through the product's
``KnowledgeBase``; the instructions are the queries, and a hit is the query's own intent."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.data import csv_rows
from retrieval.documents import Document, DocumentFormat
from retrieval.knowledge import KnowledgeBase, SearchMode

BITEXT_CSV = Path("bitext-customer-support") / "Bitext_Sample_Customer_Support_Training_Dataset.csv"


@dataclass(frozen=True)
class KbVariant:
    """How the one-document-per-intent KB is built."""

    key: str  # short, used in tenant names
    label: str
    titled: bool


VARIANTS = (
    KbVariant("plain", "response only", titled=False),
    KbVariant("titled", "titled (intent name)", titled=True),
)


def load_bitext(data: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """(intent -> first response, instructions, their intents) in file order."""
    rows = csv_rows(data / BITEXT_CSV)
    canonical: dict[str, str] = {}
    for row in rows:
        canonical.setdefault(row["intent"], row["response"])
    return canonical, [r["instruction"] for r in rows], [r["intent"] for r in rows]


def kb_documents(canonical: dict[str, str], variant: KbVariant) -> list[Document]:
    """One plain-text document per intent, ``doc_id`` = the intent."""
    return [
        Document(
            doc_id=intent,
            text=response,
            title=intent.replace("_", " ") if variant.titled else "",
            format=DocumentFormat.TEXT,
        )
        for intent, response in canonical.items()
    ]


def ranked_documents(
    kb: KnowledgeBase, tenant: str, query: str, vector: Any, mode: SearchMode, top_k: int
) -> list[str]:
    """Document ids by their best chunk, best first."""
    hits = kb.search(tenant, query, vector, top_k=top_k, mode=mode)
    return list(dict.fromkeys(hit.doc_id for hit in hits))


def stratified_halves(intents: Sequence[str], seed: int) -> tuple[list[int], list[int]]:
    """Row indices of two halves with every intent split evenly (a seeded shuffle per
    intent, the first half of each to the first list); each row is in exactly one."""
    rows: dict[str, list[int]] = {}
    for index, intent in enumerate(intents):
        rows.setdefault(intent, []).append(index)
    rng = random.Random(seed)
    first: list[int] = []
    second: list[int] = []
    for intent in sorted(rows):
        group = rows[intent]
        rng.shuffle(group)
        first += group[: len(group) // 2]
        second += group[len(group) // 2 :]
    return sorted(first), sorted(second)
