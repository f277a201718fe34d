"""One stream of whichever kind: opened untimed, then timed, its failures kept as results.

Kinds: ``ws`` and ``ws-new`` (:mod:`bench.load.ws`), ``sse``, ``openai`` and
``anthropic`` (:mod:`bench.load.sse`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from bench.common import StreamResult
from bench.load.sse import HttpTurn, request_for
from bench.load.tally import describe
from bench.load.ws import WsTurn
from parley.auth.tokens import mint_token

OPEN_CONCURRENCY = 64  # connections opened at once while preparing
Command = dict[str, Any]


class Turn(Protocol):
    async def run(self, expected: list[str]) -> StreamResult: ...

    async def close(self) -> None: ...


def bearer(command: Command, user: str) -> str:
    return mint_token(command["secret"], user_id=user, name="Bench", ttl_seconds=7200)


def url_for(command: Command, index: int) -> str:
    """Stream ``index``'s server: with ``urls`` (several instances behind one route)
    the streams go to each in turn, so a round splits evenly across them."""
    urls = command.get("urls") or [command["url"]]
    return str(urls[index % len(urls)])


async def open_turn(command: Command, index: int) -> Turn:
    kind, url = command["kind"], url_for(command, index)
    user = f"{command['users']}.{index}"
    if kind in ("ws", "ws-new"):
        deflate = bool(command.get("deflate", True))
        token = bearer(command, user)
        return await WsTurn.open(url, token, command["agent"], deflate, kind == "ws-new")
    token = f"Bearer {bearer(command, user)}" if kind == "sse" else ""
    return await HttpTurn.open(url, request_for(command, token), kind)


async def open_many(command: Command, count: int) -> tuple[list[Turn], list[str]]:
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(index: int) -> Turn:
        async with gate:
            return await open_turn(command, index)

    opened = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    turns = [turn for turn in opened if not isinstance(turn, BaseException)]
    errors = [describe(error) for error in opened if isinstance(error, BaseException)]
    return turns, errors


async def timed(turn: Turn, expected: list[str], limit_s: float) -> StreamResult:
    try:
        async with asyncio.timeout(limit_s):
            return await turn.run(expected)
    except TimeoutError:
        return StreamResult(expected=len(expected), error=f"timed out after {limit_s:g} s")
    except Exception as error:
        return StreamResult(expected=len(expected), error=describe(error))
