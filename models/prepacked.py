"""Linear layers whose weights are laid out once for oneDNN, for short CPU inputs.

Why: a query is 10-40 tokens, so each of EmbeddingGemma's 170 matrix products is small,
and torch's plain ``linear`` on bfloat16 re-arranges the weight into oneDNN's blocked
layout on every call. Packing it once at load time (the ``mkldnn`` operators torch's own
compiler uses when it freezes a model) halves a small product: 140 -> 76 us for a
23 x 768 x 1152 product on one core, and a query embedding takes 43 instead of 49 ms on
two cores (docs/benchmarks.md, "Which embedder serves"). For long inputs (document
batches) the packed layout is no faster, so those keep the plain weight: both are held
(about 185 MB more for EmbeddingGemma).

The operators are torch-internal, so ``prepack_linear_layers`` checks that they exist and
that a probe gives the same vectors as before, and otherwise leaves the model as it was.
This module imports torch: the embedder imports it when it loads a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

PACKED_MAX_ROWS = 256
"""Inputs with at most this many rows (tokens in the batch) use the packed weight."""


def prepack_linear_layers(model: Any, probe: Callable[[], np.ndarray]) -> int:
    """Give every ``torch.nn.Linear`` of ``model`` a packed weight for short inputs.

    ``probe`` embeds a fixed text; its result must not change (cosine 0.999 or more),
    else the layers are restored. Returns how many layers were packed (0: none).
    """
    mkldnn_ops = torch.ops.mkldnn
    if not (torch.backends.mkldnn.is_available() and hasattr(mkldnn_ops, "_linear_pointwise")):
        return 0
    before = probe()
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear) and child.weight.dtype == torch.bfloat16:
                    setattr(parent, name, _PrepackedLinear(child))
                    swapped.append((parent, name, child))
        after = probe()
    except RuntimeError as exc:  # an operator this build lacks, or refuses for a shape
        _restore(swapped)
        log.info("kept plain linear layers: packing failed (%s)", exc)
        return 0
    agreement = float(np.min(np.sum(before * after, axis=1)))
    if agreement < 0.999:
        _restore(swapped)
        log.warning("kept plain linear layers: packing changed a probe (cosine %.4f)", agreement)
        return 0
    return len(swapped)


def _restore(swapped: list[tuple[torch.nn.Module, str, torch.nn.Module]]) -> None:
    for parent, name, original in swapped:
        setattr(parent, name, original)


class _PrepackedLinear(torch.nn.Module):
    """``linear`` with the weight packed once; the plain layer serves long inputs."""

    def __init__(self, dense: torch.nn.Linear) -> None:
        super().__init__()
        self.dense = dense
        self.packed = torch.ops.mkldnn._reorder_linear_weight(dense.weight.detach(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() // x.shape[-1] > PACKED_MAX_ROWS:
            return self.dense(x)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.dense.bias, "none", [], "")
