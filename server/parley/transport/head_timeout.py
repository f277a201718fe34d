"""An HTTP protocol that closes connections whose request head never completes.

uvicorn has no timeout for reading a request's line and headers: its only
timer is keep-alive, which any byte received cancels and which is not even
armed before a connection's first request. A client sending a header byte
every few seconds (slowloris) holds a connection, and with enough of them
all of the server's sockets, for as long as it likes.

:class:`HeadTimeoutProtocol` is uvicorn's httptools protocol with one timer
per connection: armed whenever the server waits for a request head (the
connection was made, or a response completed), disarmed when the head is
complete. If it fires, the connection is closed. ``parley serve`` passes it
to uvicorn as ``http=``; its limit is ``PARLEY_HEADER_TIMEOUT_SECONDS``.
Request bodies are not covered: the application reads them, and limits them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from parley.config import load_settings

log = logging.getLogger(__name__)


@functools.cache
def configured_timeout() -> float:
    # uvicorn builds protocols itself, in every worker process, from a class:
    # the setting reaches them through the environment, like every other one.
    return load_settings().header_timeout_seconds


class HeadTimeoutProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_timeout = configured_timeout()
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_received()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The WebSocket protocol owns the connection now and this one is never
        # told it was lost, so drop the parser here as uvicorn does there: it
        # holds this protocol's callbacks, a cycle that would otherwise live
        # until a full collection (docs/performance.md).
        self.parser = None  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        self._head_received()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request waiting in the queue has its head complete already.
        next_head_pending = not self.pipeline
        super().on_response_complete()
        if next_head_pending and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._head_received()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_received(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info(
                "closing a connection from %s: no complete request head in %gs",
                f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown address",
                self.head_timeout,
            )
            self.transport.close()
