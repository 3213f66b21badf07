"""The OpenAI wire format as the remote engine speaks it: sampling fields, streamed events,
error bodies and one-token judgments. Plain functions, kept apart from the routing and
failover of ``openai_remote``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from core.errors import UpstreamError
from models.engine.base import GenerationChunk, SamplingOptions
from models.engine.judge import yes_probability, yes_probability_of_text


def sampling_payload(options: SamplingOptions) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
    }
    if options.max_tokens is not None:
        payload["max_tokens"] = options.max_tokens
    if options.seed is not None:
        payload["seed"] = options.seed
    if options.stop:
        payload["stop"] = list(options.stop)
    if options.ignore_eos:
        payload["ignore_eos"] = True  # vLLM extension; other servers ignore unknown fields
    return payload


def judged_score(answer: dict[str, Any]) -> float:
    """The yes-probability of a one-token chat completion: from the first token's
    ``top_logprobs`` when the answer has them, else from its text."""
    try:
        choice = answer["choices"][0]
        content = (choice.get("logprobs") or {}).get("content") or []
        if content:
            first = content[0]
            candidates = first.get("top_logprobs") or [first]
            return yes_probability(
                (str(c.get("token", "")), float(c["logprob"])) for c in candidates
            )
        return yes_probability_of_text(str((choice.get("message") or {}).get("content") or ""))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamError(f"upstream sent a judgment in an unexpected shape: {exc!r}") from exc


async def error_message(response: httpx.Response) -> str:
    raw = await response.aread()
    await response.aclose()
    try:
        error = json.loads(raw).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return raw.decode(errors="replace")[:500] or f"HTTP {response.status_code}"


async def read_sse(response: httpx.Response, *, chat: bool) -> AsyncIterator[GenerationChunk]:
    """Translate an OpenAI SSE stream into chunks; the finish arrives with final usage."""
    prompt_tokens = 0
    output_tokens = 0
    finish: Any = None
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise UpstreamError(f"upstream failed mid-stream: {message}")
            usage = event.get("usage")
            if usage:
                prompt_tokens = int(usage.get("prompt_tokens") or 0)
                output_tokens = int(usage.get("completion_tokens") or output_tokens)
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if text:
                    output_tokens += 1
                    yield GenerationChunk(text, prompt_tokens, output_tokens)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
    except httpx.HTTPError as exc:
        raise UpstreamError(f"upstream connection failed mid-stream: {exc}") from exc
    except ValueError as exc:
        raise UpstreamError(f"upstream sent an unreadable event: {exc}") from exc
    finally:
        await response.aclose()
    if finish not in {"stop", "length", "abort"}:
        finish = "stop"
    yield GenerationChunk("", prompt_tokens, output_tokens, finish_reason=finish)
