"""Guests and the widget in tests: a catalog with guest agents, host pages on other origins.

The host pages are what a customer's site would be: a page on another origin
(its own local port) that embeds the widget with one script tag, served under
a strict CSP of its own that allows Parley's origin for scripts and frames only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

GUEST_AGENT = "agent_guest"
GUEST_BUDGET_AGENT = "agent_guest_budget"
GUEST_TOOLS_AGENT = "agent_guest_tools"
# A guest's daily budget on GUEST_BUDGET_AGENT, and its reply cap: one turn fits
# (its prompt is far smaller); a reply whose usage the fake reports as
# BUDGET_FILLER prompt tokens leaves no room for another.
GUEST_DAILY_TOKENS = 6000
BUDGET_REPLY_TOKENS = 500
BUDGET_FILLER = 5800


def guest_agents(sites: list[str]) -> list[dict[str, Any]]:
    """Test agents that take guests from ``sites`` (all on the fake OpenAI model)."""
    return [
        {
            "id": GUEST_AGENT,
            "name": "Guest desk",
            "description": "Takes guests from the test sites.",
            "personality": "supportive",
            "rules": "technical_support",
            "models": ["openai:gpt-4o-mini"],
            "guests": {"sites": sites},
        },
        {
            "id": GUEST_BUDGET_AGENT,
            "name": "Guest desk on a budget",
            "description": "Guests get a small daily budget here.",
            "personality": "supportive",
            "rules": "technical_support",
            "models": ["openai:gpt-4o-mini"],
            "max_reply_tokens": BUDGET_REPLY_TOKENS,
            "guests": {"sites": sites, "daily_token_budget": GUEST_DAILY_TOKENS},
        },
        {
            "id": GUEST_TOOLS_AGENT,
            "name": "Guest tool desk",
            "description": "Guests may create tickets, after approving them.",
            "personality": "supportive",
            "rules": "tool_lab",
            "models": ["openai:gpt-4o-mini"],
            "tools": ["create_ticket"],
            "guests": {"sites": sites},
        },
    ]


def write_guest_catalog(source: Path, target: Path, sites: list[str]) -> Path:
    """``source`` (the tests' catalog) plus the guest agents, in ``target``."""
    shutil.copytree(source, target)
    agents = yaml.safe_load((target / "agents.yaml").read_text())
    agents["agents"].extend(guest_agents(sites))
    (target / "agents.yaml").write_text(yaml.safe_dump(agents))
    return target


async def guest_token(
    base_url: str,
    agent: str = GUEST_AGENT,
    *,
    guest_id: str | None = None,
    source: str | None = None,
    **headers: str,
) -> dict[str, Any]:
    """``POST /v1/guest``'s answer (asserting 200); ``source`` is the client address to use."""
    response = await ask_guest(base_url, agent, guest_id=guest_id, source=source, **headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def ask_guest(
    base_url: str,
    agent: str = GUEST_AGENT,
    *,
    guest_id: str | None = None,
    site: str | None = None,
    source: str | None = None,
    **headers: str,
) -> httpx.Response:
    body: dict[str, Any] = {"agent": agent}
    if guest_id is not None:
        body["guest_id"] = guest_id
    if site is not None:
        body["site"] = site
    transport = httpx.AsyncHTTPTransport(local_address=source) if source else None
    async with httpx.AsyncClient(base_url=base_url, transport=transport) as client:
        return await client.post(
            "/v1/guest", json=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )


HOST_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>A customer's site</title></head>
<body>
<h1>Welcome to a customer's site</h1>
<p>Questions? Use the chat button.</p>
<script src="{parley}/widget.js" data-agent="{agent}"></script>
</body>
</html>
"""


def host_site(parley_url: str, *, calls_api: bool = False) -> Starlette:
    """A customer's site: ``/?agent=<id>`` embeds that agent's widget with one tag.

    Its own CSP is strict: scripts and frames from Parley's origin only, no
    inline script or style, Trusted Types required. ``calls_api`` lets its
    scripts connect to Parley too (the widget does not need that).
    """

    async def page(request: Request) -> Response:
        agent = request.query_params.get("agent", GUEST_AGENT)
        csp = "; ".join(
            [
                "default-src 'none'",
                f"script-src {parley_url}",
                f"frame-src {parley_url}",
                f"connect-src {parley_url}" if calls_api else "connect-src 'none'",
                "style-src 'self'",
                "require-trusted-types-for 'script'",
                "trusted-types 'none'",
                "base-uri 'none'",
            ]
        )
        return HTMLResponse(
            HOST_PAGE.format(parley=parley_url, agent=agent),
            headers={"Content-Security-Policy": csp},
        )

    return Starlette(routes=[Route("/", page)])
