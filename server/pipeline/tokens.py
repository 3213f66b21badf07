"""Counting tokens the way the served model does, to fit prompts into its context.

The prompt composer needs counts before it calls the engine. The served model's own
tokenizer is loaded wherever the model comes from: the prepared model folder (always for
the in-process engine; for a remote engine when the same model is prepared locally), a
folder given by path, or a hub id (from the Hugging Face cache the engine filled, else
downloaded: a tokenizer is a few megabytes). Otherwise a conservative estimate (3
characters per token; real BPE tokenizers average about 4 on English support text) keeps
prompts inside the window at some cost in unused context, and the engine still refuses
anything that does not fit.
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


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
"""A folder with any of these holds a tokenizer ``transformers`` can load."""


class ModelTokenizer:
    """The served model's tokenizer (a Hugging Face tokenizer from its folder or hub id)."""

    name = "model"

    def __init__(self, source: Path | str) -> None:
        from transformers import AutoTokenizer

        if isinstance(source, Path):
            self._tokenizer: Any = AutoTokenizer.from_pretrained(str(source))
            return
        try:  # what the engine downloaded already, without touching the network
            self._tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except OSError:
            self._tokenizer = AutoTokenizer.from_pretrained(source)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))


def load_token_counter(source: Path | str | None) -> TokenCounter:
    """The model's tokenizer from its folder or hub id, else the estimate (logged)."""
    if isinstance(source, Path) and not any((source / name).exists() for name in TOKENIZER_FILES):
        log.warning(
            "no tokenizer in %s (none of %s); prompt budgets use an estimate of %.0f "
            "characters per token",
            source,
            ", ".join(TOKENIZER_FILES),
            CHARS_PER_TOKEN_ESTIMATE,
        )
        return CharacterEstimate()
    if source is None:
        log.warning("no tokenizer for the served model; prompt budgets use an estimate")
        return CharacterEstimate()
    try:
        counter = ModelTokenizer(source)
    except (OSError, ValueError) as exc:
        log.warning("cannot load the tokenizer of %s (%s); estimating", source, exc)
        return CharacterEstimate()
    log.info("prompt budgets count tokens with the tokenizer of %s", source)
    return counter
