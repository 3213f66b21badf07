"""Garbage-collection pauses: measured, and kept short on a server with a large heap.

CPython's cyclic collector stops the whole process while it runs. A full (generation 2)
collection walks every tracked object, and a serving process holds millions of them that
never die: the model libraries, tokenizers, the engine's Python side, pydantic schemas. Each
full collection then stalls every request at once, for as long as the walk takes.

``freeze_startup_heap`` moves everything alive after start-up into the permanent
generation (``gc.freeze``), which later collections skip: only objects made while serving
are walked. ``watch_gc_pauses`` times each collection into ``concierge_gc_pause_seconds``
so the effect can be seen, not assumed.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from core import metrics

log = logging.getLogger(__name__)

LONG_PAUSE_S = 0.1
"""A pause this long is logged: every request in flight felt it."""

_started: dict[str, float] = {}


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started["at"] = time.perf_counter()
    elif "at" in _started:
        paused = time.perf_counter() - _started.pop("at")
        generation = info.get("generation", "?")
        metrics.GC_PAUSE.labels(generation=str(generation)).observe(paused)
        if paused >= LONG_PAUSE_S:
            log.warning(
                "a generation-%s garbage collection stopped the process for %.0f ms "
                "(%s objects collected)",
                generation,
                paused * 1000,
                info.get("collected", "?"),
            )


def watch_gc_pauses() -> None:
    """Time every collection from now on (idempotent)."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections; how many
    objects were frozen. Called when start-up is over: what lives then lives for good."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects out of the garbage collector's walks", frozen)
    return frozen
