"""Rows for the store tests: a turn as the reply pipeline would record it."""

from __future__ import annotations

from server.store.conversations import AnsweredBy, Turn


def turn(conversation_id: str, seq: int, message: str, **extra: object) -> Turn:
    values: dict[str, object] = {
        # the column is VARCHAR(40) like the ids the pipeline makes; PostgreSQL enforces it
        "turn_id": f"turn_{conversation_id[-24:]}_{seq}",
        "conversation_id": conversation_id,
        "seq": seq,
        "created_at": 1000.0 + seq,
        "message": message,
        "reply": f"reply {seq}",
        "answered_by": AnsweredBy.MODEL,
        "language": "en",
        "sentiment": "neutral",
        "sentiment_score": 0.0,
        "frustrated": False,
        "intent": "track_order",
        "intent_confidence": 0.9,
        "grounded": True,
        "citations": [{"title": "Shipping"}],
    }
    values.update(extra)
    return Turn(**values)  # type: ignore[arg-type]
