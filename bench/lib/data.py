"""The benchmarks' inputs from ../shared/data, read one way: the same seed draws the same
prompts in every benchmark."""

from __future__ import annotations

import csv
import random
from pathlib import Path


def csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV file with a header, as read (no line ends rewritten)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def bitext_csv(data: Path) -> Path:
    """The Bitext CSV: ``data`` itself, or the first CSV file in the folder ``data``."""
    csv_path = data if data.is_file() else next(iter(sorted(data.glob("*.csv"))), None)
    if csv_path is None:
        raise SystemExit(f"no CSV file in {data}")
    return csv_path


def load_prompts(data: Path, count: int, seed: int) -> list[str]:
    """``count`` distinct Bitext instructions (``data``: folder or CSV), the same for every
    run with the same seed."""
    csv_path = bitext_csv(data)
    instructions = sorted({row["instruction"].strip() for row in csv_rows(csv_path)} - {""})
    if count > len(instructions):
        raise SystemExit(f"{count} prompts needed, {csv_path} has {len(instructions)}")
    return random.Random(seed).sample(instructions, count)


def bitext_rows(data: Path) -> list[dict[str, str]]:
    """The Bitext CSV's rows with ``\\n`` line ends (read in place, never copied)."""
    rows = csv_rows(bitext_csv(data))  # responses hold \r\n line ends
    return [{k: v.replace("\r\n", "\n") for k, v in row.items()} for row in rows]


def load_banking77(data: Path, split: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of Banking77's ``train`` or ``test`` split under ``data`` (the shared
    data folder)."""
    rows = csv_rows(data / "banking77" / f"{split}.csv")
    return [r["text"] for r in rows], [r["category"] for r in rows]
