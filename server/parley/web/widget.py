"""The embeddable widget: the loader a host page includes, and the chat page it frames.

- ``GET /widget.js``: the loader. One ``<script src=".../widget.js" data-agent="...">``
  on a host page adds a chat button; opening it frames the widget's page.
- ``GET /widget?agent=<id>``: the chat, on this server's origin and under its own
  strict CSP. Only agents that take guests have one, and only this server's own
  pages and the agent's ``sites`` may frame it (``frame-ancestors``); every other
  page keeps ``frame-ancestors 'none'``.
- ``GET /widget/demo``: a host page to try it on (dev sign-in only, like the quick start).

See docs/clients.md, "Widget".
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from parley.catalog import Agent, Catalog
from parley.errors import ParleyError
from parley.web.pages import page_templates
from parley.web.routes import SECURITY_HEADERS, content_security_policy

LOADER = Path("static") / "widget" / "embed.js"
PAGE = "widget.html"
DEMO_PAGE = "widget-demo.html"


def widget_routes(web_dir: Path, *, demo_enabled: bool) -> list[BaseRoute]:
    web_dir = Path(web_dir)
    environment = page_templates(web_dir / "templates", pages=(PAGE, DEMO_PAGE))
    loader = web_dir / LOADER
    if not loader.is_file():
        raise FileNotFoundError(loader)

    def render(template: str, csp: str, **values: str) -> Response:
        html = environment.get_template(template).render(**values)
        headers = {"Content-Security-Policy": csp, "Cache-Control": "no-cache", **SECURITY_HEADERS}
        return HTMLResponse(html, headers=headers)

    async def script(request: Request) -> Response:
        return FileResponse(
            loader,
            media_type="text/javascript",
            headers={
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                # Host pages on other sites load it (also under COEP: require-corp).
                "Cross-Origin-Resource-Policy": "cross-origin",
            },
        )

    async def chat(request: Request) -> Response:
        host = request.headers.get("host")
        agent = _guest_agent(request)
        if agent is None or agent.guests is None:
            return _not_found(host)
        csp = content_security_policy(host, frame_ancestors=("'self'", *agent.guests.sites))
        return render(
            PAGE,
            csp,
            agent_id=agent.id,
            agent_name=agent.name,
            sites=" ".join(agent.guests.sites),
        )

    async def demo(request: Request) -> Response:
        host = request.headers.get("host")
        agent = _guest_agent(request, default=True)
        if not demo_enabled or agent is None:
            return _not_found(host)
        csp = content_security_policy(host, frame_src="'self'")
        return render(DEMO_PAGE, csp, agent_id=agent.id, agent_name=agent.name)

    return [
        Route("/widget.js", script, methods=["GET"], name="widget_script"),
        Route("/widget", chat, methods=["GET"], name="widget_page"),
        Route("/widget/demo", demo, methods=["GET"], name="widget_demo"),
    ]


def _guest_agent(request: Request, *, default: bool = False) -> Agent | None:
    """The ``agent`` query parameter's agent if it takes guests (``default``: else the first)."""
    catalog: Catalog = request.app.state.services.catalog.current
    wanted = request.query_params.get("agent")
    if wanted is None and default:
        return next((a for a in catalog.agents.values() if a.guests is not None), None)
    try:
        return catalog.guest_agent(wanted or "")
    except ParleyError:
        return None


def _not_found(host: str | None) -> Response:
    return HTMLResponse(
        "<!doctype html><title>Not found</title><p>No chat here.</p>",
        status_code=404,
        headers={"Content-Security-Policy": content_security_policy(host), **SECURITY_HEADERS},
    )
