"""Limits and backpressure: cheap refusals, a bounded queue, and a deadline that aborts.

The limit checks run against the session server. The queue and the deadline need small
settings, so they use Concierges of their own that forward to the session server's real
vLLM engine (``openai_remote``): what is tested is their admission control, and whether
the engine behind them really stops working on requests they give up.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import (
    ServerProcess,
    prometheus_value,
    running_requests,
    start_variant,
    wait_for_running,
)

MODEL = "smollm2-135m-instruct"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Where is my parcel?"}]}
LONG = {**CHAT, "max_tokens": 1500, "ignore_eos": True, "temperature": 0}
"""Runs far longer than any deadline below unless it is aborted."""


# ---------------------------------------------------------------- refusals that cost nothing


def _absurd_requests(base_url: str) -> list[tuple[str, dict[str, Any], int, str | None]]:
    """(url, request kwargs, status, param) for requests that must be refused at the edge."""
    chat, completions = f"{base_url}/v1/chat/completions", f"{base_url}/v1/completions"
    huge = 10**18
    big_body = b'{"model": "x", "messages": [' + b" " * (2 << 20) + b"]}"
    json_headers = {"content-type": "application/json"}
    prompt = {"model": MODEL, "prompt": "Hi"}
    return [
        (chat, {"content": big_body, "headers": json_headers}, 413, None),
        (chat, {"json": {**CHAT, "max_tokens": huge}}, 400, "max_tokens"),
        (chat, {"json": {**CHAT, "max_tokens": huge, "stream": True}}, 400, "max_tokens"),
        (chat, {"json": {**CHAT, "max_completion_tokens": huge}}, 400, "max_completion_tokens"),
        (chat, {"json": {**CHAT, "n": huge}}, 400, "n"),
        (chat, {"json": {**CHAT, "n": 10**100}}, 400, "n"),
        (
            completions,
            {"json": {"model": MODEL, "prompt": "Hi", "max_tokens": huge}},
            400,
            "max_tokens",
        ),
        (completions, {"json": {**prompt, "n": huge}}, 400, "n"),
    ]


def _resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def test_oversized_bodies_and_absurd_limits_are_refused_fast_without_memory_growth(
    server: ServerProcess,
) -> None:
    cases = _absurd_requests(server.url)
    pid = server.process.pid
    with httpx.Client(timeout=10) as client:

        def send(index: int) -> float:
            url, kwargs, status, param = cases[index % len(cases)]
            started = time.perf_counter()
            response = client.post(url, **kwargs)
            elapsed = time.perf_counter() - started
            assert response.status_code == status, response.text
            error = response.json()["error"]
            if param is not None:
                assert error["param"] == param, error
            return elapsed

        for index in range(len(cases) * 5):  # warm up: imports, allocator pools, caches
            send(index)
        before = _resident_kib(pid)
        timings = [send(index) for index in range(200)]
        after = _resident_kib(pid)

    timings.sort()
    median, p95 = statistics.median(timings), timings[int(len(timings) * 0.95) - 1]
    print(
        f"refusals: median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {timings[-1] * 1000:.1f} ms; RSS {before} -> {after} KiB"
    )
    # Typically a few ms each. The bound leaves room for a CI box whose cores are busy
    # with other work (seen: single requests stalled for 0.4 s at load 11 on 2 cores).
    assert median < 0.02 and p95 < 0.1, f"median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
    assert timings[-1] < 1.0
    assert after - before < 16 * 1024, f"RSS grew by {after - before} KiB over 200 refusals"
    assert running_requests(server.url) == 0


# ---------------------------------------------------------------- servers with small limits


@pytest.fixture(scope="module")
def bounded(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Two generations in the engine, two waiting: capacity four; short support replies."""
    env = {
        "CONCIERGE_ENGINE_MAX_CONCURRENCY": "2",
        "CONCIERGE_MAX_QUEUED_REQUESTS": "2",
        "CONCIERGE_REPLY_MAX_TOKENS": "16",
    }
    running = start_variant("bounded", env, base_url, data_dir, log_dir, tmp_path_factory)
    try:
        running.wait_ready(120)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def hurried(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A two-second deadline per generation."""
    env = {"CONCIERGE_REQUEST_DEADLINE_S": "2"}
    running = start_variant("hurried", env, base_url, data_dir, log_dir, tmp_path_factory)
    try:
        running.wait_ready(120)
        yield running
    finally:
        running.stop()


# ---------------------------------------------------------------- the bounded queue


async def _one_request(
    client: httpx.AsyncClient, url: str, number: int
) -> tuple[int, dict[str, str], str]:
    stream = number % 2 == 1
    body = {**CHAT, "max_tokens": 12, "ignore_eos": True, "temperature": 0, "stream": stream}
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        text = (await response.aread()).decode()
        return response.status_code, dict(response.headers), text


def test_four_times_the_queue_capacity_gets_only_200_or_503_with_retry_after(
    bounded: ServerProcess, base_url: str
) -> None:
    async def flood() -> list[tuple[int, dict[str, str], str]]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(_one_request(client, bounded.url, n) for n in range(16)))

    started = time.monotonic()
    answers = asyncio.run(flood())
    elapsed = time.monotonic() - started
    statuses = [status for status, _, _ in answers]
    print(f"16 requests at capacity 4: {sorted(statuses)} in {elapsed:.1f} s")
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 4  # two running and two waiting are always served
    assert statuses.count(503) >= 1
    for status, headers, text in answers:
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            assert json.loads(text)["error"]["type"] == "overloaded"
        elif headers["content-type"].startswith("text/event-stream"):
            assert text.rstrip().endswith("data: [DONE]") and '"error"' not in text
        else:
            assert json.loads(text)["choices"][0]["finish_reason"] == "length"

    metrics_text = httpx.get(f"{bounded.url}/metrics", timeout=10).text
    assert prometheus_value(metrics_text, "concierge_generation_queue_depth") == 0
    assert prometheus_value(metrics_text, "concierge_generation_requests_in_flight") == 0
    shed = prometheus_value(metrics_text, "concierge_generation_shed_total", reason="queue_full")
    assert shed == statuses.count(503)
    assert wait_for_running(base_url, 0)
    # and it serves normally once the flood is over
    calm = httpx.post(
        f"{bounded.url}/v1/chat/completions", json={**CHAT, "max_tokens": 4}, timeout=60
    )
    assert calm.status_code == 200, calm.text


async def _any_request(
    client: httpx.AsyncClient, url: str, number: int
) -> tuple[str, int, dict[str, str], str]:
    """Chat or support, JSON or streamed, by ``number``; the status comes before any body."""
    stream = number % 2 == 1
    if number % 4 < 2:
        path = "/v1/chat/completions"  # long enough to keep the queue full meanwhile
        body = {**CHAT, "max_tokens": 48, "ignore_eos": True, "temperature": 0}
    else:
        path = "/v1/support/reply"
        body = {"customer_id": f"flood-{number}", "message": "Where is my parcel?"}
    kind = f"{path.rsplit('/', 1)[-1]}{'-stream' if stream else ''}"
    async with client.stream("POST", f"{url}{path}", json={**body, "stream": stream}) as response:
        text = (await response.aread()).decode()
        return kind, response.status_code, dict(response.headers), text


def test_chat_and_support_in_overload_answer_only_200_429_503_or_504_before_the_body(
    bounded: ServerProcess, base_url: str
) -> None:
    """Streaming and JSON, chat and support: a shed request is a status, never a 200 whose
    body carries the error (a support stream shed after its 200 was the old behaviour)."""

    async def flood() -> list[tuple[str, int, dict[str, str], str]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(*(_any_request(client, bounded.url, n) for n in range(24)))

    answers = asyncio.run(flood())
    seen = sorted((kind, status) for kind, status, _, _ in answers)
    print(f"24 mixed requests at capacity 4: {seen}")
    assert {status for _, status, _, _ in answers} <= {200, 429, 503, 504}, seen
    shed_kinds = {kind for kind, status, _, _ in answers if status == 503}
    assert any(kind.startswith("reply") for kind in shed_kinds), seen  # support is shed too
    for kind, status, headers, text in answers:
        if status == 200:
            if kind.endswith("-stream"):
                assert headers["content-type"].startswith("text/event-stream")
                assert text.rstrip().endswith("data: [DONE]"), text
                assert "event: error" not in text and '"error"' not in text, text
            else:
                assert headers["content-type"].startswith("application/json")
            continue
        assert headers["content-type"].startswith("application/json"), (kind, status, text)
        error = json.loads(text)["error"]
        assert error["type"] in ("overloaded", "deadline_exceeded", "rate_limit_exceeded"), error
        if status == 503:
            assert int(headers["retry-after"]) >= 1
    assert wait_for_running(base_url, 0)
    metrics_text = httpx.get(f"{bounded.url}/metrics", timeout=10).text
    assert prometheus_value(metrics_text, "concierge_generation_requests_in_flight") == 0


def _stage_runs(url: str) -> dict[str, float]:
    """How many times each pipeline stage that precedes generation has run on ``url``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    name = "concierge_pipeline_stage_duration_seconds_count"
    return {
        stage: prometheus_value(text, name, stage=stage) or 0.0
        for stage in ("analysis", "recall", "retrieval", "prompt")
    }


def test_a_shed_support_reply_runs_no_pipeline_stage(bounded: ServerProcess, base_url: str) -> None:
    """Admission comes before the pipeline: a flood of support replies, JSON and streamed,
    is answered 200, 429, 503 or 504, and only the replies that got a slot were analysed,
    recalled, retrieved and composed (the probe saw shed replies take 1.2 s of pipeline
    work each before their 503)."""

    async def one(client: httpx.AsyncClient, number: int) -> tuple[int, dict[str, str], str]:
        body = {
            "customer_id": f"shed-{number}",
            "message": "My blender arrived cracked, can I get a replacement?",
            "stream": number % 2 == 1,
        }
        async with client.stream("POST", f"{bounded.url}/v1/support/reply", json=body) as answer:
            return answer.status_code, dict(answer.headers), (await answer.aread()).decode()

    async def flood() -> list[tuple[int, dict[str, str], str]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(*(one(client, n) for n in range(24)))

    assert wait_for_running(base_url, 0)
    before = _stage_runs(bounded.url)
    answers = asyncio.run(flood())
    after = _stage_runs(bounded.url)
    statuses = sorted(status for status, _, _ in answers)
    print(f"24 support replies at capacity 4: {statuses}; stages run {after} (was {before})")
    assert set(statuses) <= {200, 429, 503, 504}, statuses
    assert statuses.count(503) >= 1, statuses
    for status, headers, text in answers:
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            assert json.loads(text)["error"]["type"] == "overloaded"
    served = statuses.count(200)
    for stage in before:
        ran = after[stage] - before[stage]
        # a 504 may have had its slot (and its stages) before the deadline struck
        assert served <= ran <= served + statuses.count(504), (stage, ran, statuses)
    metrics_text = httpx.get(f"{bounded.url}/metrics", timeout=10).text
    assert prometheus_value(metrics_text, "concierge_generation_requests_in_flight") == 0
    assert wait_for_running(base_url, 0)


# ---------------------------------------------------------------- the deadline


def _post_in_background(url: str, body: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def send() -> None:
        try:
            started = time.monotonic()
            response = httpx.post(url, json=body, timeout=60)
            result.append((response, time.monotonic() - started))
        except BaseException as exc:  # reported by the test
            result.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    return thread, result


def test_a_request_past_its_deadline_gets_504_and_is_aborted(
    hurried: ServerProcess, base_url: str
) -> None:
    assert wait_for_running(base_url, 0)
    thread, result = _post_in_background(f"{hurried.url}/v1/chat/completions", LONG)
    assert wait_for_running(base_url, 1, timeout_s=10), "the generation never reached the engine"
    thread.join(timeout=30)
    assert result and not isinstance(result[0], BaseException), result
    response, elapsed = result[0]
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["type"] == "deadline_exceeded"
    assert 1.9 < elapsed < 10
    assert wait_for_running(base_url, 0, timeout_s=10), "the engine kept generating"


def test_a_stream_past_its_deadline_ends_with_an_error_event_and_is_aborted(
    hurried: ServerProcess, base_url: str
) -> None:
    assert wait_for_running(base_url, 0)
    body = {"model": MODEL, "prompt": "Our return policy", "max_tokens": 1500}
    body |= {"ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{hurried.url}/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert any(json.loads(event)["choices"][0]["text"] for event in events[:-2])
    error = json.loads(events[-2])["error"]
    assert error["type"] == "deadline_exceeded", error
    assert wait_for_running(base_url, 0, timeout_s=10), "the engine kept generating"
    metrics_text = httpx.get(f"{hurried.url}/metrics", timeout=10).text
    cut = prometheus_value(metrics_text, "concierge_generation_shed_total", reason="deadline")
    assert cut is not None and cut >= 1
