"""The browser chat UI: one HTML page at ``/`` and its static assets under ``/static``.

The page is a Jinja2 template (autoescaped) with no inline script or style, so it
can be served under a strict Content-Security-Policy. Configuration reaches the
scripts through ``data-*`` attributes on ``<body>``. See ``docs/ui.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from parley.web.pages import page_templates

# A Host header we are willing to echo into the CSP: a DNS name, IPv4 or
# bracketed IPv6 literal, with an optional port. Anything else (spaces, ';',
# quotes...) could smuggle directives, so it is dropped and 'self' alone remains.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def content_security_policy(
    host: str | None,
    *,
    frame_ancestors: Sequence[str] = ("'none'",),
    frame_src: str = "'none'",
) -> str:
    """The page's CSP. ``host`` is the request's Host header, used for ``ws:``/``wss:``.

    Pages may be framed by nobody, except the widget's page (``frame_ancestors``:
    its agent's sites, :mod:`parley.web.widget`); only the widget's demo page frames.
    """
    connect = ["'self'"]
    if host and _HOST.fullmatch(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Model output may only show same-origin images; remote images are a
        # tracking vector. data: covers the UI's own CSS icons only (the
        # sanitiser drops data: URLs from model output).
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src {' '.join(connect)}",
        "media-src 'none'",
        "object-src 'none'",
        f"frame-src {frame_src}",
        "worker-src 'none'",
        f"frame-ancestors {' '.join(frame_ancestors)}",
        "base-uri 'none'",
        "form-action 'self'",
        "manifest-src 'self'",
        # DOM XSS sinks (innerHTML, DOMParser...) only accept values minted by
        # DOMPurify's own Trusted Types policy, in browsers that enforce it.
        "require-trusted-types-for 'script'",
        "trusted-types dompurify",
    ]
    return "; ".join(directives)


class _StaticFiles(StaticFiles):
    """StaticFiles that always revalidates (cheap 304s) and sends ``nosniff``.

    Module scripts import each other by plain relative URLs, so assets are not
    fingerprinted; ``no-cache`` plus the ETag keeps a deploy from mixing old and
    new files while still costing only a 304 per file.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            not_modified = NotModifiedResponse(response.headers)
            not_modified.headers["X-Content-Type-Options"] = "nosniff"
            return not_modified
        return response


class _PublicModules(_StaticFiles):
    """Static files any origin may load: the client's modules, for the widget on other sites.

    Module scripts are fetched in CORS mode, and these hold no secrets.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return response


def web_routes(
    web_dir: Path,
    *,
    dev_login_enabled: bool,
    max_message_chars: int | None = None,
    client_dir: Path | None = None,
) -> list[BaseRoute]:
    """Routes for the chat UI: ``GET /`` (the page) and ``/static`` (its assets).

    ``max_message_chars`` is optional; when given the composer refuses longer
    messages before sending them (the server enforces its own limit regardless).
    ``client_dir`` holds the JavaScript client's modules (``clients/js/src``),
    served as they are at ``/static/client/`` for the UI and the widget to import.
    """
    web_dir = Path(web_dir)
    environment = page_templates(web_dir / "templates", pages=("index.html", "console.html"))

    def render(request: Request, page: str) -> Response:
        html = environment.get_template(page).render(
            dev_login_enabled=dev_login_enabled,
            max_message_chars=max_message_chars or 0,
        )
        headers = {
            "Content-Security-Policy": content_security_policy(request.headers.get("host")),
            "Cache-Control": "no-cache",
            **SECURITY_HEADERS,
        }
        return HTMLResponse(html, headers=headers)

    async def index(request: Request) -> Response:
        return render(request, "index.html")

    async def console(request: Request) -> Response:
        """The operator console (admins; its data comes from the admin endpoints)."""
        return render(request, "console.html")

    client = (
        [Mount("/static/client", app=_PublicModules(directory=client_dir), name="static_client")]
        if client_dir is not None
        else []
    )
    return [
        Route("/", index, methods=["GET"], name="web_index"),
        Route("/console", console, methods=["GET"], name="web_console"),
        *client,  # before /static, which would otherwise take its paths
        Mount("/static", app=_StaticFiles(directory=web_dir / "static"), name="static"),
    ]
