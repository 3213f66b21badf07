"""Generation engines behind one protocol: in-process vLLM or OpenAI-compatible remotes."""

from models.engine.base import (
    ChatMessage,
    EngineClient,
    GenerationChunk,
    ModelInfo,
    SamplingOptions,
)

__all__ = ["ChatMessage", "EngineClient", "GenerationChunk", "ModelInfo", "SamplingOptions"]
