"""Prepared model folders are verified against their manifest and rebuilt when damaged."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.prepare import (
    models_dir,
    prepare_model,
    sha256_file,
    verify_folder,
)
from models.registry import DEFAULT_GENERATION_MODEL, ModelRegistry, PackagedGGUF


def test_a_corrupted_conversion_is_rebuilt(data_dir: Path, tmp_path: Path) -> None:
    spec = ModelRegistry().resolve(DEFAULT_GENERATION_MODEL)
    source = Path(prepare_model(spec, data_dir).location)
    copy = models_dir(tmp_path) / DEFAULT_GENERATION_MODEL
    shutil.copytree(source, copy)
    with (copy / "model.safetensors").open("r+b") as handle:
        handle.seek(-10, 2)
        handle.write(b"\x00" * 10)
    assert isinstance(spec.source, PackagedGGUF)
    expected = sha256_file(spec.source.locate())
    assert verify_folder(copy, expected_source_sha256=expected) is not None
    rebuilt = prepare_model(spec, tmp_path)
    assert rebuilt.converted
    assert verify_folder(copy, expected_source_sha256=expected) is None
    assert not list(copy.parent.glob(".*.tmp-*")), "staging folders must not be left behind"
