"""The paths that speak a vendor's API, and the error shape each answers in.

Errors the endpoints raise leave in their vendor's shape already
(:func:`~parley.transport.compat.errors.speaking`); this is for the answers
given before a request reaches them (the per-user rate limit), so that a
vendor's SDK reads those too.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.routing import Route

from parley.transport.compat import anthropic_api, openai_api
from parley.transport.compat.errors import Render

ERROR_SHAPES: Mapping[str, Render] = {
    **{
        route.path: openai_api.error_response
        for route in openai_api.openai_routes()
        if isinstance(route, Route)
    },
    **{
        route.path: anthropic_api.error_response
        for route in anthropic_api.anthropic_routes()
        if isinstance(route, Route)
    },
}
