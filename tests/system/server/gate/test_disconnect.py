"""A client that goes away must not leave its request running in the engine."""

from __future__ import annotations

import threading

import httpx

from tests.servers import prometheus_value, running_requests, wait_for_running

LONG = {
    "model": "smollm2-135m-instruct",
    "messages": [{"role": "user", "content": "Tell me everything about your return policy."}],
    "max_tokens": 1500,
    "ignore_eos": True,
    "temperature": 0,
}


def test_stream_disconnect_aborts_the_engine_request(base_url: str) -> None:
    assert wait_for_running(base_url, 0)
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{base_url}/v1/chat/completions", json={**LONG, "stream": True}
        ) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [next(lines) for _ in range(12)]
        assert any('"content"' in line for line in received)
        assert running_requests(base_url) == 1
        # leaving the block closes the connection mid-stream
    assert wait_for_running(base_url, 0), "the engine kept generating for a gone client"


def test_non_streaming_disconnect_aborts_the_engine_request(base_url: str) -> None:
    assert wait_for_running(base_url, 0)
    failure: list[BaseException] = []

    def send() -> None:
        try:
            httpx.post(f"{base_url}/v1/chat/completions", json=LONG, timeout=1.5)
        except httpx.TimeoutException:
            pass  # the client gives up, closing its connection
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    assert wait_for_running(base_url, 1, timeout_s=5)
    thread.join()
    assert not failure
    assert wait_for_running(base_url, 0), "the engine kept generating for a gone client"
    metrics_text = httpx.get(f"{base_url}/metrics", timeout=10).text
    aborted = prometheus_value(
        metrics_text, "concierge_generation_requests_total", endpoint="chat", outcome="abort"
    )
    assert aborted is not None and aborted >= 1
