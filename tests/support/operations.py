"""Helpers for the operations tests: an operator's REST client, the live event
stream, and reading socket frames until one that matters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from support.client import ChatClient, Frame

TIMEOUT_SECONDS = 20


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Operator:
    """An admin acting through ``/v1/admin`` (one server; any instance works)."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token
        self.headers = bearer(token)

    async def call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        response = await self.http.request(method, path, headers=self.headers, **options)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def queue(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/v1/admin/queue"))["queue"])

    async def take(self, conversation_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/v1/admin/conversations/{conversation_id}/takeover")

    async def release(self, conversation_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/v1/admin/conversations/{conversation_id}/release")

    async def say(self, conversation_id: str, text: str, **extra: Any) -> dict[str, Any]:
        return await self.call(
            "POST",
            f"/v1/admin/conversations/{conversation_id}/messages",
            json={"text": text, **extra},
        )

    async def transcript(self, conversation_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/admin/conversations/{conversation_id}")


class EventStream:
    """``GET /v1/admin/events``, read in the background into a queue."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def next(self, match: Callable[[str, dict[str, Any]], bool]) -> dict[str, Any]:
        """The next event that matches (earlier ones are dropped)."""
        while True:
            kind, data = await asyncio.wait_for(self.events.get(), TIMEOUT_SECONDS)
            if match(kind, data):
                return data

    async def _read(self, response: httpx.Response) -> None:
        kind = "message"
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                await self.events.put((kind, json.loads(line.removeprefix("data: "))))


@asynccontextmanager
async def event_stream(base_url: str, token: str) -> AsyncIterator[EventStream]:
    stream = EventStream()
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=None) as http,
        http.stream("GET", "/v1/admin/events", headers=bearer(token)) as response,
    ):
        assert response.status_code == 200
        reader = asyncio.create_task(stream._read(response))
        await stream.next(lambda kind, _: kind == "ready")  # subscribed from here on
        try:
            yield stream
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def frames_until(client: ChatClient, stop: Callable[[Frame], bool]) -> list[Frame]:
    """Every frame up to and including the first for which ``stop`` is true."""
    frames = []
    while True:
        frame = await client.receive()
        frames.append(frame)
        if stop(frame):
            return frames


def of_type(kind: str, **fields: Any) -> Callable[[Frame], bool]:
    return lambda frame: frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())
