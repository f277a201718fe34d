"""The lane background work waits in (conversation titles): a bounded number of
jobs at once, the rest in arrival order, and a full queue said as such."""

from __future__ import annotations

import asyncio

import pytest

from parley.lane import Lane


async def _one_turn() -> None:
    """One turn of the loop: every task just created runs up to its first wait."""
    await asyncio.sleep(0)


async def test_at_most_concurrency_hold_a_slot_and_the_rest_go_in_order() -> None:
    lane = Lane(2, 10)
    release = asyncio.Event()
    entered: list[int] = []
    holding = most = 0

    async def job(n: int) -> None:
        nonlocal holding, most
        async with lane.slot():
            entered.append(n)
            holding += 1
            most = max(most, holding)
            await release.wait()
            holding -= 1

    tasks = [asyncio.create_task(job(n)) for n in range(6)]
    await _one_turn()
    assert entered == [0, 1] and lane.waiting == 4
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4, 5]  # first come, first served
    assert most == 2 and lane.waiting == 0


async def test_a_waiter_that_gives_up_frees_its_place() -> None:
    lane = Lane(1, 10)
    async with lane.slot():
        waiter = asyncio.create_task(lane.slot().__aenter__())
        await _one_turn()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert lane.waiting == 0
    async with asyncio.timeout(1), lane.slot():  # the slot came back
        pass


async def test_a_backlog_says_when_there_is_no_room_to_wait() -> None:
    lane = Lane(1, 2)
    async with lane.slot():
        waiters = [asyncio.create_task(lane.slot().__aenter__()) for _ in range(2)]
        await _one_turn()
        assert not lane.has_room()
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    assert lane.has_room()
