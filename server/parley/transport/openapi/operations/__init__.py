"""Every HTTP route of the app, described: one :class:`Operation` per method and path.

The entries live in one module per part of the API, in the order ``/docs``
shows them; each module binds its tag (and the access its routes share) once.
A new route adds one entry to its part's module (its body model, its answers,
the errors of its own); the test that walks the app's routes fails until it
does. Routes that are not API (pages, static files, the WebSocket) are listed
in :data:`NOT_DESCRIBED` with the reason.
"""

from __future__ import annotations

from parley.transport.openapi.operations.admin import ADMIN
from parley.transport.openapi.operations.auth import AUTH
from parley.transport.openapi.operations.chat import CHAT
from parley.transport.openapi.operations.compatible import COMPATIBLE
from parley.transport.openapi.operations.knowledge import KNOWLEDGE
from parley.transport.openapi.operations.service import SERVICE
from parley.transport.openapi.registry import Operation

# The order of the document's paths and tags.
OPERATIONS: tuple[Operation, ...] = (
    *SERVICE,
    *AUTH,
    *CHAT,
    *COMPATIBLE,
    *ADMIN,
    *KNOWLEDGE,
)

# Routes that are not API, and why they are not described.
NOT_DESCRIBED: dict[tuple[str, str], str] = {
    ("GET", "/"): "the chat page (HTML)",
    ("GET", "/console"): "the operator console (HTML)",
    ("GET", "/docs"): "this API's documentation page (HTML)",
    ("GET", "/static/*"): "the pages' assets",
    ("GET", "/static/client/*"): "the JavaScript client's modules",
    ("GET", "/widget"): "the embeddable widget's chat page (HTML)",
    ("GET", "/widget.js"): "the widget's loader script",
    ("GET", "/widget/demo"): "a page to try the widget on (HTML)",
    ("GET", "/ws"): "the WebSocket protocol, described in docs/protocol.md",
}
