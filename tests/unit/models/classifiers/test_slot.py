"""The classifier slot: the shipped heads load at once; without a qualifying set replies get
a clear 503 until one is trained, then it is loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.classifiers import ClassifiersUnavailableError, shipped_heads_dir
from models.classifiers.slot import ClassifierSlot
from tests.classifier_sets import local_set


def test_the_shipped_heads_serve_a_fresh_data_directory(tmp_path: Path) -> None:
    slot = ClassifierSlot(tmp_path / "classifiers", "all-minilm-l6-v2")  # as the lifespan does
    loaded = slot()
    assert loaded.shipped and loaded.version_folder == shipped_heads_dir("all-minilm-l6-v2")
    assert slot() is loaded


def test_a_missing_set_is_a_503_until_it_is_trained_then_it_is_loaded_once(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "classifiers"
    slot = ClassifierSlot(folder, "all-minilm-l6-v2", shipped=None)
    with pytest.raises(ClassifiersUnavailableError) as missing:
        slot()
    assert missing.value.status_code == 503
    assert "train-classifiers" in missing.value.message
    local_set(folder)  # trained after the server started: the next reply picks it up
    loaded = slot()
    assert not loaded.shipped
    shutil.rmtree(folder)
    assert slot() is loaded  # and keeps the loaded set without touching the disk again
