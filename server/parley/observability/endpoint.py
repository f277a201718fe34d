"""``GET /metrics`` on Parley's own port, for scrapers holding ``PARLEY_METRICS_TOKEN``.

Without a token the route does not exist: ``/metrics`` answers 404 like any
unknown path (metrics can then still be served on ``PARLEY_METRICS_PORT``,
see :mod:`parley.observability.metrics_server`).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.errors import Unauthorized
from parley.observability.exposition import authorized, render
from parley.observability.metrics import record_collection_pauses
from parley.transport.http import error_response


def metrics_routes(token: str | None) -> list[BaseRoute]:
    if token is None:
        return []

    async def metrics(request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), token):
            refused = error_response(Unauthorized("A valid metrics token is required."))
            refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        record_collection_pauses()  # this process's, up to now
        # Under several workers this reads every worker's files: not on the loop.
        body, content_type = await asyncio.to_thread(render, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return [Route("/metrics", metrics, methods=["GET"])]
