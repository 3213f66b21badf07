"""The CPU other processes took during a measurement: machine-wide busy time less this
process's and its servers'."""

import math

import pytest

from bench.lib.machine import CpuSnapshot


def test_others_are_what_neither_we_nor_our_servers_used() -> None:
    start = CpuSnapshot(wall=10.0, busy=100.0, own=5.0, served=20.0)
    end = CpuSnapshot(wall=12.0, busy=104.0, own=5.5, served=22.5)
    assert end.others_since(start) == pytest.approx((4.0 - 0.5 - 2.5) / 2.0)


def test_others_never_go_below_zero() -> None:
    start = CpuSnapshot(wall=0.0, busy=10.0, own=0.0)
    assert CpuSnapshot(wall=1.0, busy=10.01, own=0.5).others_since(start) == 0.0


def test_no_time_or_no_proc_stat_is_not_a_figure() -> None:
    start = CpuSnapshot(wall=1.0, busy=10.0, own=0.0)
    assert math.isnan(CpuSnapshot(wall=1.0, busy=12.0, own=0.0).others_since(start))
    assert math.isnan(CpuSnapshot(wall=2.0, busy=0.0, own=0.0).others_since(start))


class FakeServer:
    def cpu_seconds(self) -> float:
        return 7.0


def test_a_snapshot_adds_up_its_servers() -> None:
    assert CpuSnapshot.now(FakeServer(), FakeServer()).served == 14.0
