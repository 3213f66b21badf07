"""Log lines: JSON or text, a request id on every line, the id in ``X-Request-ID``."""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.logs import REQUEST_ID, configure_logging
from tests.servers import ServerProcess


@pytest.fixture
def captured_root() -> Iterator[io.StringIO]:
    """The root logger as ``configure_logging`` sets it up, writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def _configure_into(stream: io.StringIO, log_format: str) -> None:
    configure_logging("info", log_format)  # type: ignore[arg-type]
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def test_json_lines_carry_the_request_id_of_the_request_being_served(
    captured_root: io.StringIO,
) -> None:
    _configure_into(captured_root, "json")
    token = REQUEST_ID.set("req-123")
    try:
        logging.getLogger("concierge.test").warning("inside %s", "a request")
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("concierge.test").info("outside")
    first, second = (json.loads(line) for line in captured_root.getvalue().splitlines())
    assert first["request_id"] == "req-123"
    assert first["message"] == "inside a request"
    assert first["level"] == "warning" and first["logger"] == "concierge.test"
    assert second["request_id"] == "-"


def test_json_lines_include_the_exception(captured_root: io.StringIO) -> None:
    _configure_into(captured_root, "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("concierge.test").exception("failed")
    entry = json.loads(captured_root.getvalue())
    assert "ValueError: boom" in entry["exception"]


def test_text_lines_are_readable_and_carry_the_request_id(captured_root: io.StringIO) -> None:
    _configure_into(captured_root, "text")
    token = REQUEST_ID.set("abc")
    try:
        logging.getLogger("concierge.test").info("hello")
    finally:
        REQUEST_ID.reset(token)
    assert re.search(r"INFO \[abc\] concierge\.test: hello$", captured_root.getvalue().strip())


def test_the_server_echoes_a_request_id_and_logs_it_with_the_route_template(
    server: ServerProcess, base_url: str
) -> None:
    chosen = f"trace-{uuid.uuid4().hex}"
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    response = httpx.get(
        f"{base_url}/v1/customers/{customer}", headers={"X-Request-ID": chosen}, timeout=30
    )
    assert response.headers["x-request-id"] == chosen
    generated = httpx.get(f"{base_url}/healthz", timeout=30).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    unsafe = httpx.get(
        f"{base_url}/healthz", headers={"X-Request-ID": 'a b"c'}, timeout=30
    ).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe), "ids with spaces or quotes are replaced"

    deadline = time.monotonic() + 10  # the access line is written after the response
    lines: list[str] = []
    while not any("GET /v1/customers/{customer_id} 404" in line for line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
        lines = [line for line in server.log_tail(4000).splitlines() if f"[{chosen}]" in line]
    assert all(customer not in line for line in server.log_tail(4000).splitlines())
