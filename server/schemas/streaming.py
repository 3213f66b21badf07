"""How the OpenAPI document describes answers streamed as Server-Sent Events.

Routes that take ``stream: true`` answer 200 with ``text/event-stream`` instead of
JSON. Declaring that media type next to the JSON one keeps the published contract
true for streaming clients (and for SDK generators and schema-driven fuzzers, which
otherwise see an undocumented content type).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ServerSentEvent(BaseModel):
    """One event of a stream (OpenAPI 3.1 describes a stream by its events)."""

    event: str = Field(
        "message", description="the event name; 'message' when the stream names none"
    )
    data: str = Field(description="a JSON object, or [DONE] as the last event")


SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with `stream: true` a text/event-stream",
        "content": {"text/event-stream": {"schema": ServerSentEvent.model_json_schema()}},
    }
}
"""Merge into a streaming route's ``responses=``; FastAPI keeps its JSON 200 beside it."""
