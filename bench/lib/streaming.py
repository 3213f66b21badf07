"""The streaming client of Concierge's and its peers' HTTP APIs, and what one streamed reply
showed: every benchmark times a reply the same way.

Time to first token (TTFT) is the first chunk with text (a ``token`` event of
``/v1/support/reply``), inter-token latency (ITL) the gap between text chunks. Errors are
recorded on the reply, never raised: a failed request is left out of the statistics and
counted, it does not end the run.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

SYSTEM_PROMPT = "You are a helpful customer support assistant. Answer briefly and politely."
ERROR_CHARS = 300
"""An error is kept to this many characters: enough to tell one failure from another."""


@dataclass
class Streamed:
    """What one streaming response showed, as the client saw it."""

    began: float
    ended: float = 0.0
    arrivals: list[float] = field(default_factory=list)  # perf_counter() of each text chunk
    parts: list[str] = field(default_factory=list)
    completion_tokens: int | None = None  # as the server counted them, where it said
    prompt_tokens: int = 0
    answered_by: str = "model"  # support replies: "model", or a handover without generation
    timings_ms: dict[str, float] = field(default_factory=dict)  # support: the server's stages
    prompt: list[dict[str, str]] = field(default_factory=list)  # support: the composed prompt
    error: str | None = None

    @property
    def ttft_s(self) -> float | None:
        return self.arrivals[0] - self.began if self.arrivals else None

    @property
    def gaps_s(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.arrivals)]

    @property
    def latency_s(self) -> float:
        return self.ended - self.began

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def arrived(self, text: str = "") -> None:
        self.arrivals.append(time.perf_counter())
        self.parts.append(text)


EventHandler = Callable[[Streamed, str, str], None]
"""Takes one SSE event (its name, its data) into the reply."""


def chat_event(streamed: Streamed, _event: str, data: str) -> None:
    """An OpenAI chat-completions chunk (vLLM serve, Concierge, llama-server)."""
    chunk: dict[str, Any] = json.loads(data)
    if "error" in chunk:
        streamed.error = json.dumps(chunk["error"])[:ERROR_CHARS]
        return
    for choice in chunk.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if content:
            streamed.arrived(content)
    if chunk.get("usage"):
        streamed.completion_tokens = int(chunk["usage"]["completion_tokens"])
        streamed.prompt_tokens = int(chunk["usage"].get("prompt_tokens", 0))
    elif chunk.get("timings") and streamed.completion_tokens is None:  # llama-server
        streamed.completion_tokens = int(chunk["timings"]["predicted_n"])
        streamed.prompt_tokens = int(chunk["timings"].get("prompt_n", 0))


def support_event(streamed: Streamed, event: str, data: str) -> None:
    """A ``/v1/support/reply`` event: ``token``, ``final`` (usage, stages, prompt), ``error``."""
    if event == "token":
        streamed.arrived()
    elif event == "final":
        final = json.loads(data)
        streamed.completion_tokens = int(final["usage"].get("completion_tokens", 0))
        streamed.prompt_tokens = int(final["usage"].get("prompt_tokens", 0))
        streamed.answered_by = final["answered_by"]
        streamed.timings_ms = final.get("timings_ms") or {}
        streamed.prompt = final.get("prompt") or []
    elif event == "error":
        streamed.error = data[:ERROR_CHARS]


async def post_stream(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], on_event: EventHandler
) -> Streamed:
    """POST ``body`` and read the server-sent events until the stream ends or reports an
    error; the clock starts before the request is sent."""
    streamed = Streamed(time.perf_counter())
    event = "message"
    try:
        async with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                streamed.error = f"HTTP {response.status_code}: {response.text[:ERROR_CHARS]}"
            else:
                async for line in response.aiter_lines():
                    if not line:  # a blank line ends an SSE event; the next one names its own
                        event = "message"
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and line[5:].strip() != "[DONE]":
                        on_event(streamed, event, line[5:].strip())
                        if streamed.error is not None:
                            break
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        streamed.error = repr(exc)[:ERROR_CHARS]
    streamed.ended = time.perf_counter()
    return streamed


def chat_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """The benchmarks' chat request: support system prompt, greedy, exactly ``max_tokens``
    output tokens (``ignore_eos``), streamed with usage."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def stream_chat(client: httpx.AsyncClient, body: dict[str, Any]) -> Streamed:
    """One streaming ``/v1/chat/completions`` call."""
    return await post_stream(client, "/v1/chat/completions", body, chat_event)


async def stream_support(client: httpx.AsyncClient, body: dict[str, Any]) -> Streamed:
    """One streaming ``/v1/support/reply`` call (``body`` should set ``"stream": True``)."""
    return await post_stream(client, "/v1/support/reply", body, support_event)


def http_client(
    base_url: str,
    *,
    connections: int,
    keepalive: int,
    timeout_s: float,
    tenant: str | None = None,
) -> httpx.AsyncClient:
    """An HTTP client for one benchmark's requests; ``tenant`` sets Concierge's tenant header.

    ``keepalive`` 0 opens a new connection per request (llama-server's cpp-httplib closes
    idle keep-alive connections under the client now and then; a loopback connect costs
    well under a millisecond).
    """
    return httpx.AsyncClient(
        base_url=base_url,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=keepalive),
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        headers={"X-Concierge-Tenant": tenant} if tenant else None,
    )
