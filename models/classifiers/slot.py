"""``ClassifierSlot``: the classifiers, loaded on first use once their heads exist."""

from __future__ import annotations

import threading
from pathlib import Path

from models.classifiers.classifier_set import Classifiers


class ClassifierSlot:
    """Loads the classifiers once they exist; until then every reply gets a clear 503.

    Training (``concierge models train-classifiers``) may finish after the server
    started, so a failed load is retried on the next request instead of for ever.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._loaded: Classifiers | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Classifiers:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = Classifiers.load(self._directory)
            return self._loaded
