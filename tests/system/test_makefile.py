"""What the Makefile would run, read with ``make -n`` (prints commands, runs none of them).

The virtual environment is pointed at a folder that does not exist, so every install step is
out of date and printed, whatever state this checkout's ``.venv`` is in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # tests/system/ -> the repository
TORCH = "torch==2.13.0+cpu"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(tmp_path: Path, target: str, *assignments: str) -> list[str]:
    """The lines ``make -n target`` prints, with the venv at an absent ``tmp_path`` folder."""
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-C",
            str(REPO),
            target,
            f"VENV={tmp_path / 'venv'}",
            *assignments,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


def torch_install(lines: list[str]) -> str:
    """The one line that installs torch (it comes before anything else is installed)."""
    installs = [line for line in lines if " install " in line and "--upgrade pip" not in line]
    assert installs and TORCH in installs[0], installs
    return installs[0]


def test_torch_is_the_cpu_build_from_pips_sources_first_then_the_pytorch_index(
    tmp_path: Path,
) -> None:
    line = torch_install(dry_run(tmp_path, "install"))
    first, _, fallback = line.partition("||")
    assert "--index-url" not in first and "--extra-index-url" not in first
    assert f"--extra-index-url '{PYTORCH_CPU_INDEX}'" in fallback


def test_the_torch_index_is_overridable_and_can_be_switched_off(tmp_path: Path) -> None:
    mirror = "https://mirror.example/pytorch/whl/cpu"
    line = torch_install(dry_run(tmp_path, "install", f"TORCH_INDEX_URL={mirror}"))
    assert f"--extra-index-url '{mirror}'" in line and PYTORCH_CPU_INDEX not in line
    line = torch_install(dry_run(tmp_path, "install", "TORCH_INDEX_URL="))
    assert "index-url" not in line and "||" not in line


@pytest.mark.parametrize("target", ["run", "test"])
def test_run_and_test_need_no_training_data(tmp_path: Path, target: str) -> None:
    lines = dry_run(tmp_path, target)
    assert not [line for line in lines if "train-classifiers" in line or "../shared" in line]


def test_classifier_heads_retrains_the_shipped_set_from_data(tmp_path: Path) -> None:
    lines = dry_run(tmp_path, "classifier-heads", "DATA=/somewhere/data")
    loop = "\n".join(lines)  # make -n prints the loop's continued lines as they are
    assert "for model in all-minilm-l6-v2 embeddinggemma-300m" in loop  # one set per embedder
    assert f"{tmp_path / 'venv'}/bin/concierge models prepare $model" in loop
    assert "CONCIERGE_EMBEDDING_MODEL=$model" in loop
    assert "--data '/somewhere/data' --out models/classifiers/default_heads/$model" in loop
