"""The in-process engine's own tokenizers: one per tokenizing thread, never shared."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from models.engine.base import ChatMessage
from models.engine.vllm_local import TokenizerSet, VllmLocalEngine
from models.prepare import prepare_model
from models.registry import DEFAULT_GENERATION_MODEL, ModelRegistry
from server.config import Settings
from server.lifespan import build_engine


@pytest.fixture(scope="module")
def folder(data_dir: Path) -> str:
    """The default model's prepared folder (converted on a fresh machine, reused otherwise)."""
    return prepare_model(ModelRegistry().resolve(DEFAULT_GENERATION_MODEL), data_dir).location


def test_concurrent_borrowers_each_get_a_tokenizer_of_their_own(folder: str) -> None:
    tokenizers = TokenizerSet()
    tokenizers.load(folder, 2)
    both_hold_one = threading.Barrier(2)
    held: list[Any] = []

    def borrow() -> None:
        with tokenizers.borrow() as tokenizer:
            held.append(tokenizer)
            both_hold_one.wait(timeout=30)  # neither gives its tokenizer back before this

    threads = [threading.Thread(target=borrow) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(held) == 2
    assert held[0] is not held[1]
    assert held[0].encode("where is my order?") == held[1].encode("where is my order?")


def test_a_borrower_beyond_the_loaded_copies_waits_for_one_to_come_back(folder: str) -> None:
    tokenizers = TokenizerSet()
    tokenizers.load(folder, 1)
    got: list[Any] = []
    with tokenizers.borrow() as first:
        waiting = threading.Thread(target=lambda: got.append(tokenizers.borrow().__enter__()))
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive(), "a second borrower got a tokenizer that was in use"
    waiting.join(timeout=30)
    assert got == [first]


def test_the_tokenizers_render_the_models_chat_template(folder: str) -> None:
    """Loaded from the prepared folder, they carry its chat template (the engine's own)."""
    tokenizers = TokenizerSet()
    tokenizers.load(folder, 1)
    with tokenizers.borrow() as tokenizer:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hello"}], add_generation_prompt=True, tokenize=False
        )
    assert "<|im_start|>user\nhello<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_the_engine_renders_prompts_with_its_own_tokenizers(folder: str) -> None:
    """No vLLM engine is built here, so rendering cannot lean on vLLM's pooled tokenizer:
    borrowing that one made vLLM deep-copy it on the event loop under concurrency."""
    engine = build_engine(Settings(engine="vllm_local"))
    assert isinstance(engine, VllmLocalEngine)
    engine._tokenizers.load(folder, 1)  # what start() does before building vLLM's engine
    ids = engine._render_chat([ChatMessage("user", "hello")])
    with engine._tokenizers.borrow() as tokenizer:
        rendered = tokenizer.decode(ids)
    assert rendered.endswith("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")
