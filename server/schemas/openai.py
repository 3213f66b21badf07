"""OpenAI-compatible request and response models for chat, completions and models.

Requests are validated strictly at the edge: sampling values out of range, an empty
``messages`` list, or features we do not implement (``n > 1``, tools) are refused
with a 400 naming the parameter, rather than silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_MESSAGES = 512
MAX_STOP_SEQUENCES = 8


def _refuse_if_set(value: Any, name: str) -> Any:
    """Refuse a feature this server does not implement, unless it is set to a no-op value."""
    if not (value is None or value is False or value == [] or value == {}):
        raise ValueError(f"{name} is not supported by this server")
    return value


class TextPart(BaseModel):
    """A text content part (the only part type a text model can use)."""

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """One message of a chat request."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """Content as plain text; parts are joined, a null assistant content is empty."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def engine_role(self) -> Literal["system", "user", "assistant"]:
        """``developer`` is OpenAI's newer name for ``system``."""
        return "system" if self.role == "developer" else self.role


class StreamOptions(BaseModel):
    """Streaming extras: a final usage chunk when asked for."""

    include_usage: bool = False


class _SamplingFields(BaseModel):
    """Fields shared by chat and text completions."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str = Field(min_length=1, max_length=256)
    # strict: OpenAI's API refuses ``true`` or ``"1"`` here, and so do we
    max_tokens: int | None = Field(None, ge=1, strict=True)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63, strict=True)
    stop: str | list[str] | None = None
    stream: bool = Field(False, strict=True)
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    n: int = 1
    user: str | None = Field(None, max_length=256)
    ignore_eos: bool = Field(False, description="vLLM extension: generate exactly max_tokens")

    @field_validator("n")
    @classmethod
    def _single_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else value or []
        if len(items) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        if any(not item for item in items):
            raise ValueError("stop sequences must be non-empty")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as a tuple, whichever form the client sent."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        """Whether a streaming client asked for the final usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingFields):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    # Accepted only so that asking for them is refused by name instead of ignored.
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    audio: Any = None
    prediction: Any = None

    @field_validator(
        "tools", "functions", "function_call", "logprobs", "top_logprobs", "logit_bias",
        "audio", "prediction",
    )  # fmt: skip
    @classmethod
    def _unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_if_set(value, info.field_name or "")

    @field_validator("tool_choice")
    @classmethod
    def _no_tool_choice(cls, value: Any) -> Any:
        if value not in (None, "none"):
            raise ValueError("tool_choice is not supported by this server")
        return value

    @field_validator("response_format")
    @classmethod
    def _text_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and value.get("type") not in (None, "text"):
            raise ValueError("only response_format type 'text' is supported")
        return value

    @model_validator(mode="after")
    def _max_completion_tokens(self) -> ChatCompletionRequest:
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(_SamplingFields):
    """``POST /v1/completions`` (one prompt per request)."""

    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1, strict=True)
    echo: bool = False
    logprobs: Any = None
    logit_bias: Any = None
    best_of: Any = None
    suffix: Any = None

    @field_validator("logprobs", "logit_bias", "suffix")
    @classmethod
    def _unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_if_set(value, info.field_name or "")

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, value: Any) -> Any:
        if value not in (None, 1):
            raise ValueError("best_of is not supported by this server")
        return value

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported")
        return value

    def prompt_text(self) -> str:
        """The single prompt as a string."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class Usage(BaseModel):
    """Token counts for one request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatChoiceMessage(BaseModel):
    """The assistant's reply in a non-streaming chat response."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    """One choice of a non-streaming chat response."""

    index: int = 0
    message: ChatChoiceMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    """Non-streaming ``chat.completion`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    """One choice of a non-streaming text completion."""

    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: None = None


class CompletionResponse(BaseModel):
    """Non-streaming ``text_completion`` object."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    max_model_len: int | None = None


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
