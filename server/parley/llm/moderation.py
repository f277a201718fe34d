"""OpenAI-compatible moderation endpoints (``POST /v1/moderations``).

Classifier rules with ``moderation:`` send the user's message here. The URL
and the name of the variable holding its key come from the rule file, so only
the operator decides where a message may go. One pooled connection set per
endpoint and key, so a check does not pay a TLS handshake per message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from parley.llm.base import ProviderError
from parley.llm.http import VendorHTTP


class ModerationClient:
    def __init__(
        self, *, connect_timeout: float = 10.0, environ: Mapping[str, str] = os.environ
    ) -> None:
        self._connect_timeout = connect_timeout
        self._environ = environ  # where api_key_env names are looked up
        self._endpoints: dict[tuple[str, str | None], VendorHTTP] = {}

    async def moderate(
        self, url: str, text: str, *, model: str | None = None, api_key_env: str | None = None
    ) -> dict[str, Any]:
        """The endpoint's JSON answer about ``text``; :class:`ProviderError` if there is none.

        The key is read on every call, so a rotated key needs no reload.
        """
        key = None
        if api_key_env is not None:
            key = self._environ.get(api_key_env)
            if not key:
                raise ProviderError(
                    f"environment variable {api_key_env} is not set", transient=False
                )
        http = self._endpoint(url, key)
        body: dict[str, Any] = {"input": text}
        if model is not None:
            body["model"] = model
        async with http.lines(body) as lines:
            raw = b"\n".join([line async for line in lines])
        try:
            answer = json.loads(raw)
        except ValueError as error:
            raise http.error(f"malformed moderation response: {error}", transient=False) from None
        if not isinstance(answer, dict):
            raise http.error("malformed moderation response: not an object", transient=False)
        return answer

    async def aclose(self) -> None:
        endpoints, self._endpoints = self._endpoints, {}
        for http in endpoints.values():
            await http.aclose()

    def _endpoint(self, url: str, key: str | None) -> VendorHTTP:
        http = self._endpoints.get((url, key))
        if http is None:
            headers = {"Accept": "application/json"}
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
            http = VendorHTTP(
                "moderation", url, headers, secret=key, connect_timeout=self._connect_timeout
            )
            self._endpoints[(url, key)] = http
        return http
