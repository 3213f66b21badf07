"""The in-process engine's CPU thread setting: how many cores vLLM leaves to the API process."""

from __future__ import annotations

import os

import pytest

from models.engine import vllm_local
from models.engine.vllm_local import (
    RESERVED_CORES_ENV,
    VllmLocalEngine,
    apply_cpu_thread_settings,
    reserved_cores,
)
from server.config import Settings
from server.lifespan import build_engine


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No reserved-core variable, and whatever a test sets is removed afterwards (a plain
    ``delenv`` of a missing variable would not undo a later write)."""
    monkeypatch.setenv(RESERVED_CORES_ENV, "placeholder")
    monkeypatch.delenv(RESERVED_CORES_ENV)
    return monkeypatch


@pytest.mark.parametrize(
    ("configured", "cores", "expected"),
    [
        (None, 2, 0),  # a 2-core laptop: both cores compute, vLLM's 1 would halve them
        (None, 4, 0),
        (None, 16, None),  # a server: vLLM's own default
        (1, 2, 1),  # an operator's choice always wins
        (0, 64, 0),
    ],
)
def test_small_machines_give_the_engine_every_core(
    configured: int | None, cores: int, expected: int | None
) -> None:
    assert reserved_cores(configured, cores) == expected


@pytest.mark.parametrize(("cores", "expected"), [(2, "0"), (16, None)])
def test_the_default_follows_the_usable_cores(
    clean_env: pytest.MonkeyPatch, cores: int, expected: str | None
) -> None:
    clean_env.setattr(vllm_local, "usable_cores", lambda: cores)
    apply_cpu_thread_settings(None)
    assert os.environ.get(RESERVED_CORES_ENV) == expected


def test_the_setting_reaches_the_environment_the_engine_core_inherits(
    clean_env: pytest.MonkeyPatch,
) -> None:
    apply_cpu_thread_settings(3)
    assert os.environ[RESERVED_CORES_ENV] == "3"


def test_an_operators_own_vllm_variable_wins_over_the_default(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(RESERVED_CORES_ENV, "1")
    clean_env.setattr(vllm_local, "usable_cores", lambda: 2)
    apply_cpu_thread_settings(None)
    assert os.environ[RESERVED_CORES_ENV] == "1"
    apply_cpu_thread_settings(0)  # an explicit Concierge setting is more specific
    assert os.environ[RESERVED_CORES_ENV] == "0"


def test_the_setting_reaches_the_engine_that_applies_it() -> None:
    engine = build_engine(Settings(engine="vllm_local", cpu_reserved_cores=1))
    assert isinstance(engine, VllmLocalEngine)
    assert engine.config.cpu_reserved_cores == 1
