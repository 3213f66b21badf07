"""Example questions learned from conversations: candidates, and the admin's decisions.

A customer's message that an article answered is the best example question that article
can have: it is in the customers' own words. A turn counts as answered when the model
replied from the KB (grounded, cited, no hand-over) and either the customer rated it
well (thumbs up, CSAT 4 or 5) or went on to ask something else without a hand-over (the
next message is not a repeat of this one). Candidates are derived from the stored turns
on every read, never copied: erasing a customer or expiring old conversations removes
their candidates too. Only the admin's decisions are stored, as the question's digest
and never its text, so a rejected question is not offered again; an approved one becomes
part of the article's front matter (``retrieval/documents.py``), reviewed text of the KB
like any other.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Column, Engine, Float, Index, String, Table, or_, select

from core.crypto import Keyring
from core.db import METADATA
from server.store.conversation_tables import FEEDBACK, MESSAGE, TURNS

KB_QUESTION_DECISIONS = Table(
    "kb_question_decisions",
    METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("question_id", String(16), primary_key=True),
    Column("doc_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("decided_at", Float, nullable=False),
    Index("ix_kb_question_decisions_doc", "tenant", "doc_id"),
)

MIN_QUESTION_WORDS = 3
MAX_QUESTION_CHARS = 300
REPEAT_OVERLAP = 0.6
"""Word overlap (Jaccard) at or above which the next message repeats this one."""
SCANNED_TURNS = 20_000
_WORDS = re.compile(r"\w+", re.UNICODE)


class Evidence(StrEnum):
    POSITIVE_FEEDBACK = "positive_feedback"
    NOT_REPEATED = "not_repeated"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class QuestionCandidate:
    """A customer message an article answered, offered as its example question."""

    question_id: str
    doc_id: str
    question: str
    evidence: Evidence
    seen: int
    last_seen: float


def question_id(doc_id: str, question: str) -> str:
    normal = " ".join(_WORDS.findall(question.casefold()))
    return hashlib.sha256(f"{doc_id}\x00{normal}".encode()).hexdigest()[:16]


def is_repeat(first: str, second: str) -> bool:
    a, b = set(_WORDS.findall(first.casefold())), set(_WORDS.findall(second.casefold()))
    return bool(a and b) and len(a & b) / len(a | b) >= REPEAT_OVERLAP


def _askable(message: str) -> bool:
    return len(_WORDS.findall(message)) >= MIN_QUESTION_WORDS and len(message) <= MAX_QUESTION_CHARS


class LearnedQuestions:
    """Candidates from the tenant's turns and feedback; decisions in their own table."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

    def candidates(self, tenant: str) -> list[QuestionCandidate]:
        """Undecided candidates, the best supported first (feedback, then how often)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    TURNS.c.turn_id,
                    TURNS.c.conversation_id,
                    TURNS.c.seq,
                    TURNS.c.created_at,
                    TURNS.c.message,
                    TURNS.c.answered_by,
                    TURNS.c.grounded,
                    TURNS.c.citations,
                    TURNS.c.escalation_reason,
                )
                .where(TURNS.c.tenant == tenant)
                .order_by(TURNS.c.created_at.desc())
                .limit(SCANNED_TURNS)
            ).all()
            liked = set(
                conn.execute(
                    select(FEEDBACK.c.turn_id).where(
                        FEEDBACK.c.tenant == tenant,
                        FEEDBACK.c.turn_id.is_not(None),
                        or_(FEEDBACK.c.thumbs == "up", FEEDBACK.c.csat >= 4),
                    )
                ).scalars()
            )
            decided = set(
                conn.execute(
                    select(KB_QUESTION_DECISIONS.c.question_id).where(
                        KB_QUESTION_DECISIONS.c.tenant == tenant
                    )
                ).scalars()
            )
        messages = {r.turn_id: self._keyring.decrypt(r.message, MESSAGE) for r in rows}
        following = {(r.conversation_id, r.seq): r for r in rows}
        found: dict[str, QuestionCandidate] = {}
        for row in rows:
            message = " ".join(messages[row.turn_id].split())
            if (
                row.answered_by != "model"
                or not row.grounded
                or not row.citations
                or row.escalation_reason
                or not _askable(message)
            ):
                continue
            after = following.get((row.conversation_id, row.seq + 1))
            if row.turn_id in liked:
                evidence = Evidence.POSITIVE_FEEDBACK
            elif (
                after is not None
                and not after.escalation_reason
                and not is_repeat(message, messages[after.turn_id])
            ):
                evidence = Evidence.NOT_REPEATED
            else:
                continue
            doc_id = str(row.citations[0].get("document_id", ""))
            key = question_id(doc_id, message)
            if not doc_id or key in decided:
                continue
            known = found.get(key)
            if known is None:
                found[key] = QuestionCandidate(key, doc_id, message, evidence, 1, row.created_at)
            else:
                stronger = Evidence.POSITIVE_FEEDBACK in (known.evidence, evidence)
                found[key] = QuestionCandidate(
                    key,
                    doc_id,
                    known.question,
                    Evidence.POSITIVE_FEEDBACK if stronger else known.evidence,
                    known.seen + 1,
                    max(known.last_seen, row.created_at),
                )
        return sorted(
            found.values(),
            key=lambda c: (c.evidence is not Evidence.POSITIVE_FEEDBACK, -c.seen, -c.last_seen),
        )

    def decide(
        self, tenant: str, candidate: QuestionCandidate, decision: Decision, actor: str
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                KB_QUESTION_DECISIONS.insert().values(
                    tenant=tenant,
                    question_id=candidate.question_id,
                    doc_id=candidate.doc_id,
                    status=str(decision),
                    actor=actor[:100],
                    decided_at=time.time(),
                )
            )
