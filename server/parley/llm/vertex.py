"""Claude on Google Vertex AI: the Messages wire at a publisher model's URL.

``POST {base}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/``
``{model}:streamRawPredict`` with the Messages body less ``model`` plus
``anthropic_version``, and an OAuth bearer token; the reply is Anthropic's
own SSE stream. Tokens come from ``google-auth`` (the ``[vertex]`` extra):
Application Default Credentials or a service-account file, refreshed off
the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from yarl import URL

from parley.llm.anthropic import TRANSIENT_TYPES, MessagesWire, sse_events
from parley.llm.base import ProviderError
from parley.llm.http import VendorHTTP

VERTEX_VERSION = "vertex-2023-10-16"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def default_base_url(region: str) -> str:
    if region == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{region}-aiplatform.googleapis.com"


class VertexProvider(MessagesWire):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        credentials: GoogleCredentials,
        models: Mapping[str, str] | None = None,
        base_url: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        root = (base_url or default_base_url(region)).rstrip("/")
        self._models_url = URL(root) / "v1" / "projects" / project / "locations" / region
        self._models_url = self._models_url / "publishers" / "anthropic" / "models"
        http = VendorHTTP(
            f"Vertex AI ({name})",
            str(self._models_url),
            {},
            secret=None,
            connect_timeout=connect_timeout,
            transient_types=TRANSIENT_TYPES,
            auth=GoogleToken(credentials),
        )
        super().__init__(name, http, models or {})

    def events(
        self, model: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        del body["model"]  # the URL names the model
        body["anthropic_version"] = VERTEX_VERSION
        return sse_events(self._http, body, url=self._models_url / f"{model}:streamRawPredict")


class GoogleCredentials(Protocol):
    """What ``google.auth.credentials.Credentials`` offer."""

    token: str | None

    @property
    def valid(self) -> bool: ...

    def refresh(self, request: Any) -> None: ...


class GoogleToken:
    """``Authorization: Bearer`` with the credentials' access token, refreshed when stale."""

    def __init__(self, credentials: GoogleCredentials) -> None:
        self._credentials = credentials
        self._lock = asyncio.Lock()

    async def headers(self, url: URL, body: bytes) -> Mapping[str, str]:
        if not self._credentials.valid:  # google-auth keeps a margin before expiry itself
            async with self._lock:
                if not self._credentials.valid:
                    await self._refresh()
        return {"Authorization": f"Bearer {self._credentials.token}"}

    async def aclose(self) -> None:
        pass

    async def _refresh(self) -> None:
        from google.auth.transport.requests import Request

        try:
            # Blocking HTTP (the metadata server, the token endpoint): in a thread.
            await asyncio.to_thread(self._credentials.refresh, Request())
        except Exception as error:  # any failure: no token, so no call
            raise ProviderError(
                f"no Google access token: {type(error).__name__}: {error}", transient=False
            ) from error


def load_credentials(credentials_file: Path | None) -> GoogleCredentials:
    """Application Default Credentials, or a service-account file, from the ``[vertex]`` extra."""
    try:
        import google.auth
        from google.oauth2 import service_account
    except ImportError as error:
        raise ImportError("Vertex AI needs: pip install 'parley[vertex]'") from error
    if credentials_file is not None:
        loaded: GoogleCredentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(credentials_file), scopes=[SCOPE]
        )
        return loaded
    found, _project = google.auth.default(scopes=[SCOPE])
    credentials: GoogleCredentials = found
    return credentials
