"""Prepared model folders are verified against their manifest and rebuilt when damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.prepare import (
    MANIFEST_NAME,
    models_dir,
    prepare_model,
    sha256_file,
    verify_folder,
    write_manifest,
)
from models.registry import DEFAULT_GENERATION_MODEL, ModelRegistry


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "weights.bin").write_bytes(bytes(range(256)) * 64)
    write_manifest(model, "tiny", "tiny.gguf", "abc123")
    return model


def test_an_intact_folder_verifies(folder: Path) -> None:
    assert verify_folder(folder, expected_source_sha256="abc123") is None
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {"config.json", "weights.bin"}
    assert manifest["files"]["weights.bin"]["sha256"] == sha256_file(folder / "weights.bin")


def test_a_flipped_byte_is_caught(folder: Path) -> None:
    data = bytearray((folder / "weights.bin").read_bytes())
    data[100] ^= 0xFF
    (folder / "weights.bin").write_bytes(bytes(data))
    assert verify_folder(folder) == "checksum mismatch in weights.bin"


def test_truncation_and_loss_are_caught(folder: Path) -> None:
    (folder / "weights.bin").write_bytes(b"short")
    assert verify_folder(folder) == "size mismatch in weights.bin"
    (folder / "weights.bin").unlink()
    assert verify_folder(folder) == "missing weights.bin"


def test_a_changed_source_or_bad_manifest_means_rebuild(folder: Path) -> None:
    assert verify_folder(folder, expected_source_sha256="other") == "source changed"
    (folder / MANIFEST_NAME).write_text("{not json")
    assert (verify_folder(folder) or "").startswith("unreadable manifest")
    (folder / MANIFEST_NAME).unlink()
    assert verify_folder(folder) == "no manifest"
    assert verify_folder(folder / "absent") == "not prepared yet"


def test_the_default_model_is_reused_once_prepared(data_dir: Path) -> None:
    spec = ModelRegistry().resolve(DEFAULT_GENERATION_MODEL)
    prepare_model(spec, data_dir)  # converts on a fresh machine, reuses otherwise
    again = prepare_model(spec, data_dir)
    assert not again.converted
    folder = Path(again.location)
    assert folder == (models_dir(data_dir) / DEFAULT_GENERATION_MODEL).resolve()
    assert (folder / "model.safetensors").stat().st_size > 200_000_000
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (folder / "chat_template.jinja").is_file()
