"""The load generator's commands: one JSON line each on stdin, one JSON line back.

::

    {"op": "prepare", "kind": "ws", "url": "ws://…/ws", "count": 32, ...}
    {"op": "prepare", ..., "urls": ["ws://…:A/ws", "ws://…:B/ws"]}  (round-robin)
    {"op": "fire", "timeout": 60, "offsets": [0.0, 0.013, …], "repeat": 1, "pause_s": 0}
                                           -> {"results": [StreamResult, ...]}
    {"op": "close"}
    {"op": "idle_open", "url": "ws://…/ws", "count": 1000, ...} -> {"open": 1000, ...}
    {"op": "idle_close"}
    {"op": "soak", "url": "ws://…/ws", "streams": 32, "seconds": 600, ...}
    {"op": "quit"}

``prepare`` opens the streams without timing anything (WebSocket: connect,
authenticate, ``start``; HTTP: a TCP connection), ``fire`` starts each at its
offset (none given: all at the same moment), ``repeat`` times in a row, and
times them, ``close`` closes them. Kinds:

* ``ws``: Parley's WebSocket protocol (``message`` -> ``accepted``, ``delta``…,
  ``done``), each message in a new conversation whose ``start`` is not timed;
* ``ws-new``: the same, timed from ``start`` (a new conversation's first reply);
* ``sse``: Parley's ``POST /v1/chat`` with ``"stream": true``;
* ``openai`` / ``anthropic``: the same request straight to the stub (the baseline),
  or to a peer's OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.common import StreamResult, reply_tokens
from bench.load.idle import IdleSockets
from bench.load.soak import soak
from bench.load.tally import describe
from bench.load.turns import Command, Turn, open_many, timed
from bench.processes import raise_file_limit


class Generator:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.refused: list[str] = []
        self.expected: list[str] = []
        self.idle = IdleSockets()

    async def handle(self, command: Command) -> dict[str, Any]:
        op = command["op"]
        if op == "prepare":
            return await self.prepare(command)
        if op == "fire":
            return await self.fire(
                float(command["timeout"]),
                offsets=[float(o) for o in command.get("offsets") or []],
                repeat=int(command.get("repeat", 1)),
                pause_s=float(command.get("pause_s", 0.0)),
            )
        if op == "close":
            await self.close()
            return {"closed": True}
        if op == "idle_open":
            return await self.idle.add(command)
        if op == "idle_close":
            return await self.idle.close()
        if op == "soak":
            return await soak(command)
        raise ValueError(f"unknown op {op!r}")

    async def prepare(self, command: Command) -> dict[str, Any]:
        await self.close()
        self.expected = reply_tokens(int(command["tokens"]))
        self.turns, self.refused = await open_many(command, int(command["count"]))
        return {"opened": len(self.turns), "refused": self.refused[:5]}

    async def fire(
        self, limit_s: float, offsets: list[float], repeat: int = 1, pause_s: float = 0.0
    ) -> dict[str, Any]:
        """Every stream, each starting at its offset (seconds; none: all at once) and
        asking ``repeat`` times in a row, ``pause_s`` apart. Results in stream order."""
        started = time.perf_counter()

        async def one(index: int, turn: Turn) -> list[StreamResult]:
            if index < len(offsets):
                await asyncio.sleep(max(0.0, started + offsets[index] - time.perf_counter()))
            out = []
            for attempt in range(repeat):
                if attempt:
                    await asyncio.sleep(pause_s)
                out.append(await timed(turn, self.expected, limit_s))
            return out

        ran = await asyncio.gather(*(one(i, t) for i, t in enumerate(self.turns)))
        wall = time.perf_counter() - started
        refused = [StreamResult(expected=len(self.expected), error=e) for e in self.refused]
        results = [result.to_json() for result in [*(r for rs in ran for r in rs), *refused]]
        return {"results": results, "wall_s": round(wall, 4)}

    async def close(self) -> None:
        turns, self.turns = self.turns, []
        await asyncio.gather(*(turn.close() for turn in turns), return_exceptions=True)


async def serve() -> None:
    raise_file_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    generator = Generator()
    try:
        while line := await reader.readline():
            command: Command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                answer = await generator.handle(command)
            except Exception as error:
                answer = {"generator_error": describe(error)}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        await generator.close()
        await generator.idle.close()


def main() -> None:
    import uvloop

    uvloop.run(serve())
