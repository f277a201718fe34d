"""HTTP tools: one operator-configured request per call, the model filling in arguments.

Only the URL template's host is ever called (see :mod:`parley.tools.urls`);
only the arguments the file places in the path, the query or the body are
sent; redirects are not followed, since one could point anywhere. Every
expected failure (timeout, non-2xx, oversized or non-JSON body) becomes a
:meth:`ToolResult.error` for the model. Header values may hold secrets: they
are never logged and are scrubbed from anything the model is shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from parley.tools.base import ToolContext, ToolResult
from parley.tools.declared import DeclaredTool
from parley.tools.env import Environment, Secret, UnresolvedReference, scrub
from parley.tools.fields import FieldTree, field_tree, project
from parley.tools.spec import HttpSpec
from parley.tools.urls import UrlTemplate, path_value

log = logging.getLogger("parley.tools")

Loc = tuple[str | int, ...]
Report = Callable[[Loc, str], None]
ERROR_SNIPPET_CHARS = 300
CHUNK_BYTES = 64 * 1024
USER_AGENT = "Parley-Tools/1"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """Everything a call needs from the file, resolved and checked at load."""

    method: str
    url: UrlTemplate
    query: tuple[str, ...]
    body: tuple[str, ...]
    headers: tuple[tuple[str, Secret], ...] = field(repr=False)
    max_response_bytes: int
    response_fields: FieldTree | None = field(hash=False)
    hidden: tuple[Secret, ...] = field(repr=False)  # header values, whole and in parts


def http_session() -> aiohttp.ClientSession:
    """The client all HTTP tools share (the registry owns and closes it).

    No cookie jar: a cookie set while serving one user must not ride along on
    another user's call. Timeouts are per call (:attr:`Tool.timeout`).
    """
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


def http_request(
    spec: HttpSpec, parameters: Mapping[str, Any], environment: Environment, report: Report
) -> HttpRequest | None:
    """The checked request, or None after reporting every problem with its location."""
    ok = True
    try:
        url = UrlTemplate.parse(spec.url, environment)
    except ValueError as error:
        report(("http", "url"), str(error))
        url, ok = None, False
    headers: list[tuple[str, Secret]] = []
    hidden: list[Secret] = []
    for name, raw in spec.headers.items():
        try:
            value = environment.resolve(raw)
            hidden += environment.secrets_in(raw)
        except UnresolvedReference as error:
            report(("http", "headers", name), str(error))
            ok = False
            continue
        if "\r" in value or "\n" in value:  # would split into a second header
            report(("http", "headers", name), "contains a line break")
            ok = False
        headers.append((name, Secret(value)))
    placements = {"url": url.placeholders if url else (), "query": spec.query, "body": spec.body}
    # Without a parsed URL its placeholders are unknown: do not call parameters unused.
    ok = _check_placements(placements, parameters, report, all_known=url is not None) and ok
    if not ok or url is None:
        return None
    fields = field_tree(spec.response_fields) if spec.response_fields else None
    return HttpRequest(
        method=spec.method,
        url=url,
        query=tuple(spec.query),
        body=tuple(spec.body),
        headers=tuple(headers),
        max_response_bytes=spec.max_response_bytes,
        response_fields=fields,
        hidden=tuple(hidden),
    )


def _check_placements(
    placements: Mapping[str, Sequence[str]],
    parameters: Mapping[str, Any],
    report: Report,
    *,
    all_known: bool,
) -> bool:
    """Every argument sent is declared, sent in one place only; every declared one is sent."""
    # The schema may be invalid (already reported): read it defensively.
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = parameters.get("required")
    required = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
    ok = True
    seen: dict[str, str] = {}
    for where, names in placements.items():
        for position, name in enumerate(names):
            loc: Loc = ("http", "url") if where == "url" else ("http", where, position)
            if name not in properties:
                report(loc, f"{name!r} is not in parameters.properties")
                ok = False
            elif name in seen:
                report(loc, f"{name!r} is already sent in {seen[name]}")
                ok = False
            elif where == "url" and name not in required:
                report(loc, f"{{{name}}} is part of the path: list it in parameters.required")
                ok = False
            seen.setdefault(name, where)
    for name in properties if all_known else ():
        if name not in seen:
            report(
                ("parameters", "properties", name),
                "never sent: use it in http.url, http.query or http.body, or remove it",
            )
            ok = False
    return ok


@dataclass(frozen=True, eq=False, kw_only=True)
class HttpTool(DeclaredTool):
    request: HttpRequest
    session: aiohttp.ClientSession = field(repr=False)

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        request = self.request
        try:
            url = request.url.fill(arguments, _query_pairs(request.query, arguments))
        except ValueError as error:
            return ToolResult.error(f"{self.name}: {error}")
        headers = {name: secret.reveal() for name, secret in request.headers}
        headers["Accept"] = "application/json"
        if self.side_effects:  # the service can then tell a retry from a new request
            headers["Idempotency-Key"] = context.idempotency_key
        body = {name: arguments[name] for name in request.body if name in arguments}
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.request(
                    request.method,
                    URL(url, encoded=True),  # already encoded: yarl must not re-encode it
                    headers=headers,
                    json=body if request.body else None,
                    allow_redirects=False,
                ) as response:
                    return await self._result(response)
        except TimeoutError:
            return self._error(f"no answer within {self.timeout:g} seconds")
        except aiohttp.ClientError as error:
            return self._error(f"cannot reach the service ({type(error).__name__})")

    async def _result(self, response: aiohttp.ClientResponse) -> ToolResult:
        status = response.status
        if 300 <= status < 400:
            return self._error(
                f"the service answered with a redirect (HTTP {status}), not followed"
            )
        limit = self.request.max_response_bytes
        data = await _read_capped(response, limit)
        if data is None:
            return self._error(f"the response is larger than {limit} bytes")
        if not 200 <= status < 300:
            text = data.decode("utf-8", "replace").strip()
            detail = f": {text[:ERROR_SNIPPET_CHARS]}" if text else ""
            return self._error(f"the service answered HTTP {status}", detail)
        try:
            value = json.loads(data) if data.strip() else None
        except ValueError:
            return self._error(f"the service did not answer with JSON (HTTP {status})")
        shown = project(value, self.request.response_fields)
        content = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
        # A service echoing a header back must not hand its secret to the model.
        return ToolResult.ok(scrub(content, self.request.hidden), f"{self.name}: HTTP {status}")

    def _error(self, reason: str, detail: str = "") -> ToolResult:
        # The detail (the service's own words) goes to the model, not to the log.
        log.warning("tool %s failed: %s", self.name, reason)
        return ToolResult.error(scrub(f"{self.name}: {reason}{detail}", self.request.hidden))


def _query_pairs(names: Sequence[str], arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name in names:
        value = arguments.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        pairs.extend((name, path_value(name, item)) for item in values)
    return pairs


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` (never buffering more than that)."""
    if response.content_length is not None and response.content_length > limit:
        return None
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)
