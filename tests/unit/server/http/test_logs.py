"""Log lines: JSON or text, a request id on every line, the id in ``X-Request-ID``."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.http.errors import install_error_handlers
from server.http.logs import REQUEST_ID, configure_logging
from server.http.middleware import RequestContextMiddleware


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test reconfigured it, and the environment too.

    JSON mode sets ``VLLM_CONFIGURE_LOGGING=0`` in the process environment; left there, it
    reaches every server a later test starts, whose engine core then logs without vLLM's
    ``(EngineCore pid=...)`` prefix (the engine-lifecycle test waits for that prefix).
    """
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_variable = os.environ.get("VLLM_CONFIGURE_LOGGING")
    try:
        yield root
    finally:
        if saved_variable is None:
            os.environ.pop("VLLM_CONFIGURE_LOGGING", None)
        else:
            os.environ["VLLM_CONFIGURE_LOGGING"] = saved_variable
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_json_lines_carry_the_request_id_of_the_request_being_served(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    token = REQUEST_ID.set("req-123")
    try:
        logging.getLogger("concierge.test").warning("inside %s", "a request")
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("concierge.test").info("outside")
    first, second = (json.loads(line) for line in _lines(capsys))
    assert first["request_id"] == "req-123"
    assert first["message"] == "inside a request"
    assert first["level"] == "warning" and first["logger"] == "concierge.test"
    assert second["request_id"] == "-"


def test_json_lines_include_the_exception(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("concierge.test").exception("failed")
    [line] = _lines(capsys)
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_lines_are_readable_and_carry_the_request_id(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "text")
    token = REQUEST_ID.set("abc")
    try:
        logging.getLogger("concierge.test").info("hello")
    finally:
        REQUEST_ID.reset(token)
    [line] = _lines(capsys)
    assert re.search(r"INFO \[abc\] concierge\.test: hello$", line)


def test_configuring_again_replaces_only_its_own_handler(root_logger: logging.Logger) -> None:
    other = logging.NullHandler()
    root_logger.addHandler(other)
    configure_logging("info", "json")
    configure_logging("warning", "text")
    ours = [h for h in root_logger.handlers if h is not other and h not in _saved(root_logger)]
    assert other in root_logger.handlers
    assert len(ours) == 1 and root_logger.level == logging.WARNING


def _saved(root: logging.Logger) -> list[logging.Handler]:
    """Handlers pytest installed (log capture); not Concierge's."""
    return [h for h in root.handlers if type(h).__module__.startswith("_pytest")]


def test_an_unhandled_error_answers_500_with_the_request_id_and_logs_it(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/orders/{order_id}")
    def broken(order_id: str) -> None:
        raise RuntimeError("a bug")

    app.add_middleware(RequestContextMiddleware)
    configure_logging("info", "json")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/orders/ord-secret-42", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
    assert response.json() == {
        "error": {"type": "internal_error", "message": "internal server error", "param": None}
    }
    entries = [json.loads(line) for line in _lines(capsys)]
    [failure] = [entry for entry in entries if entry["level"] == "error"]
    assert failure["request_id"] == "bug-1" and "RuntimeError: a bug" in failure["exception"]
    assert "/orders/{order_id}" in failure["message"]
    assert all("ord-secret-42" not in json.dumps(entry) for entry in entries)
