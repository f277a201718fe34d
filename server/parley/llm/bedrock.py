"""Claude on Amazon Bedrock: the Messages wire, SigV4-signed, in AWS event-stream framing.

``POST {base}/model/{model id}/invoke-with-response-stream`` with the
Messages body less ``model`` and ``stream``, plus ``anthropic_version``.
The reply is ``application/vnd.amazon.eventstream``: binary messages whose
``chunk`` events carry ``{"bytes": base64(one Anthropic event)}``, and whose
``exception`` messages are Bedrock's errors. ``botocore`` (the ``[bedrock]``
extra) brings the credential chain, SigV4 and the frame parser; the bytes
still arrive through our own reader.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from yarl import URL

from parley.llm.anthropic import TRANSIENT_TYPES, MessagesWire
from parley.llm.base import ProviderError
from parley.llm.http import VendorHTTP

if TYPE_CHECKING:
    from botocore.credentials import Credentials

BEDROCK_VERSION = "bedrock-2023-05-31"
EVENT_STREAM = "application/vnd.amazon.eventstream"
SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime

# Bedrock's exception types (``:exception-type``) that a retry can fix.
_TRANSIENT_EXCEPTIONS = frozenset(
    {
        "throttlingException",
        "serviceUnavailableException",
        "internalServerException",
        "modelStreamErrorException",
        "modelTimeoutException",
    }
)


def default_base_url(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


class BedrockProvider(MessagesWire):
    def __init__(
        self,
        name: str,
        *,
        region: str,
        credentials: Credentials,
        models: Mapping[str, str] | None = None,
        base_url: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._base = (base_url or default_base_url(region)).rstrip("/")
        http = VendorHTTP(
            f"Bedrock ({name})",
            self._base,
            {"Accept": EVENT_STREAM},
            secret=None,
            connect_timeout=connect_timeout,
            transient_types=TRANSIENT_TYPES,
            auth=SigV4(credentials, region),
        )
        super().__init__(name, http, models or {})

    def events(
        self, model: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        del body["model"], body["stream"]  # the URL names both
        body["anthropic_version"] = BEDROCK_VERSION
        # Encoded by us, sent as is (encoded=True): the signature covers this exact path.
        path = f"/model/{quote(model, safe='')}/invoke-with-response-stream"
        return self._events(URL(self._base + path, encoded=True), body)

    @asynccontextmanager
    async def _events(
        self, url: URL, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        async with self._http.chunks(body, url=url) as chunks:
            yield self._decode(chunks)

    async def _decode(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
        """Each ``chunk`` event's Anthropic event; exceptions as :class:`ProviderError`."""
        from botocore.eventstream import EventStreamBuffer, ParserError

        frames = EventStreamBuffer()
        try:
            async for data in chunks:
                frames.add_data(data)
                for message in frames:
                    headers = message.headers
                    if headers.get(":message-type") != "event":
                        raise self._exception(headers, message.payload)
                    if headers.get(":event-type") == "chunk":
                        yield _anthropic_event(message.payload)
        except ParserError as error:  # a torn or corrupted frame
            raise self._http.error(f"stream error: malformed frame: {error}") from error

    def _exception(self, headers: Mapping[str, Any], payload: bytes) -> ProviderError:
        kind = str(headers.get(":exception-type") or headers.get(":error-code") or "unknown")
        try:
            message = json.loads(payload).get("message") or ""
        except (ValueError, AttributeError):
            message = payload.decode("utf-8", "replace")
        return self._http.error(
            f"stream error: {kind}: {message}", transient=kind in _TRANSIENT_EXCEPTIONS
        )


def _anthropic_event(payload: bytes) -> dict[str, Any]:
    """The Anthropic event a ``chunk``'s ``{"bytes": base64}`` payload carries."""
    try:
        event = json.loads(base64.b64decode(json.loads(payload)["bytes"], validate=True))
    except (KeyError, TypeError, binascii.Error) as error:
        raise ValueError(f"a chunk without an event: {type(error).__name__}") from error
    if not isinstance(event, dict):
        raise ValueError("a chunk's event is not an object")
    return event


class SigV4:
    """AWS Signature Version 4 over the exact URL and body, by botocore."""

    def __init__(self, credentials: Credentials, region: str) -> None:
        from botocore.auth import SigV4Auth

        self._credentials = credentials
        self._region = region
        self._signer = SigV4Auth
        self._lock = asyncio.Lock()

    async def headers(self, url: URL, body: bytes) -> Mapping[str, str]:
        from botocore.awsrequest import AWSRequest

        frozen = await self._frozen()
        request = AWSRequest(
            method="POST",
            url=str(url),
            data=body,
            headers={"Content-Type": "application/json", "Accept": EVENT_STREAM},
        )
        self._signer(frozen, SERVICE, self._region).add_auth(request)
        return dict(request.headers.items())

    async def aclose(self) -> None:
        pass

    async def _frozen(self) -> Credentials:
        """Current credentials; a refresh (STS, SSO, instance metadata) runs in a thread."""
        credentials = self._credentials
        refresh_needed = getattr(credentials, "refresh_needed", None)
        try:
            if refresh_needed is not None and refresh_needed():
                async with self._lock:
                    return await asyncio.to_thread(credentials.get_frozen_credentials)
            return credentials.get_frozen_credentials()
        except Exception as error:  # any failure: no credentials, so no call
            raise ProviderError(
                f"no AWS credentials: {type(error).__name__}: {error}", transient=False
            ) from error


def load_credentials(
    *,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> Credentials:
    """Explicit keys, else botocore's chain (environment, profile, SSO, instance role)."""
    try:
        from botocore.credentials import Credentials
        from botocore.session import Session
    except ImportError as error:
        raise ImportError("Bedrock needs: pip install 'parley[bedrock]'") from error
    if access_key_id and secret_access_key:
        return Credentials(access_key_id, secret_access_key, session_token)
    found = Session(profile=profile).get_credentials()
    if found is None:
        raise ValueError("no AWS credentials found (environment, profile or instance role)")
    return found
