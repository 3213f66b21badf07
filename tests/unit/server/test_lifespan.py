"""Where the server finds the generation model's tokenizer, for every way a model is named."""

from __future__ import annotations

from pathlib import Path

from server.config import Settings
from server.lifespan import served_tokenizer_source


def test_a_model_given_as_a_folder_is_its_own_tokenizer_folder(tmp_path: Path) -> None:
    """Not ``<data_dir>/models/<folder name>``, which does not exist: prompts would then
    be budgeted at 3 characters per token instead of with the model's tokenizer."""
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    settings = Settings(data_dir=tmp_path / "data", model=str(model))
    assert served_tokenizer_source(settings) == model.resolve()


def test_a_registered_model_is_found_where_preparation_put_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model="qwen2.5-coder-0.5b-instruct")
    assert served_tokenizer_source(settings) is None  # not prepared in this data directory
    prepared = tmp_path / "models" / "qwen2.5-coder-0.5b-instruct"
    prepared.mkdir(parents=True)
    assert served_tokenizer_source(settings) == prepared


def test_a_hub_model_is_its_own_tokenizer_source(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model="Qwen/Qwen2.5-7B-Instruct")
    assert served_tokenizer_source(settings) == "Qwen/Qwen2.5-7B-Instruct"
