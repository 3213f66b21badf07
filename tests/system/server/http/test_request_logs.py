"""The running server echoes a request id and logs it with the route template, never the path."""

from __future__ import annotations

import re
import time
import uuid

import httpx

from tests.servers import ServerProcess


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
