"""A real HTTP server that receives Parley's handoff webhook, for the tests.

It records every request (headers and raw body) and answers 503 to the next
``failures`` requests, 200 after that. Tests wait for requests with
:meth:`WebhookReceiver.wait_for` (a condition variable, no sleeping).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.examples.background import BackgroundServer

PATH = "/hooks/parley"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.failures = 0
        self._state = threading.Condition()
        app = Starlette(routes=[Route(PATH, self._receive, methods=["POST"])])
        self._server = BackgroundServer(app)

    @property
    def url(self) -> str:
        return self._server.url + PATH

    def start(self) -> WebhookReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self, *, failures: int = 0) -> None:
        with self._state:
            self.requests.clear()
            self.failures = failures

    async def wait_for(self, count: int, within: float = 20.0) -> list[Received]:
        def wait() -> list[Received]:
            with self._state:
                if not self._state.wait_for(lambda: len(self.requests) >= count, within):
                    raise TimeoutError(f"webhook: {len(self.requests)} of {count} requests")
                return list(self.requests)

        return await asyncio.to_thread(wait)

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._state:
            status = 503 if self.failures > 0 else 200
            self.failures = max(0, self.failures - 1)
            self.requests.append(Received(dict(request.headers), body, status))
            self._state.notify_all()
        return Response(status_code=status)
