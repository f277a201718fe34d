"""An example MCP server for technical support: service status and known issues.

Built with the official SDK and served over stdio (what ``tools/status_page.yaml``
runs) or streamable HTTP::

    python -m parley.examples.mcp_server                     # stdio
    python -m parley.examples.mcp_server --http --port 8766  # http://127.0.0.1:8766/mcp

The data is fixed and in memory, so it needs no key or network.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from parley.examples.background import BackgroundServer

MCP_PATH = "/mcp"

_SERVICES: dict[str, dict[str, Any]] = {
    "email": {"status": "operational", "since": "2025-03-01T08:00:00Z", "note": None},
    "vpn": {
        "status": "degraded",
        "since": "2025-03-05T07:40:00Z",
        "note": "Slow connections in the EU-West region; a fix is being rolled out.",
    },
    "sso": {"status": "operational", "since": "2025-02-27T12:00:00Z", "note": None},
    "storage": {
        "status": "maintenance",
        "since": "2025-03-05T22:00:00Z",
        "note": "Planned maintenance until 02:00 UTC; uploads may fail.",
    },
    "video_calls": {"status": "operational", "since": "2025-03-03T09:15:00Z", "note": None},
}

_ISSUES: dict[str, list[dict[str, str]]] = {
    "laptop": [
        {
            "id": "KI-311",
            "title": "Wi-Fi drops after waking from sleep",
            "workaround": "Update the wireless driver to 23.40 or later; toggle Wi-Fi off and on.",
        }
    ],
    "email": [
        {
            "id": "KI-207",
            "title": "Mobile app asks for the password repeatedly",
            "workaround": "Remove the account from the app and add it again.",
        }
    ],
    "vpn": [
        {
            "id": "KI-402",
            "title": "Client 5.2 fails to connect on macOS 15",
            "workaround": "Install client 5.2.1 from the self-service portal.",
        }
    ],
    "printer": [],
}

ServiceName = Annotated[str, Field(description="One of: " + ", ".join(_SERVICES))]
ProductName = Annotated[str, Field(description="A product, e.g. laptop, email, vpn, printer")]


def create_server() -> MCPServer:
    server = MCPServer("parley-example-status", log_level="WARNING")

    @server.tool()
    def service_status(service: ServiceName) -> dict[str, Any]:
        """The current status of one of our online services, and since when."""
        key = service.strip().lower().replace(" ", "_")
        if key not in _SERVICES:
            raise ToolError(f"unknown service {service!r}; known: {', '.join(_SERVICES)}")
        return {"service": key, **_SERVICES[key]}

    @server.tool()
    def known_issues(product: ProductName) -> dict[str, Any]:
        """Known issues with a product and their workarounds (an empty list if none)."""
        key = product.strip().lower()
        return {"product": key, "issues": _ISSUES.get(key, [])}

    @server.tool()
    def list_services() -> list[str]:
        """The names of the services service_status knows about."""
        return list(_SERVICES)

    return server


def start_http_server(*, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Serve over streamable HTTP on a thread; the endpoint is ``.url + MCP_PATH``."""
    app = create_server().streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    return BackgroundServer(app, host=host, port=port).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="The example service-status MCP server.")
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    server = create_server()
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port, streamable_http_path=MCP_PATH)
    else:
        server.run()


if __name__ == "__main__":
    main()
