"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.transport.bodies.base import respond
from parley.transport.bodies.service import Health, NotReady, Ready

PROBE_TIMEOUT_SECONDS = 2.0


async def health(request: Request) -> Response:
    """The process is alive and serving HTTP."""
    return respond(Health(status="ok"))


async def ready(request: Request) -> Response:
    """Postgres, Redis and the catalog are all usable; 503 names what is not."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return respond(NotReady(status="starting", failing=["startup"]), status_code=503)
    checks = {
        "postgres": services.pool.fetchval("SELECT 1"),
        "redis": services.redis.ping(),
    }
    failing = []
    for name, probe in checks.items():
        try:
            await asyncio.wait_for(probe, PROBE_TIMEOUT_SECONDS)
        except Exception:
            failing.append(name)
    if not services.catalog.current.agents:
        failing.append("catalog")
    if failing:
        return respond(NotReady(status="unavailable", failing=failing), status_code=503)
    return respond(Ready(status="ready", catalog_version=services.catalog.current.version))


def ops_routes() -> list[BaseRoute]:
    return [Route("/health", health), Route("/ready", ready)]
