"""Which token counter prompt budgets use, for every place a model's tokenizer can be."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.pipeline.tokens import CharacterEstimate, ModelTokenizer, load_token_counter


def test_a_folder_without_tokenizer_files_is_estimated_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "config.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        counter = load_token_counter(tmp_path)
    assert isinstance(counter, CharacterEstimate)
    assert "no tokenizer in" in caplog.text and "tokenizer.json" in caplog.text


def test_an_unloadable_hub_id_falls_back_to_the_estimate(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here: the cache has no such id
    with caplog.at_level(logging.WARNING):
        counter = load_token_counter("concierge-tests/no-such-model")
    assert isinstance(counter, CharacterEstimate)
    assert "cannot load the tokenizer of concierge-tests/no-such-model" in caplog.text


def test_a_prepared_model_folder_counts_with_its_own_tokenizer() -> None:
    folder = Path("var/models/smollm2-135m-instruct")
    if not (folder / "tokenizer.json").exists():
        pytest.skip("the shipped model is not prepared in ./var")
    counter = load_token_counter(folder)
    assert isinstance(counter, ModelTokenizer)
    assert counter.count("Hello there, how long does shipping take?") < 15
