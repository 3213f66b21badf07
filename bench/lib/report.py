"""Writing a benchmark's results: its marked section of docs/benchmarks.md, raw JSON, figures,
and the command line a report names, the same way for every benchmark."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lib.paths import OUT_DIR

log = logging.getLogger("bench.report")


def start_run(*quiet: str) -> str:
    """Logging as the benchmarks print it, bench/out/ made; the run's timestamp.

    vLLM logs to stdout by default: it is sent to stderr (before vllm is imported) so that
    stdout carries the report only. ``quiet`` loggers (httpx's line per request is always
    one) are raised to WARNING.
    """
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("httpx", *quiet):
        logging.getLogger(name).setLevel(logging.WARNING)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return time.strftime("%Y%m%d-%H%M%S")


def shown_command(module: str, argv: Sequence[str]) -> str:
    """How a report names the command that produced it: runnable from the repository root."""
    return shlex.join([".venv/bin/python", "-m", f"bench.{module}", *argv])


def raw_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line arguments as raw JSON stores them (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def write_json(path: Path, raw: dict[str, Any]) -> Path:
    """``raw`` as indented JSON at ``path``; returns ``path`` for the log line."""
    path.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return path


def replace_section(text: str, section: str, marks: tuple[str, str]) -> str:
    """``text`` with the block between ``marks`` replaced by ``section`` (which carries the
    marks itself); without the marks, ``section`` goes before the first ``## `` heading or
    other benchmark's section (whichever comes first: never inside another's marks), or at
    the end where there is none."""
    begin, end = marks
    if begin in text and end in text:
        before = text[: text.index(begin)]
        after = text[text.index(end) + len(end) :]
        return before + section + after
    starts = [m.start() + 1 for m in _SECTION_START.finditer(text)]
    if starts:
        at = min(starts)
        return text[:at] + section + "\n\n" + text[at:]
    return text.rstrip("\n") + "\n\n" + section + "\n"


_SECTION_START = re.compile(r"\n(?:## |<!-- [\w-]+:begin -->)")
"""Where a heading or another benchmark's marked section starts (at a line's start)."""


def update_doc(path: Path, section: str, marks: tuple[str, str]) -> None:
    """Replace a benchmark's marked section of ``path`` in place (a new file starts with a
    ``# Benchmarks`` title); written to a temporary file first, so a crash leaves the old one."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(replace_section(text, section, marks), encoding="utf-8")
    tmp.replace(path)


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display here); None, with a
    warning, where matplotlib (a dev dependency) is missing: the figures are an extra."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dev dependency
        log.warning("matplotlib missing: no plot")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: Any, fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay ``fig`` out, write it to ``path`` (its folder made) and free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
