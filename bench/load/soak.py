"""Steady load for the soak: clients asking for replies back to back until a deadline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.common import reply_tokens
from bench.load.tally import describe
from bench.load.turns import Command, Turn, open_turn, timed
from bench.load.ws import WsTurn

REPLY_TIMEOUT_SECONDS = 120.0
REFUSED_BACKOFF_SECONDS = 1.0  # the server refused a connection: give it a moment


@dataclass
class SoakTally:
    replies: int = 0
    failed: int = 0
    tokens: int = 0
    lost: int = 0


async def soak(command: Command) -> dict[str, Any]:
    """``streams`` clients asking for replies back to back for ``seconds``.

    Each client starts a new conversation every ``per_conversation`` replies,
    so the prompt (and Parley's history cache) stays small.
    """
    deadline = time.monotonic() + float(command["seconds"])
    expected = reply_tokens(int(command["tokens"]))
    tally = SoakTally()
    errors: list[str] = []

    async def client(index: int) -> None:
        serial = 0
        while time.monotonic() < deadline:
            serial += 1
            sub = {**command, "kind": "ws", "users": f"{command['users']}.{index}"}
            try:
                turn = await open_turn(sub, serial)
                if isinstance(turn, WsTurn):
                    turn.renew = False  # ``per_conversation`` replies in one conversation
            except Exception as error:
                errors.append(describe(error))
                await asyncio.sleep(REFUSED_BACKOFF_SECONDS)
                continue
            try:
                await conversation(turn, command, expected, deadline, tally, errors)
            finally:
                await turn.close()

    await asyncio.gather(*(client(i) for i in range(int(command["streams"]))))
    return {**tally.__dict__, "error_samples": sorted(set(errors))[:5]}


async def conversation(
    turn: Turn,
    command: Command,
    expected: list[str],
    deadline: float,
    tally: SoakTally,
    errors: list[str],
) -> None:
    """Up to ``per_conversation`` replies on one socket; the first failure ends it."""
    for _ in range(int(command["per_conversation"])):
        if time.monotonic() >= deadline:
            break
        result = await timed(turn, expected, REPLY_TIMEOUT_SECONDS)
        tally.replies += 1
        tally.tokens += result.tokens
        tally.lost += result.lost
        if not result.ok:
            tally.failed += 1
            errors.append(result.error or "lost tokens")
            break
