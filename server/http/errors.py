"""Turn every failure into the one error shape, with the right status code.

Installed once by ``create_app``: Concierge's own errors, FastAPI's validation
errors (malformed JSON included), Starlette's HTTP errors (unknown route, wrong
method) and anything unexpected (a 500 that never leaks internals).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ConciergeError
from server.http.route_names import route_template
from server.schemas.errors import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)

_HTTP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
}


def error_response(
    status: int,
    error_type: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON body and status every error answer uses."""
    body = ErrorResponse(error=ErrorDetail(type=error_type, message=message, param=param))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def error_body(error_type: str, message: str, param: str | None = None) -> bytes:
    """The same shape as raw bytes, for middleware that answers before routing."""
    body = ErrorResponse(error=ErrorDetail(type=error_type, message=message, param=param))
    return body.model_dump_json().encode()


def describe_validation_error(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One readable sentence and the offending parameter from pydantic's error list."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "malformed JSON")
        return f"the request body is not valid JSON ({reason})", None
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "this field is required"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return (f"{param}: {message}{more}" if param else f"{message}{more}"), param


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ConciergeError)
    async def _concierge(_: Request, exc: ConciergeError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.error_type, exc.message)
        return error_response(
            exc.status_code, exc.error_type, exc.message, exc.param, headers=exc.headers()
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation_error(list(exc.errors()))
        return error_response(400, "invalid_request_error", message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
        return error_response(
            exc.status_code, error_type, str(exc.detail), None, headers=dict(exc.headers or {})
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refuses what SQLite stores: NUL characters in text, NaN in JSON,
        # strings longer than their column. The transaction rolled back; nothing was
        # written. The driver's message quotes the value, so it is not echoed or logged.
        route = route_template(request.scope)
        log.warning("database refused a value on %s %s", request.method, route)
        return error_response(
            400,
            "invalid_request_error",
            "a value in the request cannot be stored (text with NUL characters, "
            "a non-finite number, or a value longer than its field allows)",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a backstop for errors outside RequestContextMiddleware, which answers the rest
        log.exception("unhandled error on %s %s", request.method, route_template(request.scope))
        return error_response(500, "internal_error", "internal server error")
