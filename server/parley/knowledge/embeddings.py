"""Embeddings from OpenAI or any OpenAI-compatible ``/v1/embeddings`` endpoint.

Configured by ``PARLEY_EMBEDDINGS_MODEL`` (``openai:text-embedding-3-small``);
without it Parley embeds nothing and searches full text only, so nothing is
ever downloaded or computed locally. Each HTTP call is one
:class:`~parley.knowledge.store.UsageRow` with its cost, whether it
succeeded or not (a failed call may still have been billed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from parley import __version__
from parley.llm.base import ModelRef
from parley.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BATCH = 64  # inputs per request: well under every vendor's limit, few round trips
ATTEMPTS = 3
# The dimensions of the models people use most; others need PARLEY_EMBEDDINGS_DIMENSIONS.
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# What an input is cut to (in characters) before it is sent: about 8k tokens,
# the smallest common limit. Chunks are far shorter; a pasted question may not be.
MAX_INPUT_CHARS = 24_000


class EmbeddingError(Exception):
    """The endpoint failed or answered with something that is not an embedding;
    ``transient`` when a retry could help (a connection error, 429, 5xx)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.calls: list[EmbeddingCall] = []  # every call made, failed ones included


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """What one HTTP call used: the usage row's figures."""

    model: ModelRef
    input_tokens: int
    estimated: bool
    latency_ms: int
    cost_usd: float
    error: str | None = None


@dataclass(slots=True)
class Embedded:
    vectors: list[list[float]]
    calls: list[EmbeddingCall] = field(default_factory=list)


class Embedder:
    """Turns texts into vectors of one embedding space (model and dimensions)."""

    def __init__(
        self,
        model: ModelRef,
        *,
        dimensions: int,
        send_dimensions: bool,
        base_url: str | None,
        api_key: str | None,
        cost: Callable[[ModelRef, int], float],
        timeout: float = 30.0,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self._send_dimensions = send_dimensions
        self._url = f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/embeddings"
        self._headers = {"Content-Type": "application/json", "User-Agent": f"parley/{__version__}"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._secret = api_key
        self._cost = cost
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def space(self) -> str:
        """The key of this model's vectors: vectors of two spaces are never compared."""
        return f"{self.model}/{self.dimensions}"

    async def embed(self, texts: Sequence[str]) -> Embedded:
        """Vectors for ``texts`` in order; EmbeddingError (with the calls made) if any batch
        fails after its retries."""
        embedded = Embedded([])
        for start in range(0, len(texts), BATCH):
            batch = [text[:MAX_INPUT_CHARS] or " " for text in texts[start : start + BATCH]]
            try:
                embedded.vectors += await self._batch(batch, embedded.calls)
            except EmbeddingError as error:
                error.calls = embedded.calls
                raise
        return embedded

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _batch(self, texts: list[str], calls: list[EmbeddingCall]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model.name, "input": texts}
        if self._send_dimensions:
            body["dimensions"] = self.dimensions
        estimate = sum(estimate_tokens(text) for text in texts)
        for attempt in range(1, ATTEMPTS + 1):
            started = time.monotonic()
            try:
                vectors, tokens = await self._post(body, len(texts))
            except EmbeddingError as error:
                calls.append(self._call(estimate, True, started, str(error)))
                if not error.transient or attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
                continue
            calls.append(self._call(tokens or estimate, tokens is None, started))
            return vectors
        raise AssertionError("unreachable")

    def _call(
        self, tokens: int, estimated: bool, started: float, error: str | None = None
    ) -> EmbeddingCall:
        return EmbeddingCall(
            model=self.model,
            input_tokens=tokens,
            estimated=estimated,
            latency_ms=round((time.monotonic() - started) * 1000),
            cost_usd=self._cost(self.model, tokens),
            error=error,
        )

    async def _post(self, body: dict[str, Any], count: int) -> tuple[list[list[float]], int | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=body, headers=self._headers) as response:
                if response.status != 200:
                    text = (await response.text())[:300]
                    raise EmbeddingError(
                        f"HTTP {response.status}: {self._hide(text)}",
                        transient=response.status == 429 or response.status >= 500,
                    )
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            detail = f"{type(error).__name__}: {self._hide(str(error))}"
            raise EmbeddingError(detail, transient=True) from None
        return self._parse(payload, count)

    def _parse(self, payload: Any, count: int) -> tuple[list[list[float]], int | None]:
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as error:
            raise EmbeddingError(
                f"not an embeddings response ({error!r})", transient=False
            ) from None
        if len(vectors) != count or any(len(v) != self.dimensions for v in vectors):
            sizes = sorted({len(v) for v in vectors})
            raise EmbeddingError(
                f"expected {count} vectors of {self.dimensions} dimensions, got"
                f" {len(vectors)} of {sizes}",
                transient=False,
            )
        usage = payload.get("usage") if isinstance(payload, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return vectors, tokens if isinstance(tokens, int) else None

    def _hide(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
