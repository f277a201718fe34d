"""CPU of a round across processes: new Postgres backends count from zero, and a path
with no Postgres has no Postgres figure rather than a zero (bench/cpu.py)."""

from __future__ import annotations

import math

from bench.cpu import Snapshot, used, window


def test_backends_that_appear_during_a_round_count_from_zero() -> None:
    before = {10: 1.0, 11: 2.0}
    after = {10: 1.5, 11: 2.0, 12: 0.25}
    assert used(before, after) == 0.75


def test_unreadable_or_reused_pids_count_as_nothing() -> None:
    assert used({10: 5.0}, {10: 1.0}) == 0.0  # a new process behind an old pid
    assert used({10: math.nan}, {10: math.nan}) == 0.0


def test_a_window_of_parley_adds_its_backends_and_keeps_the_shared_apart() -> None:
    before = Snapshot(wall=1.0, parley=2.0, redis=1.0, backends={7: 0.5}, shared={1: 3.0})
    after = Snapshot(wall=3.0, parley=2.5, redis=1.5, backends={7: 0.75}, shared={1: 4.0})
    usage = window(before, after)
    assert (usage.wall, usage.parley, usage.redis) == (2.0, 0.5, 0.5)
    assert (usage.postgres, usage.postgres_shared) == (0.25, 1.0)
    assert usage.server_side == 1.25  # server + Redis + its backends, not the shared


def test_a_path_without_postgres_has_no_postgres_figure() -> None:
    usage = window(Snapshot(wall=0.0, parley=1.0), Snapshot(wall=1.0, parley=2.0))
    assert math.isnan(usage.postgres)
    assert usage.server_side == 1.0
