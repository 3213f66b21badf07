"""What reading a message sentence by sentence costs the analysis stage.

The hand-over reason head reads a message whole and each of its sentences
(``models.classifiers.reading_units``), embedded in one batch with the message: on a
CPU that is more tokens through the embedder on the request path. This section of
``bench/reading.py`` times both ways over the turns of escalation sets.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.lib.stats import percentile
from models.classifiers import reading_units
from models.embedder import Embedder


def sentence_cost_section(embedder: Embedder, sets: list[Path]) -> tuple[list[str], dict[str, Any]]:
    """Each turn of ``sets`` embedded alone and with its sentences, after a warm-up."""
    turns = [t for path in sets for t in _turns(path)]
    embedder.embed_sync(turns[:8], purpose="query")
    ms: dict[str, list[float]] = {"message": [], "units": []}
    for turn in turns:
        for name, texts in (("message", [turn]), ("units", reading_units(turn))):
            started = time.perf_counter()
            embedder.embed_sync(texts, purpose="query")
            ms[name].append((time.perf_counter() - started) * 1000)
    several = [i for i, turn in enumerate(turns) if len(reading_units(turn)) > 1]
    raw = {
        f"{name}{suffix}_ms_{q}": percentile([v[i] for i in rows], q)
        for name, v in ms.items()
        for suffix, rows in (("", range(len(turns))), ("_several", several))
        for q in (50, 95)
    }
    line = "| {} | {:.0f} / {:.0f} | {:.0f} / {:.0f} |"
    return [
        "### What reading sentences costs the analysis",
        "",
        f"{len(turns)} turns of {', '.join(f'`{p.stem}`' for p in sets)}, {len(several)} "
        "with several sentences; embedding milliseconds p50 / p95.",
        "",
        "| turns | the message alone | the message and its sentences |",
        "|---|---:|---:|",
        line.format("all", *(raw[f"{n}_ms_{q}"] for n in ms for q in (50, 95))),
        line.format(
            "several sentences", *(raw[f"{n}_several_ms_{q}"] for n in ms for q in (50, 95))
        ),
    ], raw


def _turns(path: Path) -> list[str]:
    return [t for line in path.read_text("utf-8").splitlines() for t in json.loads(line)["turns"]]
