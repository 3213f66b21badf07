"""Feedback on a conversation or one of its turns: CSAT, thumbs and a comment (encrypted)."""

from __future__ import annotations

import time

from sqlalchemy import Engine, select

from core.crypto import Keyring
from core.errors import NotFoundError
from server.store.conversation_tables import COMMENT, FEEDBACK, TURNS
from server.store.conversations import Conversation


class FeedbackStore:
    """Stores feedback after checking that the turn it names belongs to the conversation."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

    def add_feedback(
        self,
        conversation: Conversation,
        *,
        turn_id: str | None,
        csat: int | None,
        thumbs: str | None,
        comment: str,
    ) -> int:
        if turn_id is not None:
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(TURNS.c.turn_id).where(
                        TURNS.c.turn_id == turn_id,
                        TURNS.c.conversation_id == conversation.conversation_id,
                    )
                ).first()
            if found is None:
                raise NotFoundError(
                    f"turn {turn_id!r} is not part of this conversation", param="turn_id"
                )
        with self._engine.begin() as conn:
            result = conn.execute(
                FEEDBACK.insert().values(
                    tenant=conversation.tenant,
                    conversation_id=conversation.conversation_id,
                    customer_id=conversation.customer_id,
                    turn_id=turn_id,
                    csat=csat,
                    thumbs=thumbs,
                    comment=self._keyring.encrypt(comment, COMMENT),
                    created_at=time.time(),
                )
            )
        return int(result.inserted_primary_key[0])  # type: ignore[index]
