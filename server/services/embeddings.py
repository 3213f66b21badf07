"""``POST /v1/embeddings``: the process's embedder behind the OpenAI protocol.

The same model and normalization as the KB and history indexes, so a client can embed
its own texts and compare them with what Concierge retrieves.
"""

from __future__ import annotations

import base64

from core.errors import ContextLengthExceededError, InvalidRequestError, ModelNotFoundError
from models.embedder import Embedder
from server.schemas.retrieval import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)


class EmbeddingService:
    def __init__(self, embedder: Embedder, max_inputs: int, aliases: tuple[str, ...] = ()) -> None:
        self._embedder = embedder
        self._max_inputs = max_inputs
        self._names = {embedder.model_name, *aliases}

    async def create(self, body: EmbeddingRequest) -> EmbeddingResponse:
        texts = [body.input] if isinstance(body.input, str) else body.input
        if len(texts) > self._max_inputs:
            raise InvalidRequestError(
                f"{len(texts)} inputs; at most {self._max_inputs} per request", param="input"
            )
        if body.model is not None and body.model not in self._names:
            raise ModelNotFoundError(
                f"model {body.model!r} is not served here; embeddings come from "
                f"{self._embedder.model_name!r}",
                param="model",
            )
        tokens = await self._embedder.count_tokens(texts)
        if body.dimensions is not None and body.dimensions != self._embedder.dimension:
            raise InvalidRequestError(
                f"{self._embedder.model_name} returns {self._embedder.dimension} dimensions; "
                "it cannot shorten them",
                param="dimensions",
            )
        for position, count in enumerate(tokens):
            if count > self._embedder.max_tokens:
                raise ContextLengthExceededError(
                    f"input[{position}] has {count} tokens; {self._embedder.model_name} reads at "
                    f"most {self._embedder.max_tokens}",
                    param="input",
                )
        vectors = await self._embedder.embed(texts, purpose="api")
        data = [
            EmbeddingData(
                index=i,
                embedding=(
                    base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                    if body.encoding_format == "base64"
                    else vector.tolist()
                ),
            )
            for i, vector in enumerate(vectors)
        ]
        total = sum(tokens)
        return EmbeddingResponse(
            data=data,
            model=self._embedder.model_name,
            usage=EmbeddingUsage(prompt_tokens=total, total_tokens=total),
        )
