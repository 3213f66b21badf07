"""The OpenAI-compatible request bodies: what is refused rather than coerced."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.schemas.openai import ChatCompletionRequest, CompletionRequest

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
TEXT: dict[str, Any] = {"model": "m", "prompt": "hi"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", True),  # OpenAI refuses a boolean here; so do we, not max_tokens=1
        ("max_tokens", "16"),
        ("seed", "1"),
        ("stream", "yes"),
        ("temperature", float("nan")),
        ("top_p", float("inf")),
    ],
)
def test_values_of_the_wrong_type_are_refused_not_coerced(field: str, value: object) -> None:
    for model, body in ((ChatCompletionRequest, CHAT), (CompletionRequest, TEXT)):
        with pytest.raises(ValidationError, match=field):
            model.model_validate({**body, field: value})


def test_well_typed_values_pass() -> None:
    request = ChatCompletionRequest.model_validate(
        {**CHAT, "max_tokens": 8, "seed": 1, "stream": True, "temperature": 0}
    )
    assert (request.max_tokens, request.seed, request.stream) == (8, 1, True)
