"""The one error shape every endpoint answers with: ``{"error": {type, message, param}}``."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """What went wrong, for a program (``type``, ``param``) and for a person (``message``)."""

    type: str
    message: str
    param: str | None = None


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx response, and of the error event in an SSE stream."""

    error: ErrorDetail
