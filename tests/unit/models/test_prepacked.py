"""Packed linear layers: the same vectors as the plain ones, or the plain ones are kept."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.prepacked import PACKED_MAX_ROWS, prepack_linear_layers  # noqa: E402


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32)
    ).to(torch.bfloat16)


def _probe(model: torch.nn.Module, rows: int = 8) -> np.ndarray:
    torch.manual_seed(1)
    with torch.inference_mode():
        out = model(torch.randn(rows, 64, dtype=torch.bfloat16)).float()
    return torch.nn.functional.normalize(out, dim=1).numpy()


def test_packed_layers_give_the_plain_layers_vectors_for_short_and_long_inputs() -> None:
    model = _model()
    short, long = _probe(model), _probe(model, PACKED_MAX_ROWS + 1)
    packed = prepack_linear_layers(model, lambda: _probe(model))
    if packed == 0:
        pytest.skip("this torch build has no oneDNN linear operators")
    assert packed == 2
    assert np.allclose(_probe(model), short, atol=1e-2)
    assert np.allclose(_probe(model, PACKED_MAX_ROWS + 1), long, atol=1e-2)


def test_a_probe_that_changes_restores_the_plain_layers() -> None:
    model = _model()
    plain = [type(m) for m in model]
    answers = iter([np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32)])
    assert prepack_linear_layers(model, lambda: next(answers)) == 0
    assert [type(m) for m in model] == plain
