"""``concierge models train-classifiers``, run as a user would run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from models.classifiers.head_store import MANIFEST
from tests.classifier_sets import build_source
from tests.cli import invoke


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_source(tmp_path_factory.mktemp("shared-data"))


def test_cli_trains_then_reports_up_to_date(source: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = concierge("--source", str(source), data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "sentiment:" in first.stdout and "cv_macro_recall" in first.stdout
    assert str(data_dir / "classifiers") in first.stdout
    second = concierge("--source", str(source), data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout

    missing = concierge("--data", str(tmp_path / "absent"), data_dir=data_dir)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    alone = concierge("--tenant", "acme", data_dir=data_dir)
    assert alone.returncode == 2 and "go together" in alone.stderr

    heads = tmp_path / "heads"
    shipped = concierge("--data", str(source), "--out", str(heads), data_dir=data_dir)
    assert shipped.returncode == 0, shipped.stderr
    assert {p.name for p in heads.iterdir()} == {MANIFEST, "sentiment.npz", "intent.npz"}
    both = concierge(
        "--tenant", "acme", "--intents", "x.csv", "--out", str(heads), data_dir=data_dir
    )
    assert both.returncode == 2 and "--out" in both.stderr


def test_cli_without_data_points_at_the_data_and_the_shipped_heads(tmp_path: Path) -> None:
    absent = concierge("--data", str(tmp_path / "absent"), data_dir=tmp_path / "data")
    assert absent.returncode == 2
    assert "does not exist" in absent.stderr and "ship trained" in absent.stderr


def concierge(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``concierge models train-classifiers ARGS`` on ``data_dir``."""
    return invoke(
        "models",
        "train-classifiers",
        *args,
        env={"CONCIERGE_DATA_DIR": str(data_dir)},
        timeout=300,
    )
