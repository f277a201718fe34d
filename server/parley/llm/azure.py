"""Azure OpenAI: the OpenAI wire at a deployment's URL, with a key or an Entra ID token.

A request for ``azure:gpt-4o`` goes to
``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…``,
the deployment being the one ``gpt-4o`` is mapped to (or ``gpt-4o`` itself).
Key auth is the ``api-key`` header and needs nothing more. Entra ID tokens
come from ``azure-identity`` (the ``[azure]`` extra): its credential chain
(managed identity, workload identity, environment, Azure CLI) is what we
should not write ourselves; the request still goes through our own reader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Protocol

from yarl import URL

from parley.llm.base import ProviderError
from parley.llm.http import VendorHTTP
from parley.llm.openai import OpenAIWire

DEFAULT_API_VERSION = "2024-10-21"
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
# A token is renewed this long before it expires, so none expires in flight.
TOKEN_MARGIN_SECONDS = 300


class AzureOpenAIProvider(OpenAIWire):
    def __init__(
        self,
        name: str,
        endpoint: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        deployments: Mapping[str, str] | None = None,
        api_key: str | None = None,
        credential: AsyncTokenCredential | None = None,
        scope: str = ENTRA_SCOPE,
        connect_timeout: float = 10.0,
    ) -> None:
        if (api_key is None) == (credential is None):
            raise ValueError("Azure OpenAI needs exactly one of an api_key and a credential")
        self._deployments = URL(f"{endpoint.rstrip('/')}/openai/deployments")
        self._api_version = api_version
        http = VendorHTTP(
            f"Azure OpenAI ({name})",
            str(self._deployments),
            {"api-key": api_key} if api_key else {},
            secret=api_key,
            connect_timeout=connect_timeout,
            auth=EntraToken(credential, scope) if credential is not None else None,
        )
        super().__init__(name, http, deployments or {})
        self._urls: dict[str, URL] = {}

    def url(self, model: str) -> URL:
        url = self._urls.get(model)
        if url is None:
            url = (self._deployments / model / "chat" / "completions").with_query(
                {"api-version": self._api_version}
            )
            self._urls[model] = url
        return url


class AsyncTokenCredential(Protocol):
    """What ``azure.identity.aio`` credentials offer (``azure.core``'s protocol)."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...  # an AccessToken

    async def close(self) -> None: ...


class EntraToken:
    """``Authorization: Bearer`` with a Microsoft Entra ID token, renewed before it expires."""

    def __init__(self, credential: AsyncTokenCredential, scope: str = ENTRA_SCOPE) -> None:
        self._credential = credential
        self._scope = scope
        self._token = ""
        self._expires_on = 0.0
        self._lock = asyncio.Lock()  # one renewal at a time, however many replies wait

    async def headers(self, url: URL, body: bytes) -> Mapping[str, str]:
        if time.time() >= self._expires_on - TOKEN_MARGIN_SECONDS:
            async with self._lock:
                if time.time() >= self._expires_on - TOKEN_MARGIN_SECONDS:
                    await self._renew()
        return {"Authorization": f"Bearer {self._token}"}

    async def aclose(self) -> None:
        await self._credential.close()

    async def _renew(self) -> None:
        try:
            token = await self._credential.get_token(self._scope)
        # Whatever the credential chain raises (no identity, refused, unreachable),
        # this call cannot be made; the message names the cause, never a token.
        except Exception as error:
            raise ProviderError(
                f"no Entra ID token for {self._scope}: {type(error).__name__}: {error}",
                transient=False,
            ) from error
        self._token, self._expires_on = token.token, float(token.expires_on)


def default_credential() -> AsyncTokenCredential:
    """``DefaultAzureCredential`` from the ``[azure]`` extra."""
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError as error:
        raise ImportError(
            "Entra ID auth needs the azure extra: pip install 'parley[azure]'"
        ) from error
    credential: AsyncTokenCredential = DefaultAzureCredential()
    return credential
