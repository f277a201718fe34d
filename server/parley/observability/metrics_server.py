"""``/metrics`` on an address of its own: ``PARLEY_METRICS_HOST:PARLEY_METRICS_PORT``.

It runs in a thread of the ``parley serve`` process. With one worker that
process is the worker, and the metrics are in its memory; with several it is
uvicorn's supervisor, which serves nothing else and reads the workers'
metric files. Either way one port gives the whole server's metrics.

The address is meant to be private (``127.0.0.1`` by default, or a network
only Prometheus reaches). When ``PARLEY_METRICS_TOKEN`` is set, it is
required here too.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from parley.observability.exposition import authorized, render

log = logging.getLogger(__name__)


class MetricsServer:
    def __init__(self, host: str, port: int, *, token: str | None) -> None:
        """Binds at once: an address in use raises :class:`OSError` here."""
        self._http = _Server(host, port, token)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self._http.server_address[1]
        return port

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="parley-metrics", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.address_family = _family(host)
        self.token = token
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print the traceback to stderr, past the log format.
        log.exception("metrics port: a scrape from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._plain(404, "Not found: metrics are at /metrics.\n")
        elif not authorized(self.headers.get("Authorization"), self.server.token):
            self._plain(401, "A valid metrics token is required.\n", bearer=True)
        else:
            body, content_type = render(self.headers.get("Accept"))
            self._send(200, body, content_type)

    def _plain(self, status: int, text: str, *, bearer: bool = False) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", bearer=bearer)

    def _send(self, status: int, body: bytes, content_type: str, *, bearer: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if bearer:
            self.send_header("WWW-Authenticate", 'Bearer realm="metrics"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes every few seconds would drown the log (and it would bypass
        # Parley's log format, writing to stderr directly).
        log.debug("metrics port: " + format, *args)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
