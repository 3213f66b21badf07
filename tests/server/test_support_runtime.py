"""The classifier slot: replies get a clear 503 until the classifiers exist, then load once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.classifiers import ClassifiersUnavailableError
from models.classifiers.slot import ClassifierSlot
from models.embedder import Embedder
from tests.models.test_classifiers import build_source


def test_a_missing_set_is_a_503_until_it_is_trained_then_it_is_loaded_once(
    tmp_path: Path, embedder: Embedder
) -> None:
    from models.classifiers import train_classifiers

    folder = tmp_path / "classifiers"
    slot = ClassifierSlot(folder)
    with pytest.raises(ClassifiersUnavailableError) as missing:
        slot()
    assert missing.value.status_code == 503
    assert "train-classifiers" in missing.value.message
    train_classifiers(embedder, build_source(tmp_path / "shared"), folder)
    loaded = slot()  # trained after the server started: the next reply picks it up
    shutil.rmtree(folder)
    assert slot() is loaded  # and keeps the loaded set without touching the disk again
