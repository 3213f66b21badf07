"""Which language a customer writes in, offline, in well under a millisecond.

``py3langid`` (BSD-3-Clause) is a naive Bayes model over byte n-grams covering 97
languages; its model ships inside the wheel as compressed numpy arrays (no pickle) and
loads once, on first use (about 0.3 s). Its probabilities are normalized, so the
confidence can be compared with a threshold.

Very short texts carry too few n-grams for a trustworthy guess ("ok", "Danke!", an
order number): with fewer than ``MIN_WORDS`` words, or a winning probability below
``MIN_CONFIDENCE``, the answer is ``DEFAULT_LANGUAGE`` ("en") with confidence
``FALLBACK_CONFIDENCE`` (0.2), so callers can tell a fallback from a detection. Scripts
that identify a language by themselves (CJK, Cyrillic, ...) are detected from any
length, because their n-grams are unambiguous.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

DEFAULT_LANGUAGE = "en"
MIN_WORDS = 3
MIN_CONFIDENCE = 0.5
FALLBACK_CONFIDENCE = 0.2
_WORD = re.compile(r"[^\W\d_]+")
# Han, Hiragana/Katakana, Hangul, Cyrillic, Greek, Arabic, Hebrew, Thai, Devanagari
_SELF_IDENTIFYING = re.compile(
    r"[\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af\u0400-\u04ff\u0370-\u03ff"
    r"\u0600-\u06ff\u0590-\u05ff\u0e00-\u0e7f\u0900-\u097f]"
)

_identifier: Any = None
_identifier_lock = threading.Lock()


@dataclass(frozen=True)
class LanguageResult:
    """An ISO 639-1 code and the detector's probability for it."""

    code: str
    confidence: float


def _language_identifier() -> Any:
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import (  # type: ignore[import-untyped]
                MODEL_FILE,
                LanguageIdentifier,
            )

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def detect_language(text: str) -> LanguageResult:
    """The language of ``text``; ``en`` with low confidence when it is too short to tell."""
    stripped = text.strip()
    if not stripped:
        return LanguageResult(DEFAULT_LANGUAGE, 0.0)
    code, probability = _language_identifier().classify(stripped)
    confidence = float(probability)
    script_says = len(_SELF_IDENTIFYING.findall(stripped)) >= 2
    too_short = len(_WORD.findall(stripped)) < MIN_WORDS
    if not script_says and (too_short or confidence < MIN_CONFIDENCE):
        return LanguageResult(DEFAULT_LANGUAGE, FALLBACK_CONFIDENCE)
    return LanguageResult(str(code), round(confidence, 4))
