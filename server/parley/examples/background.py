"""Serve an ASGI app on its own thread, on a port bound before it starts.

Binding first means the URL is known at once and early connections wait in
the listen backlog rather than being refused, so callers need no polling.
Used by ``parley serve`` (demo mode) and by the tests.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn

START_TIMEOUT = 10.0


class BackgroundServer:
    """``with BackgroundServer(app) as server: ... server.url ...``"""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = _listen(host, port)
        self._ready = threading.Event()
        config = uvicorn.Config(
            app,
            loop="asyncio",
            log_level="warning",
            access_log=False,
            log_config=None,  # leave logging to whoever runs us
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config, self._ready)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._socket.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        if self._thread is not None:  # already serving: ``with start_...() as server`` is fine
            return self
        self._thread = threading.Thread(target=self._run, name=f"serve:{self.port}", daemon=True)
        self._thread.start()
        self._ready.wait(START_TIMEOUT)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"the server on port {self.port} did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._ready.set()  # a failed start must not leave start() waiting


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._ready.set()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock
