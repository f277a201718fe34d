"""A TCP proxy in front of a Parley server whose connections a test can cut.

Cutting aborts both sides at once, as a network failure would: the client
sees its connection end without a close frame. New connections go to
``target``, which a test may switch to another instance meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 65536


class CuttableProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut_after_next_send = False
        self._server: asyncio.Server | None = None

    @property
    def ws_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://{self.host}:{port}/ws"

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Abort every connection now."""
        for writer in list(self._writers):
            writer.transport.abort()

    def cut_after_next_send(self) -> None:
        """Pass what the client sends next on to the server, then cut: the answer is lost."""
        self._cut_after_next_send = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, client=writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            self._writers -= {writer, up_writer}
            for each in (writer, up_writer):
                each.transport.abort()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client: asyncio.StreamWriter | None = None,
    ) -> None:
        """Copy one direction; ``client`` is given for the client's side."""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
                if client is not None and self._cut_after_next_send:
                    self._cut_after_next_send = False
                    writer.write_eof()  # the server reads the frame, then the end
                    client.transport.abort()
                    return
        writer.transport.abort()
