"""``GET /openapi.json`` and ``GET /docs``, both built once, when the app is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from parley.transport.openapi.document import build_document
from parley.transport.openapi.operations import OPERATIONS
from parley.transport.openapi.page import render_page
from parley.web.routes import SECURITY_HEADERS, content_security_policy


def openapi_routes(app_routes: Sequence[BaseRoute], web_dir: Path) -> list[BaseRoute]:
    """The two routes, describing ``app_routes`` and themselves."""

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def docs(request: Request) -> Response:
        headers = {
            "Content-Security-Policy": content_security_policy(request.headers.get("host")),
            "Cache-Control": "no-cache",
            **SECURITY_HEADERS,
        }
        return HTMLResponse(page, headers=headers)

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    document = build_document(OPERATIONS, [*app_routes, *routes])
    spec = json.dumps(document, separators=(",", ":")).encode()
    page = render_page(document, Path(web_dir) / "templates")
    return routes
