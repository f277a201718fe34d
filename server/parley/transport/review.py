"""Admin review under ``/v1/admin``: conversations by filter, any transcript, JSONL export.

Filters (query parameters, all optional, combined with AND): ``agent``,
``status`` (``needs_human``, ``taken``, ``normal``), ``feedback`` (``down``,
``up``, ``any``, ``none``), ``action`` (has a rule event with that action:
``handoff``, ``redacted``, ``blocked``...), ``user``. Lists are newest activity
first, paged with ``limit`` and the ``before`` cursor of the previous page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from parley.review import ReviewFilter, parse_cursor
from parley.transport.bodies.admin import ReviewPage, Transcript
from parley.transport.bodies.base import respond
from parley.transport.operators import require_admin
from parley.transport.params import query_identifier, query_int
from parley.transport.rest import services_of

EXPORT_LIMIT = 100_000


def _filter(request: Request) -> ReviewFilter:
    params = request.query_params
    before = params.get("before")
    return ReviewFilter(
        agent=query_identifier(request, "agent"),
        status=params.get("status") or None,
        feedback=params.get("feedback") or None,
        action=params.get("action") or None,
        user=query_identifier(request, "user"),
        before=parse_cursor(before) if before else None,
    )


async def list_conversations(request: Request) -> Response:
    require_admin(request)
    where = _filter(request)
    limit = query_int(request, "limit", default=50, low=1, high=200)
    page, cursor = await services_of(request).operations.review.list(where, limit=limit)
    return respond(ReviewPage.model_validate({"conversations": page, "next_before": cursor}))


async def get_conversation(request: Request) -> Response:
    require_admin(request)
    review = services_of(request).operations.review
    transcript = await review.transcript(request.path_params["conversation_id"])
    return respond(Transcript.model_validate(transcript))


async def export(request: Request) -> Response:
    """One transcript per line, streamed as it is read (a large export never sits in memory)."""
    require_admin(request)
    where = _filter(request)
    limit = query_int(request, "limit", default=EXPORT_LIMIT, low=1, high=EXPORT_LIMIT)
    review = services_of(request).operations.review

    async def lines() -> AsyncIterator[str]:
        async for transcript in review.export(where, limit=limit):
            yield json.dumps(transcript, separators=(",", ":"), ensure_ascii=False) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="parley-conversations.jsonl"'},
    )


def review_routes() -> list[BaseRoute]:
    return [
        Route("/v1/admin/conversations", list_conversations, methods=["GET"]),
        Route("/v1/admin/conversations/{conversation_id}", get_conversation, methods=["GET"]),
        Route("/v1/admin/export.jsonl", export, methods=["GET"]),
    ]
