"""Features read from the raw text of a message, next to its sentence embedding.

The sentence embedding knows what a message is about but is weak at how loudly it is
said: "ok" and "OK!!!" embed almost alike. The sentiment head therefore also gets a few
numbers computed here, the same way at training and at serving time:

* VADER's lexicon scores (negative, neutral, positive, compound): a hand-built lexicon
  with rules for negation, intensifiers, emoticons and caps (MIT, ``vaderSentiment``);
* shouting cues: "!" and "?" counts, runs like "!!!" or "?!", the share of ALL-CAPS words;
* frustration phrases: "third time", "still not", "ridiculous", "unacceptable", ...

``frustration_cues`` is also what the frustration flag of a sentiment result counts.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

CUE_FEATURE_NAMES = (
    "vader_negative",
    "vader_neutral",
    "vader_positive",
    "vader_compound",
    "exclamations",
    "questions",
    "punctuation_runs",
    "caps_share",
    "frustration_phrases",
    "sarcasm_markers",
)

FRUSTRATION_PHRASES = (
    r"\b(second|third|fourth|fifth|\d+(st|nd|rd|th)) time\b",
    r"\bridiculous\b",
    r"\bunacceptable\b",
    r"\bwaste of\b",
    r"\bfed up\b",
    r"\bsick (and tired|of)\b",
    r"\b(worst|terrible|horrible|awful|useless|pathetic|disgusting|joke|scam|shambles|"
    r"incompetent|garbage|rubbish|unusable|clueless|idiots?|morons?|disgrace\w*)\b",
    r"\bsick to death\b",
    r"\bnobody (cares|helps|answers)\b",
    r"\bno one (cares|helps|answers)\b",
    r"\b(so|very|extremely|really) (frustrated|annoyed|angry|disappointed)\b",
    r"\b(frustrat\w*|furious|outraged?|outrageous|infuriat\w*|livid|fuming|seething|"
    r"exasperat\w*|appall?(?:ed|ing)|contempt\w*|disgusted)\b",
    r"\b(taking the (piss|mick|mickey)|having a laugh|beyond a joke|clowns|cowboys|"
    r"the lot of you|bunch of (idiots|amateurs|clowns|crooks))\b",
    # French
    r"\b(inadmissible|inacceptable|scandaleu\w*|honteu\w*|lamentable|nul|"
    r"n'importe quoi|ras[- ]le[- ]bol|j'en ai (marre|assez)|marre|furieu\w*|"
    r"exaspér\w*|énerv\w*|agac\w*|une blague|foutez|se moque\w*|arnaque\w*|"
    r"abusé|foutage de gueule|se fout\w*|de la marde|en beau (maudit|fusil)|tanné|"
    r"écœuré|ça n'a pas de bon sens|ridicule|cirque|mécontente?|pas contente?|"
    r"pas satisfaite?)\b",
    r"\b(deuxième|troisième|énième) fois\b",
    # German
    r"\b(unverschämt|frechheit|unmöglich|katastrophe|sauer|wütend|reicht mir)\b",
    # Chinese (no word boundaries)
    r"太差|垃圾|气死|受够|无语|忍无可忍|骗子|坑人|什么破|太过分|过分了|愤怒|恶心|离谱|烦死|"
    r"差评|欺负|耍我|玩我|服了|敷衍|糊弄|搞什么|怎么回事啊|第[二三四五几]次|每次都|"
    r"气炸|火大|恼火|坑爹|烂透|烂死|太烂|真烂|烂到家|(?:极其|非常|十分|强烈|极度)不满|欺骗",
)
_FRUSTRATION = re.compile("|".join(f"(?:{p})" for p in FRUSTRATION_PHRASES), re.IGNORECASE)
_SOFTENED = re.compile(
    r"(?:slightly|a bit|a little|somewhat|mildly|kind of|un peu|un poil|légèrement|有点|有些|稍微)"
    r"\W{0,3}(?:\w+\W{1,3})?$|^\W{0,3}un peu\b",
    re.IGNORECASE,
)
"""A softener just before a phrase ("slightly frustrating", 有点无语) or "un peu" just after
("ça m'énerve un peu"): annoyance an answer fixes, not a customer to hand over."""


def _strong_phrases(text: str) -> set[str]:
    """The frustration phrases of ``text`` that no softener tones down."""
    found = set()
    for match in _FRUSTRATION.finditer(text):
        before = text[max(0, match.start() - 20) : match.start()]
        after = text[match.end() : match.end() + 10]
        if _SOFTENED.search(before) or re.match(r"\W{0,3}un peu\b", after, re.IGNORECASE):
            continue
        found.add(match.group(0).lower())
    return found


SARCASM_MARKERS = (
    # English: praise that opens a complaint, thanks for the failure
    r"^\W*(?:oh |well |just |yeah )(?:great|brilliant|fantastic|perfect|wonderful|lovely|"
    r"awesome|marvellous|superb)\b",
    r"^\W*(?:great|brilliant|fantastic|perfect|wonderful|lovely|awesome|marvellous|superb|"
    r"nice one)\W+(?:\w+ )?(?:another|again|more|once more)\b",
    r"\b(?:thanks|thank you) (?:so much |a lot |very much )?(?:for nothing|again|guys)\b",
    r"\b(?:money well spent|so glad|love how|love that|yeah right|what a surprise|as usual|"
    r"like clockwork|how wonderful|just what i needed)\b",
    # French
    r"^\W*(?:super|génial|bravo|parfait|formidable|magnifique|top)\W+(?:\w+ )?(?:encore|"
    r"une fois de plus|à nouveau|de nouveau)\b",
    r"\b(?:merci pour (?:rien|la fidélité|les? \d)|j['’]adore (?:votre|vos|quand|comment)|"
    r"comme d['’]hab\w*|quelle surprise|vraiment top|trop bien)\b",
    r"\bvraiment\W*$",
    # Chinese (no word boundaries)
    r"呵呵|好家伙|厉害厉害|可真会|真会|谢谢你们啊|真行|真棒啊|太棒了吧|666|服气",
    # the upside-down face, eye-roll and unamused emoji
    r"[🙃🙄😒]",
)
_SARCASM = re.compile("|".join(f"(?:{p})" for p in SARCASM_MARKERS), re.IGNORECASE | re.MULTILINE)
"""Written from the support set's train split and common usage: praise or thanks wrapped
around a failure ("great, another week without my order", 好家伙，又把我登出了). The head
learns how much a marker weighs against the rest of the message."""

_PUNCTUATION_RUN = re.compile(r"[!?！？]{2,}")
_WORD = re.compile(r"[^\W\d_]{2,}")

_analyzer: Any = None
_analyzer_lock = threading.Lock()


def _vader() -> Any:
    """VADER's analyzer, built once on first use (it reads its lexicon file, ~100 ms)."""
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
                SentimentIntensityAnalyzer,
            )

            _analyzer = SentimentIntensityAnalyzer()
        return _analyzer


def vader_scores(text: str) -> dict[str, float]:
    """VADER's ``neg``, ``neu``, ``pos`` and ``compound`` for one text."""
    scores: dict[str, float] = _vader().polarity_scores(text)
    return scores


def frustration_cues(text: str) -> int:
    """How many frustration signals a text carries: phrases, "!!"/"?!" runs, shouted words.

    Each distinct phrase match counts once, a run of two or more "!"/"?" counts once, and
    two or more ALL-CAPS words of three letters or more count once.
    """
    found = len(_strong_phrases(text))
    found += 1 if _PUNCTUATION_RUN.search(text) else 0
    shouted = [w for w in _WORD.findall(text) if len(w) >= 3 and w.isupper()]
    found += 1 if len(shouted) >= 2 else 0
    return found


def cue_features(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """One row of ``CUE_FEATURE_NAMES`` values per text, unscaled (the head standardizes)."""
    rows = np.zeros((len(texts), len(CUE_FEATURE_NAMES)), dtype=np.float32)
    for i, text in enumerate(texts):
        vader = vader_scores(text)
        words = _WORD.findall(text)
        caps = sum(1 for w in words if len(w) >= 3 and w.isupper())
        rows[i] = (
            vader["neg"],
            vader["neu"],
            vader["pos"],
            vader["compound"],
            math.log1p(text.count("!") + text.count("！")),
            math.log1p(text.count("?") + text.count("？")),
            math.log1p(len(_PUNCTUATION_RUN.findall(text))),
            caps / len(words) if words else 0.0,
            math.log1p(len(_strong_phrases(text))),
            math.log1p(len(_SARCASM.findall(text))),
        )
    return rows
