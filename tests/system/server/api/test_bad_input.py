"""Whatever a client sends, it gets a 4xx in the one error shape and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.error_shape import assert_error_shape

VALID = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi"}]}


def post_chat(base_url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/chat/completions", timeout=60, **kwargs)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**VALID, "messages": []}, "messages"),
        ({"model": VALID["model"]}, "messages"),
        ({**VALID, "max_tokens": -5}, "max_tokens"),
        ({**VALID, "max_tokens": 0}, "max_tokens"),
        ({**VALID, "max_tokens": "many"}, "max_tokens"),
        ({**VALID, "temperature": 7}, "temperature"),
        ({**VALID, "top_p": 0}, "top_p"),
        ({**VALID, "n": 3}, "n"),
        ({**VALID, "stop": [""]}, "stop"),
        ({**VALID, "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({**VALID, "messages": "hello"}, "messages"),
        ({**VALID, "tools": [{"type": "function"}]}, "tools"),
        ({**VALID, "tool_choice": "auto"}, "tool_choice"),
        ({**VALID, "logit_bias": {"50": 10}}, "logit_bias"),
        ({**VALID, "logprobs": True}, "logprobs"),
        ({**VALID, "response_format": {"type": "json_object"}}, "response_format"),
        ({**VALID, "seed": 2**70}, "seed"),
    ],
)
def test_invalid_fields_name_the_parameter(
    base_url: str, body: dict[str, Any], param: str | None
) -> None:
    error = assert_error_shape(post_chat(base_url, json=body), 400, "invalid_request_error")
    assert error["param"] == param


def test_malformed_json(base_url: str) -> None:
    response = post_chat(
        base_url,
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    error = assert_error_shape(response, 400, "invalid_request_error")
    assert "not valid JSON" in error["message"]


def test_json_that_is_not_an_object(base_url: str) -> None:
    response = post_chat(base_url, json=[1, 2, 3])
    assert_error_shape(response, 400, "invalid_request_error")


def test_unknown_model(base_url: str) -> None:
    error = assert_error_shape(
        post_chat(base_url, json={**VALID, "model": "gpt-4o"}), 404, "model_not_found"
    )
    assert error["param"] == "model"
    assert "smollm2-135m-instruct" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_huge_max_tokens_is_a_clear_400(base_url: str, stream: bool) -> None:
    response = post_chat(base_url, json={**VALID, "max_tokens": 10**9, "stream": stream})
    error = assert_error_shape(response, 400, "context_length_exceeded")
    assert error["param"] == "max_tokens"
    assert "at most" in error["message"]


def test_prompt_longer_than_context(base_url: str) -> None:
    long_text = "please help me with my order " * 600  # ~3,600 tokens > 2,048 context
    body = {**VALID, "messages": [{"role": "user", "content": long_text}]}
    error = assert_error_shape(post_chat(base_url, json=body), 400, "context_length_exceeded")
    assert error["param"] == "messages"


def test_completion_prompt_longer_than_context(base_url: str) -> None:
    body = {"model": VALID["model"], "prompt": "where is my parcel " * 800, "max_tokens": 4}
    response = httpx.post(f"{base_url}/v1/completions", json=body, timeout=60)
    error = assert_error_shape(response, 400, "context_length_exceeded")
    assert error["param"] == "prompt"


@pytest.mark.parametrize("prompt", ["", [""]])
def test_empty_completion_prompt_is_a_400_not_an_engine_failure(
    base_url: str, prompt: str | list[str]
) -> None:
    # found by schemathesis: vLLM refuses an empty prompt with its own error type,
    # which was reported as a 500 generation_error
    body = {"model": VALID["model"], "prompt": prompt, "max_tokens": 4}
    response = httpx.post(f"{base_url}/v1/completions", json=body, timeout=60)
    assert "empty" in assert_error_shape(response, 400, "invalid_request_error")["message"]


def test_bulk_products_naming_one_id_twice_are_refused(base_url: str) -> None:
    # found by schemathesis: both entries were inserted and the database's unique
    # constraint turned the request into a 500
    product = {"product_id": "twice", "name": "Kettle", "category": "kitchen"}
    response = httpx.post(
        f"{base_url}/admin/catalog/products:bulk",
        json={"products": [product, {**product, "name": "Kettle 2"}]},
        headers={"X-Concierge-Tenant": "bad-input-products"},
        timeout=60,
    )
    error = assert_error_shape(response, 400, "invalid_request_error")
    assert error["param"] == "products" and "'twice'" in error["message"]


@pytest.mark.parametrize("field", ["best_of", "suffix"])
def test_unsupported_completion_features_are_refused(base_url: str, field: str) -> None:
    body = {"model": VALID["model"], "prompt": "hi", field: 3 if field == "best_of" else "x"}
    response = httpx.post(f"{base_url}/v1/completions", json=body, timeout=60)
    assert assert_error_shape(response, 400, "invalid_request_error")["param"] == field


def test_ten_megabyte_body_with_length(base_url: str) -> None:
    payload = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * 10_000_000
    payload += b'"}]}'
    response = post_chat(base_url, content=payload, headers={"content-type": "application/json"})
    assert_error_shape(response, 413, "payload_too_large")


def test_ten_megabyte_body_chunked_without_length(base_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "x", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"a" * 100_000
        yield b'"}]}'

    response = post_chat(base_url, content=chunks(), headers={"content-type": "application/json"})
    assert_error_shape(response, 413, "payload_too_large")


def test_unknown_route_and_wrong_method(base_url: str) -> None:
    assert_error_shape(httpx.get(f"{base_url}/v1/nothing", timeout=10), 404, "not_found")
    assert_error_shape(httpx.delete(f"{base_url}/v1/models", timeout=10), 405, "method_not_allowed")


def test_non_utf8_body(base_url: str) -> None:
    response = post_chat(
        base_url, content=b"\xff\xfe\x00garbage", headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 400, "invalid_request_error")


def test_server_keeps_serving_after_bad_input(base_url: str) -> None:
    for body in ([1], {"messages": None}, {**VALID, "max_tokens": -1}):
        post_chat(base_url, json=body)
    assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200
    response = post_chat(base_url, json={**VALID, "max_tokens": 8, "temperature": 0})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]


# --- bodies that routes and upload parsers read themselves (the trust probe's finding 5) ---

DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"documents": [{"id": "a", "title": "\xff", "text": "x"}]}', "not UTF-8"),
        (DEEP, "nested deeper"),
        (b'{"documents": [{"id": "a", "title": "t", "text": "\\ud800"}]}', "surrogate"),
    ],
)
def test_bulk_documents_bodies_that_broke_the_parser_are_400s(
    base_url: str, content: bytes, reason: str
) -> None:
    response = httpx.post(
        f"{base_url}/admin/kb/demo/documents:bulk",
        content=content,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    error = assert_error_shape(response, 400, "invalid_request_error")
    assert reason in error["message"]


def test_a_deeply_nested_faq_upload_is_a_400(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/admin/kb/demo/documents:bulk",
        files=[("files", ("faq.json", DEEP, "application/json"))],
        timeout=60,
    )
    error = assert_error_shape(response, 400, "invalid_request_error")
    assert "faq.json" in error["message"] and "nested deeper" in error["message"]


def test_event_payloads_and_attributes_that_cannot_be_stored_are_400s(base_url: str) -> None:
    customer = f"{base_url}/v1/customers/bad-input-1"
    assert httpx.put(customer, json={"name": "Ada"}, timeout=30).is_success
    refused = [
        b'{"kind": "note", "payload": {"text": "\\ud800"}}',  # lone surrogate (was a 500)
        b'{"kind": "note", "payload": {"text": "x", "extra": ' + b"[" * 100 + b"]" * 100 + b"}}",
    ]
    for content in refused:
        response = httpx.post(
            f"{customer}/events",
            content=content,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert_error_shape(response, 400, "invalid_request_error")
    nan = httpx.put(
        customer,
        content=b'{"name": "Ada", "attributes": {"score": NaN}}',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert_error_shape(nan, 400, "invalid_request_error")
    kept = httpx.get(customer, timeout=30)
    assert kept.status_code == 200 and kept.json()["attributes"] == {}
