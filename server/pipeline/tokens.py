"""Counting tokens the way the served model does, to fit prompts into its context.

The prompt composer needs counts before it calls the engine. The served model's own
tokenizer is loaded from the prepared model folder when there is one (always for the
in-process engine; for a remote engine when the same model is prepared locally).
Otherwise a conservative estimate (3 characters per token; real BPE tokenizers average
about 4 on English support text) keeps prompts inside the window at some cost in
unused context, and the engine still refuses anything that does not fit.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

CHARS_PER_TOKEN_ESTIMATE = 3.0


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int:
        """Tokens ``text`` takes inside a prompt (no special tokens)."""
        ...


class CharacterEstimate:
    name = "estimate"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)


class ModelTokenizer:
    """The served model's tokenizer (a Hugging Face fast tokenizer from its folder)."""

    name = "model"

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(folder))

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))


def load_token_counter(model_folder: Path | None) -> TokenCounter:
    """The model's tokenizer when its folder is there, else the estimate (logged)."""
    if model_folder is not None and (model_folder / "tokenizer.json").exists():
        try:
            return ModelTokenizer(model_folder)
        except (OSError, ValueError) as exc:
            log.warning("cannot load the tokenizer from %s (%s); estimating", model_folder, exc)
    else:
        log.info("no local tokenizer for the served model; prompt budgets use an estimate")
    return CharacterEstimate()
