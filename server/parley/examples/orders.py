"""An example order and support-ticket service, the target of ``tools/lookup_order.yaml``
and ``tools/create_ticket.yaml``.

In-memory and self-contained: a handful of orders (ids 1042 to 1047) and the
tickets created since start-up. ``POST /tickets`` honours ``Idempotency-Key``
the way payment APIs do: the same key returns the same ticket and never
creates a second one, which is what Parley relies on when it retries a call
with side effects. ``GET /tickets`` lists them, so tests can check that.

Run it alone with ``python -m parley.examples.orders --port 8765`` and point
``PARLEY_EXAMPLE_ORDERS_URL`` at it, or start it in-process with
:func:`start_orders_service`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.examples.background import BackgroundServer

ORDERS_URL_ENV = "PARLEY_EXAMPLE_ORDERS_URL"
PRIORITIES = ("low", "normal", "high")

# The orders, one a row: id, status, placed on, total (every order is in euros),
# and the customer's name and email.
_ORDERS = (
    ("1042", "shipped", "2025-03-02", "49.00", "Ada Lovelace", "ada@example.com"),
    ("1043", "processing", "2025-03-04", "41.80", "Grace Hopper", "grace@example.com"),
    ("1044", "delivered", "2025-02-20", "129.00", "Alan Turing", "alan@example.com"),
    ("1045", "cancelled", "2025-02-28", "289.00", "Katherine Johnson", "katherine@example.com"),
    ("1046", "delayed", "2025-03-01", "999.00", "Edsger Dijkstra", "edsger@example.com"),
    ("1047", "returned", "2025-02-10", "199.00", "Barbara Liskov", "barbara@example.com"),
)
# What each order holds: (sku, name, quantity) a line.
_ITEMS = {
    "1042": [("KB-201", "Wireless keyboard", 1)],
    "1043": [("MS-110", "Ergonomic mouse", 1), ("PD-050", "Mouse pad", 2)],
    "1044": [("HD-900", "USB-C dock", 1)],
    "1045": [("MN-270", "27-inch monitor", 1)],
    "1046": [("LP-140", "14-inch laptop", 1)],
    "1047": [("HP-330", "Noise-cancelling headphones", 1)],
}
# How each order travels: carrier, tracking number, expected delivery (None: not known yet).
_SHIPPING = {
    "1042": ("DHL", "JD014600003828", "2025-03-06"),
    "1043": (None, None, "2025-03-10"),
    "1044": ("UPS", "1Z999AA10123456784", "2025-02-24"),
    "1045": (None, None, None),
    "1046": ("DPD", "05212345678901", "2025-03-14"),
    "1047": ("DHL", "JD014600003901", "2025-02-13"),
}


def _order(
    order_id: str, status: str, placed_at: str, total: str, name: str, email: str
) -> dict[str, Any]:
    """One row of the tables above, as ``GET /orders/{order_id}`` answers it."""
    carrier, tracking, eta = _SHIPPING[order_id]
    return {
        "id": order_id,
        "status": status,
        "placed_at": placed_at,
        "items": [
            {"sku": sku, "name": item, "quantity": quantity}
            for sku, item, quantity in _ITEMS[order_id]
        ],
        "total": total,
        "currency": "EUR",
        "shipping": {"carrier": carrier, "tracking": tracking, "eta": eta},
        "customer": {"name": name, "email": email},
    }


class OrderService:
    """The service's state. Handlers run on one event loop and never await between
    looking up an idempotency key and storing its ticket, so concurrent retries
    with one key cannot both create a ticket."""

    def __init__(self) -> None:
        self.orders = {row[0]: _order(*row) for row in _ORDERS}  # afresh: no two services share one
        self.tickets: list[dict[str, Any]] = []
        self._by_key: dict[str, tuple[str, dict[str, Any]]] = {}

    def create_ticket(self, fields: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 201 new, 200 a replay, 422 a key reused for another request."""
        fingerprint = json.dumps(fields, sort_keys=True)
        if key is not None and key in self._by_key:
            seen, ticket = self._by_key[key]
            if seen != fingerprint:
                return 422, {"error": "this Idempotency-Key was used for a different request"}
            return 200, ticket
        ticket = {
            "id": f"T-{1001 + len(self.tickets)}",
            "status": "open",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **fields,
        }
        self.tickets.append(ticket)
        if key is not None:
            self._by_key[key] = (fingerprint, ticket)
        return 201, ticket


def create_app(service: OrderService | None = None) -> Starlette:
    service = service or OrderService()

    async def get_order(request: Request) -> JSONResponse:
        order = service.orders.get(request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        return JSONResponse(order)

    async def post_ticket(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        fields, problem = _ticket_fields(body, service)
        if problem:
            return JSONResponse({"error": problem}, status_code=422)
        status, ticket = service.create_ticket(fields, request.headers.get("idempotency-key"))
        headers = {"Idempotent-Replayed": "true"} if status == 200 else {}
        return JSONResponse(ticket, status_code=status, headers=headers)

    async def list_tickets(request: Request) -> JSONResponse:
        return JSONResponse({"tickets": service.tickets, "created": len(service.tickets)})

    return Starlette(
        routes=[
            Route("/orders/{order_id}", get_order, methods=["GET"]),
            Route("/tickets", post_ticket, methods=["POST"]),
            Route("/tickets", list_tickets, methods=["GET"]),
        ]
    )


def start_orders_service(*, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start the service on a thread (a free port by default); ``.url`` is its base URL.

    Call ``.stop()`` when done, or use the result as a context manager.
    """
    return BackgroundServer(create_app(), host=host, port=port).start()


def environ_as_served(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment as ``parley serve`` will run with it: when the service's URL
    is unset, serve starts the service itself, so its URL will be set (to a
    local address; this stands in for it)."""
    return {ORDERS_URL_ENV: "http://127.0.0.1:8765", **environ}


def serve_unless_configured() -> BackgroundServer | None:
    """Start the service for the shipped tools unless ``PARLEY_EXAMPLE_ORDERS_URL``
    already says where one runs; the variable is then set to it (worker
    processes inherit it). ``None`` when nothing was started."""
    if os.environ.get(ORDERS_URL_ENV):
        return None
    service = start_orders_service()
    os.environ[ORDERS_URL_ENV] = service.url
    return service


def _ticket_fields(body: Any, service: OrderService) -> tuple[dict[str, Any], str | None]:
    if not isinstance(body, dict):
        return {}, "the body must be a JSON object"
    subject, description = body.get("subject"), body.get("description")
    if not isinstance(subject, str) or not subject.strip():
        return {}, "subject: required"
    if not isinstance(description, str) or not description.strip():
        return {}, "description: required"
    fields: dict[str, Any] = {"subject": subject.strip(), "description": description.strip()}
    order_id = body.get("order_id")
    if order_id is not None:
        if order_id not in service.orders:
            return {}, f"order_id: no order {order_id!r}"
        fields["order_id"] = order_id
    priority = body.get("priority", "normal")
    if priority not in PRIORITIES:
        return {}, f"priority: one of {', '.join(PRIORITIES)}"
    fields["priority"] = priority
    return fields, None


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The example order and ticket service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    print(f"orders service on http://{args.host}:{args.port}  (set {ORDERS_URL_ENV} to this)")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
