"""The fake LLM vendor and token minting, over HTTP, for tests that run in another process.

The JavaScript client's tests run in Node against a real Parley server; they
script the fake vendor and get tokens through this small server, which the
pytest process (owner of the fake) runs on its own thread:

- ``POST /scripts`` with a list of :class:`~support.fake_llm.Script` fields
  queues those scripts (tool calls as ``[name, arguments]`` lists);
- ``POST /release`` lets held streams finish;
- ``POST /held`` ``{"count"}`` answers once that many streams hold;
- ``GET /requests`` ``{"count"}``: upstream requests since the test started;
- ``POST /token`` ``{"ttl_seconds"?, "user"?}`` mints ``{"user_id", "token"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parley.examples.background import BackgroundServer
from support.fake_llm import FakeLLM, Script

TokenMaker = Callable[..., tuple[str, str]]
HELD_TIMEOUT_SECONDS = 20.0


class FakeControl:
    def __init__(self, fake: FakeLLM, make_token: TokenMaker) -> None:
        self.fake = fake
        self.make_token = make_token
        self._server = BackgroundServer(
            Starlette(
                routes=[
                    Route("/scripts", self._scripts, methods=["POST"]),
                    Route("/release", self._release, methods=["POST"]),
                    Route("/held", self._held, methods=["POST"]),
                    Route("/requests", self._requests, methods=["GET"]),
                    Route("/token", self._token, methods=["POST"]),
                ]
            )
        )

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> FakeControl:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.release()  # a held stream must not outlive the test
        self._server.stop()

    async def _scripts(self, request: Request) -> Response:
        fields: list[dict[str, Any]] = await request.json()
        scripts = [Script(**_script_fields(each)) for each in fields]
        self.fake.enqueue(*scripts)
        return JSONResponse({"queued": len(scripts)})

    async def _release(self, request: Request) -> Response:
        self.fake.release()
        return JSONResponse({})

    async def _held(self, request: Request) -> Response:
        count = int((await request.json())["count"])
        await asyncio.to_thread(self.fake.wait_for_held, count, HELD_TIMEOUT_SECONDS)
        return JSONResponse({})

    async def _requests(self, request: Request) -> Response:
        return JSONResponse({"count": len(self.fake.requests)})

    async def _token(self, request: Request) -> Response:
        options: dict[str, Any] = await request.json()
        user_id, token = self.make_token(options.pop("user", None), **options)
        return JSONResponse({"user_id": user_id, "token": token})


def _script_fields(fields: dict[str, Any]) -> dict[str, Any]:
    calls = fields.get("tool_calls")
    if calls is not None:
        fields = {**fields, "tool_calls": [tuple(call) for call in calls]}
    return fields
