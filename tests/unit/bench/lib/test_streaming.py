"""The one streaming client: what a streamed chat completion or support reply showed, from
server-sent events served by an in-memory transport (no server process)."""

import json
from collections.abc import Callable

import httpx

from bench.lib.streaming import Streamed, chat_body, stream_chat, stream_support


def sse(*events: tuple[str | None, object]) -> bytes:
    """Server-sent events: ``(name or None, JSON payload or raw text)`` each."""
    lines = []
    for name, data in events:
        if name is not None:
            lines.append(f"event: {name}")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}")
        lines.append("")
    return ("\n".join(lines) + "\n").encode()


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://test", transport=httpx.MockTransport(handler))


def chunk(text: str) -> dict[str, object]:
    return {"choices": [{"delta": {"content": text}}]}


async def chat(body: bytes, status: int = 200) -> Streamed:
    async with client(lambda request: httpx.Response(status, content=body)) as http:
        return await stream_chat(http, chat_body("m", "hello", 3))


async def test_a_chat_stream_counts_text_chunks_and_takes_the_servers_token_count() -> None:
    usage = {"choices": [], "usage": {"completion_tokens": 3, "prompt_tokens": 21}}
    streamed = await chat(
        sse((None, chunk("Hi")), (None, {"choices": [{"delta": {}}]}), (None, chunk(" there")))
        + sse((None, usage), (None, "[DONE]"))
    )
    assert streamed.error is None
    assert streamed.text == "Hi there" and len(streamed.arrivals) == 2
    assert (streamed.completion_tokens, streamed.prompt_tokens) == (3, 21)
    assert streamed.ttft_s is not None and 0 <= streamed.ttft_s <= streamed.latency_s
    assert len(streamed.gaps_s) == 1


async def test_llama_servers_timings_stand_in_for_usage() -> None:
    last = {"choices": [], "timings": {"predicted_n": 16, "prompt_n": 9}}
    streamed = await chat(sse((None, chunk("a")), (None, last)))
    assert (streamed.completion_tokens, streamed.prompt_tokens) == (16, 9)


async def test_an_error_in_the_stream_ends_the_reply_with_the_error() -> None:
    streamed = await chat(
        sse((None, chunk("a")), (None, {"error": {"message": "engine died"}}), (None, chunk("b")))
    )
    assert streamed.error is not None and "engine died" in streamed.error
    assert streamed.text == "a"


async def test_a_refused_request_is_an_error_not_an_exception() -> None:
    streamed = await chat(b'{"error": "queue full"}', status=503)
    assert streamed.error == 'HTTP 503: {"error": "queue full"}'
    assert streamed.ttft_s is None


async def test_a_dropped_connection_is_an_error_too() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with client(refuse) as http:
        streamed = await stream_chat(http, chat_body("m", "hello", 3))
    assert streamed.error is not None and streamed.error.startswith("ConnectError(")


async def test_a_support_reply_takes_tokens_and_the_final_event() -> None:
    final = {
        "usage": {"completion_tokens": 2, "prompt_tokens": 40},
        "answered_by": "model",
        "timings_ms": {"analysis": 3.5, "total": 90.0},
        "prompt": [{"role": "user", "content": "hello"}],
    }
    body = sse(
        ("meta", {"conversation_id": "c1"}),
        ("token", {"text": "Hi"}),
        ("token", {"text": "!"}),
        ("final", final),
    )
    async with client(lambda request: httpx.Response(200, content=body)) as http:
        streamed = await stream_support(http, {"customer_id": "c", "message": "hello"})
    assert streamed.error is None and len(streamed.arrivals) == 2
    assert (streamed.completion_tokens, streamed.prompt_tokens) == (2, 40)
    assert streamed.timings_ms == {"analysis": 3.5, "total": 90.0}
    assert streamed.prompt == [{"role": "user", "content": "hello"}]


async def test_a_support_error_event_is_recorded() -> None:
    body = sse(("token", {"text": "Hi"}), ("error", {"type": "engine_unavailable"}))
    async with client(lambda request: httpx.Response(200, content=body)) as http:
        streamed = await stream_support(http, {"customer_id": "c", "message": "hello"})
    assert streamed.error == '{"type": "engine_unavailable"}'


def test_the_chat_request_is_greedy_and_of_fixed_length() -> None:
    body = chat_body("m", "where is my order", 64)
    assert body["max_tokens"] == 64 and body["ignore_eos"] is True
    assert body["temperature"] == 0.0 and body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "where is my order"}
