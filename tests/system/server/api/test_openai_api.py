"""The OpenAI-compatible endpoints, over real HTTP, with real text from SmolLM2."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

QUESTION = [
    {"role": "system", "content": "You are a helpful customer support assistant."},
    {"role": "user", "content": "How do I reset my password?"},
]


def chat(base_url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)


def sse_events(response: httpx.Response) -> list[Any]:
    """Parse an SSE body into JSON events; the final ``[DONE]`` stays a string."""
    events: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_models_lists_the_served_model(base_url: str) -> None:
    body = httpx.get(f"{base_url}/v1/models", timeout=10).json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert card["id"] == "smollm2-135m-instruct"
    assert card["max_model_len"] == 2048


def test_chat_non_streaming_returns_real_text_and_usage(base_url: str, model_name: str) -> None:
    response = chat(base_url, model=model_name, messages=QUESTION, max_tokens=48, temperature=0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    text = choice["message"]["content"]
    assert choice["message"]["role"] == "assistant"
    assert len(text.split()) >= 5, text
    assert "password" in text.lower(), text
    usage = body["usage"]
    assert usage["completion_tokens"] <= 48
    assert usage["prompt_tokens"] > 20  # system + user + chat template
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert choice["finish_reason"] in {"stop", "length"}


def test_greedy_decoding_is_deterministic(base_url: str, model_name: str) -> None:
    first = chat(base_url, model=model_name, messages=QUESTION, max_tokens=24, temperature=0)
    second = chat(base_url, model=model_name, messages=QUESTION, max_tokens=24, temperature=0)
    assert first.json()["choices"][0]["message"] == second.json()["choices"][0]["message"]


def test_seed_makes_sampling_repeatable(base_url: str, model_name: str) -> None:
    def sample(seed: int) -> str:
        response = chat(
            base_url,
            model=model_name,
            messages=QUESTION,
            max_tokens=32,
            temperature=1.0,
            top_p=0.95,
            seed=seed,
        )
        return str(response.json()["choices"][0]["message"]["content"])

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3)}) > 1


def test_max_tokens_is_respected_exactly_with_ignore_eos(base_url: str, model_name: str) -> None:
    response = chat(
        base_url, model=model_name, messages=QUESTION, max_tokens=17, temperature=0, ignore_eos=True
    )
    body = response.json()
    assert body["usage"]["completion_tokens"] == 17
    assert body["choices"][0]["finish_reason"] == "length"


def test_stop_sequence_ends_generation(base_url: str, model_name: str) -> None:
    free = chat(base_url, model=model_name, messages=QUESTION, max_tokens=40, temperature=0)
    text = free.json()["choices"][0]["message"]["content"]
    words = text.split()
    assert len(words) > 4, text
    stop_word = words[3]
    stopped = chat(
        base_url,
        model=model_name,
        messages=QUESTION,
        max_tokens=40,
        temperature=0,
        stop=[stop_word],
    )
    body = stopped.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert stop_word not in body["choices"][0]["message"]["content"]
    assert text.startswith(body["choices"][0]["message"]["content"].rstrip())


def test_chat_streaming_frames_and_done(base_url: str, model_name: str) -> None:
    response = chat(
        base_url,
        model=model_name,
        messages=QUESTION,
        max_tokens=32,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] in {"stop", "length"}
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert 0 < usage["completion_tokens"] <= 32
    # the stream carries the same text the non-streaming call returns
    whole = chat(base_url, model=model_name, messages=QUESTION, max_tokens=32, temperature=0)
    assert text == whole.json()["choices"][0]["message"]["content"]


def test_completions_non_streaming_and_streaming(base_url: str, model_name: str) -> None:
    prompt = "Customer: My order has not arrived yet.\nAgent:"
    response = httpx.post(
        f"{base_url}/v1/completions",
        timeout=120,
        json={"model": model_name, "prompt": prompt, "max_tokens": 20, "temperature": 0},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    text = body["choices"][0]["text"]
    assert text.strip()
    assert body["usage"]["completion_tokens"] <= 20

    streamed = httpx.post(
        f"{base_url}/v1/completions",
        timeout=120,
        json={
            "model": model_name,
            "prompt": prompt,
            "max_tokens": 20,
            "temperature": 0,
            "stream": True,
        },
    )
    events = sse_events(streamed)
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == text


def test_request_id_is_echoed(base_url: str) -> None:
    response = httpx.get(f"{base_url}/healthz", headers={"X-Request-ID": "abc-123"}, timeout=10)
    assert response.headers["x-request-id"] == "abc-123"
    generated = httpx.get(f"{base_url}/healthz", timeout=10).headers["x-request-id"]
    assert len(generated) == 32


@pytest.mark.parametrize("role", ["developer", "system"])
def test_developer_role_and_content_parts_are_accepted(
    base_url: str, model_name: str, role: str
) -> None:
    messages = [
        {"role": role, "content": "Answer in one short sentence."},
        {"role": "user", "content": [{"type": "text", "text": "What is a refund?"}]},
    ]
    response = chat(base_url, model=model_name, messages=messages, max_tokens=16, temperature=0)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].strip()
