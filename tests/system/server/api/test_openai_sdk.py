"""The official OpenAI Python SDK works unchanged against Concierge."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def test_sdk_lists_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["smollm2-135m-instruct"]


def test_sdk_chat_completion(client: openai.OpenAI, model_name: str) -> None:
    completion = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "user", "content": "Where can I see my order status?"}],
        max_tokens=40,
        temperature=0,
    )
    text = completion.choices[0].message.content or ""
    assert len(text.split()) >= 5
    assert completion.usage is not None and completion.usage.completion_tokens <= 40


def test_sdk_streaming(client: openai.OpenAI, model_name: str) -> None:
    stream = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "user", "content": "Can I change my shipping address?"}],
        max_tokens=30,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces).strip()
    assert usage is not None and 0 < usage.completion_tokens <= 30


def test_sdk_completions(client: openai.OpenAI, model_name: str) -> None:
    completion = client.completions.create(
        model=model_name, prompt="Thank you for contacting support.", max_tokens=12, temperature=0
    )
    assert completion.choices[0].text.strip()


def test_sdk_raises_typed_errors(client: openai.OpenAI, model_name: str) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(
            model="gpt-unknown", messages=[{"role": "user", "content": "hi"}]
        )
    assert "not served here" in not_found.value.message
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(
            model=model_name, messages=[{"role": "user", "content": "hi"}], max_tokens=10**6
        )
    assert too_long.value.body["type"] == "context_length_exceeded"  # type: ignore[index]
