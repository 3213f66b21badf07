"""The one error shape ``{"error": {type, message, param}}``, as a client must see it."""

from __future__ import annotations

from typing import Any

import httpx


def assert_error_shape(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"type", "message", "param"}
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)
