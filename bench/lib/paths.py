"""Where the benchmarks read and write, so that no script works it out again."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "bench" / "out"
"""Raw results and server logs; ignored by git."""
DOC_PATH = REPO / "docs" / "benchmarks.md"
IMG_DIR = REPO / "docs" / "img"
SHARED_VAR = REPO / "var"
"""The data directory ``make run`` prepares: converted model and trained classifiers."""
SHARED_DATA = REPO.parent / "shared" / "data"
BITEXT_DIR = SHARED_DATA / "bitext-customer-support"
