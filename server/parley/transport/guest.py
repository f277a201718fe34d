"""``POST /v1/guest``: a short-lived token for an anonymous visitor (docs/protocol.md).

Only agents whose ``agents.yaml`` entry has a ``guests`` section take guests.
A request that another site's page sends (its ``Origin`` is not this server)
must come from one of the agent's ``sites`` (or ``PARLEY_ALLOWED_ORIGINS``);
the widget's own page runs on this server and names the site embedding it
in ``site``. Tokens are counted per client address and per site.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parley.auth.http import origin_allowed
from parley.catalog import Agent
from parley.catalog.schema import SiteOrigin
from parley.errors import Forbidden
from parley.guests import GuestLimitReached
from parley.guests.identity import MAX_GUEST_ID_CHARS
from parley.transport.bodies.auth import GuestToken
from parley.transport.fields import Identifier
from parley.transport.http import error_response
from parley.transport.rest import parse_body, services_of

# The rate-limit key of requests from this server's own pages that name no other site.
OWN_SITE = "self"


class GuestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: Identifier = Field(description="An agent that takes guests.")
    guest_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_GUEST_ID_CHARS,
        description="The id a previous answer gave, to stay the same guest; omit for a new one.",
    )
    site: SiteOrigin | None = Field(
        default=None,
        description="The origin of the page that embeds the widget, as the widget sees it.",
    )


async def create_guest(request: Request) -> Response:
    services = services_of(request)
    body = await parse_body(request, GuestRequest)
    agent = services.catalog.current.guest_agent(body.agent)
    site = _site(request, agent, body.site, services.settings.allowed_origins)
    address = request.client.host if request.client else "unknown"
    try:
        guest = await services.guests.admit(agent, body.guest_id, ip=address, site=site)
    except GuestLimitReached as error:
        refused = error_response(error)
        refused.headers["Retry-After"] = str(error.retry_after)
        return refused
    answer = GuestToken(
        token=guest.token,
        token_type="Bearer",
        expires_at=guest.expires_at,
        expires_in=max(0, guest.expires_at - int(time.time())),
        guest_id=guest.guest_id,
        agent=guest.agent,
    )
    return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store"})


def _site(request: Request, agent: Agent, claimed: str | None, allowed: list[str]) -> str:
    """Which site the request counts against; ``Forbidden`` for a site the agent refuses.

    A browser names the sending page in ``Origin``: another site's page must be
    one of the agent's sites. The widget's page is this server's own, and says
    in ``site`` which page embeds it (browsers only let listed sites frame it).
    """
    assert agent.guests is not None
    sites = list(agent.guests.sites)
    host = request.headers.get("host")
    origin = request.headers.get("origin")
    if not origin_allowed(origin, host_header=host, allowed=()):  # another site's page
        assert origin is not None
        if not origin_allowed(origin, host_header=None, allowed=[*sites, *allowed]):
            raise Forbidden("This site may not chat with that agent (origin not allowed).")
        return origin.rstrip("/").lower()
    if claimed is None or origin_allowed(claimed, host_header=host, allowed=()):
        return OWN_SITE
    if claimed not in sites:
        raise Forbidden("site: this site may not embed that agent.")
    return claimed


def guest_routes() -> list[BaseRoute]:
    return [Route("/v1/guest", create_guest, methods=["POST"])]
