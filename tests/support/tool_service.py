"""A real HTTP service for the tool tests: a call that hangs, and a record full of PII.

``/slow/{key}`` answers only once the test releases it (or never): the tests
use it for tool timeouts and for cancelling a reply while a call runs.
``/customers/{id}`` returns personal data, to check it is redacted before the
model reads it. Every request is counted, so a test can tell a call ran.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.examples.background import BackgroundServer

CUSTOMER = {
    "id": "c-7",
    "name": "Ada Lovelace",
    "email": "ada.lovelace@example.com",
    "card": "4111 1111 1111 1111",
    "note": "Prefers e-mail.",
}


class ToolService:
    """State shared between the service's thread and the test."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.entered = threading.Event()  # a /slow request arrived
        self._lock = threading.Lock()
        self._open = False  # /slow answers at once
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def count(self, path: str) -> None:
        with self._lock:
            self.calls[path] += 1

    def release(self) -> None:
        """Let every hanging /slow request answer, and later ones at once."""
        with self._lock:
            self._open = True
            waiting, self._waiting = self._waiting, []
        for loop, event in waiting:
            loop.call_soon_threadsafe(event.set)

    def reset(self) -> None:
        """Counters to zero; /slow hangs again."""
        with self._lock:
            self.calls.clear()
            self._open = False
        self.entered.clear()

    async def wait_released(self) -> None:
        with self._lock:
            if self._open:
                return
            event = asyncio.Event()
            self._waiting.append((asyncio.get_running_loop(), event))
        await event.wait()

    def app(self) -> Starlette:
        async def slow(request: Request) -> JSONResponse:
            self.count(request.url.path)
            self.entered.set()
            await self.wait_released()
            return JSONResponse({"id": request.path_params["key"], "status": "late"})

        async def customer(request: Request) -> JSONResponse:
            self.count(request.url.path)
            record: dict[str, Any] = {**CUSTOMER, "id": request.path_params["customer_id"]}
            return JSONResponse(record)

        return Starlette(
            routes=[
                Route("/slow/{key}", slow, methods=["GET"]),
                Route("/customers/{customer_id}", customer, methods=["GET"]),
            ]
        )

    def start(self) -> BackgroundServer:
        return BackgroundServer(self.app()).start()
