"""Lanes (accepts, titles): a bounded number of jobs at once, the rest in
arrival order, a full queue said as such, and nothing lost or doubled when a
burst of messages queues for the accept lane."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from conftest import TokenFactory
from parley.lane import Lane
from support.client import ChatClient
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

BURST = 24


async def _one_turn() -> None:
    """One turn of the loop: every task just created runs up to its first wait."""
    await asyncio.sleep(0)


async def test_at_most_concurrency_hold_a_slot_and_the_rest_go_in_order() -> None:
    lane = Lane(2)
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
    lane = Lane(1)
    async with lane.slot():
        waiter = asyncio.create_task(lane.slot().__aenter__())
        await _one_turn()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert lane.waiting == 0
    async with asyncio.timeout(1), lane.slot():  # the slot came back
        pass


async def test_zero_admits_everything_at_once() -> None:
    lane = Lane(0)
    async with contextlib.AsyncExitStack() as held:
        for _ in range(100):
            await held.enter_async_context(lane.slot())
        assert lane.waiting == 0 and lane.has_room()


async def test_a_backlog_says_when_there_is_no_room_to_wait() -> None:
    lane = Lane(1, backlog=2)
    async with lane.slot():
        waiters = [asyncio.create_task(lane.slot().__aenter__()) for _ in range(2)]
        await _one_turn()
        assert not lane.has_room()
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    assert lane.has_room()


@pytest.fixture(scope="module")
def one_at_a_time(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    with ParleyServer({**server_env, "PARLEY_ACCEPT_CONCURRENCY": "1"}, name="lane") as instance:
        yield instance


async def test_a_burst_that_queues_loses_and_doubles_nothing(
    one_at_a_time: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    for n in range(BURST):
        fake.enqueue(Script(chunks=[f"answer {n}"]))
    user, token = make_token()

    async def turn(n: int) -> tuple[str, str]:
        async with await ChatClient.connect(one_at_a_time.ws_url, token) as client:
            session = await client.start(agent="agent_gamma")
            accepted = await client.say(f"question {n}")
            reply = await client.reply(accepted["reply_id"])
            assert reply.done is not None and reply.done["status"] == "complete"
            return session["conversation_id"], reply.text

    outcomes = await asyncio.gather(*(turn(n) for n in range(BURST)))
    assert sorted(text for _, text in outcomes) == sorted(f"answer {n}" for n in range(BURST))
    rows = await db.fetch(
        "SELECT role, status FROM messages WHERE conversation_id = ANY($1)",
        [uuid.UUID(conversation) for conversation, _ in outcomes],
    )
    assert len(rows) == 2 * BURST  # one question and one answer each
    assert {(row["role"], row["status"]) for row in rows} == {
        ("user", "accepted"),
        ("assistant", "complete"),
    }
    usage = await db.fetchval("SELECT count(*) FROM llm_usage WHERE user_id = $1", user)
    assert usage == BURST
