"""Request heads are bounded where they are parsed: 431 in the error shape, socket closed;
and in time: 408 for a head that drips in.

Raw sockets, because HTTP clients refuse to send what this needs (a 16 MB header, a head
that never ends). The session server runs the default ``max_header_bytes`` (64 KiB); the
timeout is tried on a Concierge of its own with a one-second ``header_timeout_s``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.servers import ServerProcess, start_variant

LIMIT = 65_536


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):  # what came before a reset still counts
        while chunk := connection.recv(65_536):
            chunks.append(chunk)
    return b"".join(chunks)


def _send_head(base_url: str, header_value_bytes: int, body: bytes = b"") -> bytes:
    """``GET /healthz`` with one header ``header_value_bytes`` long; the whole answer."""
    head = (
        b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n"
        b"x-padding: " + b"a" * header_value_bytes + b"\r\n"
    )
    if body:
        head = head.replace(b"GET", b"POST") + b"content-length: %d\r\n" % len(body)
    with _connect(base_url) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(head + b"\r\n" + body)  # the server may close before the end
        return _read_all(connection)


def _status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def test_a_head_under_the_limit_is_served(base_url: str) -> None:
    status, _ = _status_and_body(_send_head(base_url, LIMIT - 1024))
    assert status == 200


def test_a_head_over_the_limit_gets_431_in_the_error_shape(base_url: str) -> None:
    status, body = _status_and_body(_send_head(base_url, LIMIT))
    assert status == 431
    error = json.loads(body)["error"]
    assert error["type"] == "request_header_fields_too_large", error
    assert str(LIMIT) in error["message"]


def test_a_16_mb_header_is_refused_without_being_read_or_buffered(server: ServerProcess) -> None:
    """The probe's case: 200 before. The server stops reading at the limit and closes, so
    sending the rest fails, and its memory does not grow by the header's size."""
    before = _resident_kib(server.process.pid)
    started = time.monotonic()
    answer = _send_head(server.url, 16 << 20)
    elapsed = time.monotonic() - started
    assert _status_and_body(answer)[0] == 431
    assert elapsed < 10
    grown = _resident_kib(server.process.pid) - before
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB"


def test_unfinished_heads_are_cut_at_the_limit(server: ServerProcess) -> None:
    """Connections that send header bytes and never finish the head: each is answered and
    closed at the limit instead of holding everything it sent (64 MB grew the process by
    200 MiB before)."""
    connections = [_connect(server.url) for _ in range(4)]
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-slow: ")
        answers = []
        for connection in connections:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for _ in range(64):
                    connection.sendall(b"b" * 4096)
            answers.append(_read_all(connection))
    finally:
        for connection in connections:
            connection.close()
    assert all(_status_and_body(answer)[0] == 431 for answer in answers), answers


def test_a_small_head_with_a_large_body_in_one_packet_is_not_mistaken_for_a_large_head(
    base_url: str,
) -> None:
    """The body that follows a head in the same read does not count against the head."""
    body = json.dumps({"model": "x", "messages": []}).encode() + b" " * (LIMIT * 3)
    status, answer = _status_and_body(_send_head(base_url, 16, body))
    assert status != 431, answer


@pytest.fixture(scope="module")
def impatient(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A Concierge that gives a head one second to arrive whole."""
    env = {"CONCIERGE_HEADER_TIMEOUT_S": "1"}
    running = start_variant("impatient", env, base_url, data_dir, log_dir, tmp_path_factory)
    try:
        running.wait_ready(120)
        yield running
    finally:
        running.stop()


def test_a_head_that_drips_in_gets_408_and_a_closed_connection(impatient: ServerProcess) -> None:
    """Slowloris: one header byte at a time keeps a connection forever without a deadline
    (uvicorn's keep-alive timer stops at the first byte)."""
    started = time.monotonic()
    with _connect(impatient.url) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-drip: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(40):  # up to 4 s of dripping
                connection.sendall(b"c")
                time.sleep(0.1)
        answer = _read_all(connection)
    status, body = _status_and_body(answer)
    assert status == 408, answer
    assert json.loads(body)["error"]["type"] == "request_timeout"
    assert time.monotonic() - started < 10
    # a head sent at once is unaffected, and so is the next request on a kept-alive socket
    with _connect(impatient.url) as connection:
        request = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n"
        connection.sendall(request)
        first = connection.recv(65_536)
        time.sleep(1.5)  # idle between requests is keep-alive's business, not the head's
        connection.sendall(request.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
        second = _read_all(connection)
    assert _status_and_body(first)[0] == 200
    assert _status_and_body(second)[0] == 200
