"""Stage 2b, recall the conversation: recent turns verbatim plus a rolling summary.

The last ``window`` exchanges go to the model word for word. Older ones are folded
into a summary, one line per exchange: the customer's question (shortened), what it
was about, and whether it was answered from the KB or handed to a person. The
summary is extractive, not written by the model: it costs nothing on the request path,
cannot hallucinate, and a small model reads a list of facts better than prose. Lines
beyond ``max_chars`` are dropped oldest first, so the summary stays bounded however
long a conversation runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.engine.base import ChatMessage
from server.store.conversations import AnsweredBy, Conversation, ConversationStore, Turn

QUESTION_CHARS = 140


@dataclass(frozen=True)
class Memory:
    recent: list[Turn]
    summary: str

    def last_question(self) -> str | None:
        """The customer's previous message in this conversation, if any: what a follow-up
        ("and for a week?") is searched together with."""
        return self.recent[-1].message if self.recent else None

    def messages(self) -> list[ChatMessage]:
        """The recent exchanges as chat messages, oldest first."""
        messages: list[ChatMessage] = []
        for turn in self.recent:
            messages.append(ChatMessage("user", turn.message))
            if turn.reply:
                messages.append(ChatMessage("assistant", turn.reply))
        return messages


def summary_line(turn: Turn) -> str:
    question = " ".join(turn.message.split())
    if len(question) > QUESTION_CHARS:
        question = question[: QUESTION_CHARS - 1].rstrip() + "…"
    if turn.answered_by is AnsweredBy.HUMAN_QUEUE:
        outcome = "waiting for a person"
    elif turn.citations:
        titles = sorted({str(c.get("title", "")) for c in turn.citations if c.get("title")})
        outcome = "answered from " + "; ".join(titles[:2])
    else:
        outcome = "answered without a KB article"
    if turn.escalation_reason:
        outcome += f"; handed to a person ({turn.escalation_reason})"
    return f'- [{turn.intent}, {turn.sentiment}] customer: "{question}" — {outcome}'


def roll_summary(summary: str, dropped: list[Turn], max_chars: int) -> str:
    """Append lines for turns leaving the verbatim window; keep the newest within budget."""
    lines = [line for line in summary.splitlines() if line.strip()]
    lines.extend(summary_line(turn) for turn in dropped)
    while lines and len("\n".join(lines)) > max_chars:
        lines.pop(0)
    return "\n".join(lines)


class ConversationMemory:
    """Reads the window and keeps the summary up to date as turns are recorded."""

    def __init__(self, store: ConversationStore, window: int, summary_chars: int) -> None:
        self._store = store
        self.window = window
        self.summary_chars = summary_chars

    def recall_sync(self, conversation: Conversation) -> Memory:
        if conversation.turn_count == 0:
            return Memory([], conversation.summary)
        return Memory(
            self._store.recent_turns(conversation.conversation_id, self.window),
            conversation.summary,
        )

    def next_summary(
        self, conversation: Conversation, memory: Memory, new_seq: int
    ) -> tuple[str, int]:
        """The summary and its coverage after turn ``new_seq`` joins the conversation.

        Turns older than the window (``seq <= new_seq - window``) must be in the
        summary; the ones not yet folded in are taken from ``memory`` (already loaded).
        """
        cover_through = max(0, new_seq - self.window)
        if cover_through <= conversation.summarized_turns:
            return conversation.summary, conversation.summarized_turns
        dropping = [
            t for t in memory.recent if conversation.summarized_turns < t.seq <= cover_through
        ]
        missing = cover_through - conversation.summarized_turns - len(dropping)
        if missing > 0:  # the window shrank since, or turns were never loaded: read them
            dropping = self._store.turns_between(
                conversation.conversation_id, conversation.summarized_turns + 1, cover_through
            )
        return roll_summary(conversation.summary, dropping, self.summary_chars), cover_through
