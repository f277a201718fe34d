"""Start-up's objects are out of the cyclic collector's reach once Parley is ready."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from parley import heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()  # leave the test run's heap as it was
    gc.set_threshold(*thresholds)


class Cycle:
    partner: object


def test_settling_collects_the_garbage_and_freezes_what_lives(unfrozen: None) -> None:
    garbage = Cycle()
    garbage.partner = garbage
    gone = weakref.ref(garbage)
    del garbage
    kept = [{"lives": "as long as the process"}]
    heap.settle()
    assert gone() is None  # collected before the freeze, not frozen in
    assert gc.get_freeze_count() > 0
    assert all(o is not kept for o in gc.get_objects())  # frozen: the collector skips it


def test_settling_makes_full_collections_rarer_and_leaves_the_young_ones(unfrozen: None) -> None:
    young, middle, oldest = gc.get_threshold()  # CPython's defaults: 700, 10, 10
    heap.settle()
    assert gc.get_threshold() == (young, middle, heap.FULL_COLLECTION_EVERY)
    assert oldest < heap.FULL_COLLECTION_EVERY
