"""A softmax classifier over sentence embeddings, stored as plain arrays.

Training fits it with scikit-learn; serving evaluates it with two numpy lines (a matrix
product and a softmax), so one message costs microseconds and the server never imports
scikit-learn. A head optionally takes extra per-text features (``text_cues``) after the
embedding; they are standardized with the training set's mean and divisor stored here.

``decision_bias`` is added to the logits before the softmax. Training chooses it by
cross-validation to trade one class's recall against another's (for sentiment: keep
negative recall high, because missing an unhappy customer costs more than a false
alarm); it is zero for heads that need no such trade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ARRAY_NAMES = ("coef", "intercept", "decision_bias", "cue_mean", "cue_divisor")


@dataclass(frozen=True)
class LinearHead:
    """``softmax([embedding, (cues - cue_mean) / cue_divisor] @ coef.T + intercept + bias)``."""

    labels: tuple[str, ...]
    coef: FloatArray  # (classes, dimension + cues)
    intercept: FloatArray  # (classes,)
    decision_bias: FloatArray  # (classes,)
    cue_mean: FloatArray  # (cues,), empty for embedding-only heads
    cue_divisor: FloatArray  # (cues,)

    def __post_init__(self) -> None:
        classes = len(self.labels)
        if classes < 2 or len(set(self.labels)) != classes:
            raise ValueError(f"a head needs two or more distinct labels, got {self.labels}")
        if self.coef.ndim != 2 or self.coef.shape[0] != classes:
            raise ValueError(f"coef has shape {self.coef.shape}, expected ({classes}, n)")
        for name in ("intercept", "decision_bias"):
            if getattr(self, name).shape != (classes,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, not ({classes},)")
        if self.cue_mean.shape != self.cue_divisor.shape or self.cue_mean.ndim != 1:
            raise ValueError("cue_mean and cue_divisor must be vectors of one length")

    @property
    def cue_count(self) -> int:
        return int(self.cue_mean.shape[0])

    @property
    def dimension(self) -> int:
        """Length of the embedding this head expects (without the cue features)."""
        return int(self.coef.shape[1]) - self.cue_count

    def logits(self, vectors: FloatArray, cues: FloatArray | None = None) -> FloatArray:
        """Raw scores, decision bias included; ``vectors`` is ``(n, dimension)``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}"
            )
        features = vectors
        if self.cue_count:
            if cues is None or cues.shape != (vectors.shape[0], self.cue_count):
                raise ValueError(f"this head needs {self.cue_count} cue features per text")
            scaled = (cues - self.cue_mean) / self.cue_divisor
            features = np.hstack([vectors, scaled.astype(np.float32)])
        out: FloatArray = features @ self.coef.T + self.intercept + self.decision_bias
        return out

    def probabilities(self, vectors: FloatArray, cues: FloatArray | None = None) -> FloatArray:
        """Softmax over ``logits``: one row per text, columns in ``labels`` order."""
        return softmax(self.logits(vectors, cues))

    def arrays(self) -> dict[str, FloatArray]:
        """The arrays to store (labels go to the manifest)."""
        return {name: np.asarray(getattr(self, name), dtype=np.float32) for name in ARRAY_NAMES}

    @classmethod
    def from_arrays(cls, labels: Sequence[str], arrays: Mapping[str, npt.ArrayLike]) -> LinearHead:
        """Rebuild a head from stored arrays; raises ``ValueError`` when they do not fit."""
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ValueError(f"arrays missing: {', '.join(missing)}")
        values = {name: np.asarray(arrays[name], dtype=np.float32) for name in ARRAY_NAMES}
        return cls(labels=tuple(labels), **values)


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return out
