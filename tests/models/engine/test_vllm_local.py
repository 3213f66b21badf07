"""The in-process engine's CPU thread setting: how many cores vLLM leaves to the API process."""

from __future__ import annotations

import os

import pytest

from models.engine.vllm_local import (
    RESERVED_CORES_ENV,
    apply_cpu_thread_settings,
    reserved_cores,
    usable_cores,
)


@pytest.mark.parametrize(
    ("configured", "cores", "expected"),
    [
        (None, 2, 0),  # a 2-core laptop: both cores compute, vLLM's 1 would halve them
        (None, 4, 0),
        (None, 16, None),  # a server: vLLM's own default (one core for the API process)
        (1, 2, 1),  # an operator's choice always wins
        (0, 64, 0),
    ],
)
def test_small_machines_give_the_engine_every_core(
    configured: int | None, cores: int, expected: int | None
) -> None:
    assert reserved_cores(configured, cores) == expected


def test_usable_cores_follows_the_affinity_mask() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_the_setting_reaches_the_environment_the_engine_core_inherits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(RESERVED_CORES_ENV, raising=False)
    apply_cpu_thread_settings(3)
    assert os.environ[RESERVED_CORES_ENV] == "3"


def test_an_operators_own_vllm_variable_wins_over_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RESERVED_CORES_ENV, "1")
    apply_cpu_thread_settings(None)
    assert os.environ[RESERVED_CORES_ENV] == "1"
    apply_cpu_thread_settings(0)  # an explicit Concierge setting is more specific
    assert os.environ[RESERVED_CORES_ENV] == "0"


def test_the_default_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESERVED_CORES_ENV, raising=False)
    apply_cpu_thread_settings(None)
    expected = reserved_cores(None)
    assert os.environ.get(RESERVED_CORES_ENV) == (None if expected is None else str(expected))
