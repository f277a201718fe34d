"""The service's own routes: liveness, readiness, metrics and this document."""

from __future__ import annotations

from functools import partial

from parley.transport.bodies.service import Health, NotReady, Ready
from parley.transport.openapi.registry import Access, Answer, Operation, answer, ok, text

# Probes, scrapers and client generators call these without a user's token.
service = partial(Operation, tag="service", access=Access.PUBLIC)

SERVICE = (
    service("GET", "/health", "Liveness: the process serves HTTP", ok(Health, "Alive.")),
    service(
        "GET",
        "/ready",
        "Readiness: Postgres, Redis and the catalog are usable",
        {
            200: answer(Ready, "Ready."),
            503: answer(NotReady, "Not ready; `failing` names what is not."),
        },
    ),
    service(
        "GET",
        "/metrics",
        "Prometheus metrics (only with PARLEY_METRICS_TOKEN)",
        {200: text("text/plain", "Prometheus text format (OpenMetrics when asked for).")},
        access=Access.METRICS,
    ),
    service(
        "GET",
        "/openapi.json",
        "This document",
        {
            200: Answer(
                "The OpenAPI 3.1 description of this API.",
                media_type="application/json",
                schema={"type": "object"},
            )
        },
    ),
)
