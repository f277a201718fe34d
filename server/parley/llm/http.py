"""The HTTP side every vendor provider shares: a pooled aiohttp session, the
reply's lines (or raw chunks), and transport and status failures as
:class:`ProviderError`.

Direct aiohttp instead of the vendors' SDKs (httpx with anyio underneath):
a local stub's first token came 1.2 ms sooner and each streamed token cost
about half the CPU, which is what keeps Parley within its latency budget.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from parley import __version__
from parley.llm.base import ProviderError
from parley.llm.failures import is_transient_status, redact, retry_after, vendor_message

MAX_ERROR_BODY = 64 * 1024
MAX_LINE = 16 * 1024 * 1024  # far beyond any real event; stops a runaway line eating memory
# How long to wait for the end of a body whose last event has been read, so
# the connection goes back to the pool instead of paying a new TLS handshake.
# Short: it delays the end of the reply, and a missed reuse costs little.
DRAIN_TIMEOUT = 0.25

# Only these Pythons leak the transports of aborted TLS connections (CPython
# gh-118950); aiohttp warns when asked to clean up on the others.
_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13) <= sys.version_info < (3, 13, 1)


class RequestAuth(Protocol):
    """Credentials computed per request: a fresh bearer token, or a signature
    over the exact URL and body (AWS SigV4). Static keys are plain headers."""

    async def headers(self, url: URL, body: bytes) -> Mapping[str, str]: ...

    async def aclose(self) -> None: ...


class VendorHTTP:
    """Streams replies from one vendor endpoint over one keep-alive session.

    ``url`` is the endpoint; a request may name another URL on the same host
    (an Azure deployment, a Bedrock model). ``secret`` and ``secrets`` are
    scrubbed from every error message.
    """

    def __init__(
        self,
        vendor: str,
        url: str,
        headers: Mapping[str, str],
        *,
        secret: str | None,
        connect_timeout: float,
        transient_types: frozenset[str] = frozenset(),
        secrets: Iterable[str] = (),
        auth: RequestAuth | None = None,
    ) -> None:
        self._vendor = vendor
        self._url = URL(url)
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "User-Agent": f"parley/{__version__}",
            **headers,
        }
        self._secrets = (secret, *secrets)
        self._auth = auth
        self._transient_types = transient_types  # error types in a body that a retry can fix
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            # None: the router's first-token and idle timeouts cover reads, and
            # aiohttp re-arms a read timer for every chunk that arrives.
            sock_read=None,
        )
        # HTTPS_PROXY / NO_PROXY, read once as the SDKs did: aiohttp's own
        # trust_env looks them (and ~/.netrc) up in a thread on every request,
        # which cost half a millisecond per call.
        self._proxy, self._proxy_auth = _env_proxy(self._url)
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> URL:
        return self._url

    @asynccontextmanager
    async def lines(
        self, body: Mapping[str, Any], *, url: URL | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST ``body``; the block reads the 2xx reply's lines (without ``\\n``).

        Transport failures inside the block, and ``ValueError`` from parsing
        what it read, come out as transient :class:`ProviderError`. Leaving the
        block early closes the connection, which tells the vendor to stop.
        """
        async with self.chunks(body, url=url) as chunks:
            lines = _split_lines(chunks)
            try:
                yield lines
            finally:
                await lines.aclose()  # not left to the garbage collector's finalizer task

    @asynccontextmanager
    async def chunks(
        self, body: Mapping[str, Any], *, url: URL | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """As :meth:`lines`, but the block reads the body as it arrives, for
        binary framings (AWS event streams)."""
        response: aiohttp.ClientResponse | None = None
        complete = False
        target = url or self._url
        data = json.dumps(body).encode()
        try:
            headers = await self._auth.headers(target, data) if self._auth else None
            response = await self._open().post(
                target,
                data=data,
                headers=headers,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
            )
            if not 200 <= response.status < 300:
                failure = await self._status_error(response)
                complete = response.content.at_eof()
                raise failure
            yield _arrived(response.content)
            complete = await _drained(response.content)
        except TimeoutError as error:  # aiohttp's connect and read timeouts
            raise self.error(
                f"timed out talking to the {self._vendor} API: {_describe(error)}"
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            text = f"connection to the {self._vendor} API failed: {_describe(error)}"
            raise self.error(text) from error
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an oversized line
            raise self.error(f"stream error: malformed event: {error}") from error
        finally:
            if response is None:
                pass
            elif complete:
                response.release()  # back to the pool for the next request
            else:
                response.close()  # a half-read connection cannot be reused

    def error(
        self,
        text: str,
        *,
        transient: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        return ProviderError(
            redact(text, self._secrets), transient=transient, status=status, retry_after=retry_after
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._auth is not None:
            await self._auth.aclose()

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use so that it belongs to the running loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # every reply holds a connection for its whole stream
                ttl_dns_cache=300,
                enable_cleanup_closed=_CLEANUP_CLOSED,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                auto_decompress=True,
            )
        return self._session

    async def _status_error(self, response: aiohttp.ClientResponse) -> ProviderError:
        raw = b""
        try:
            while len(raw) < MAX_ERROR_BODY:
                chunk = await response.content.read(MAX_ERROR_BODY - len(raw))
                if not chunk:
                    break
                raw += chunk
        except (aiohttp.ClientError, OSError):
            pass  # the status alone still says what went wrong
        text = raw.decode("utf-8", "replace").strip() or response.reason or "no details"
        try:
            body: object = json.loads(raw)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        status = response.status
        return self.error(
            f"HTTP {status}: {vendor_message(body, text)}",
            transient=is_transient_status(status) or kind in self._transient_types,
            status=status,
            retry_after=retry_after(response.headers),
        )


async def _split_lines(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    # Not ``async for line in content``: aiohttp's readline rejects lines
    # over twice its read buffer (128 KiB or 512 KiB, by version), and one
    # SSE event can be longer than that.
    partial: list[bytes] = []
    size = 0
    async for chunk in chunks:
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            partial.append(chunk)
            size += len(chunk)
            if size > MAX_LINE:
                raise ValueError(f"an event longer than {MAX_LINE} bytes")
            continue
        if partial:
            partial.append(lines[0])
            lines[0] = b"".join(partial)
            partial.clear()
            size = 0
        last = lines.pop()
        if last:
            partial.append(last)
            size = len(last)
        for line in lines:
            yield line
    if partial:
        yield b"".join(partial)


async def _arrived(content: aiohttp.StreamReader) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, up to the last byte received before any break.

    aiohttp's readers raise a broken connection's error before handing over
    the data that arrived just ahead of it (``readany`` checks for the error
    first), so the vendor's last events before a break, text and usage, would
    be lost whenever both land in one turn of the event loop.
    """
    while True:
        try:
            chunk = await content.readany()
        except aiohttp.ClientError:
            # The buffer is private; if a version renames it we only lose the tail again.
            buffered = b"".join(getattr(content, "_buffer", ()))
            if received := buffered[getattr(content, "_buffer_offset", 0) :]:
                yield received
            raise
        if not chunk:
            return
        yield chunk


async def _drained(content: aiohttp.StreamReader) -> bool:
    """Read what is left of a body (OpenAI's ends just after ``[DONE]``); True at its end."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            while not content.at_eof():
                if not await content.readany():
                    break
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False
    return content.at_eof()


def _env_proxy(url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    try:
        return get_env_proxy_for_url(url)
    except LookupError:  # no proxy configured, or NO_PROXY covers the host
        return None, None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
