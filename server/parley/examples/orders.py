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
import copy
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

_ORDERS: list[dict[str, Any]] = [
    {
        "id": "1042",
        "status": "shipped",
        "placed_at": "2025-03-02",
        "items": [{"sku": "KB-201", "name": "Wireless keyboard", "quantity": 1}],
        "total": "49.00",
        "currency": "EUR",
        "shipping": {"carrier": "DHL", "tracking": "JD014600003828", "eta": "2025-03-06"},
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    },
    {
        "id": "1043",
        "status": "processing",
        "placed_at": "2025-03-04",
        "items": [
            {"sku": "MS-110", "name": "Ergonomic mouse", "quantity": 1},
            {"sku": "PD-050", "name": "Mouse pad", "quantity": 2},
        ],
        "total": "41.80",
        "currency": "EUR",
        "shipping": {"carrier": None, "tracking": None, "eta": "2025-03-10"},
        "customer": {"name": "Grace Hopper", "email": "grace@example.com"},
    },
    {
        "id": "1044",
        "status": "delivered",
        "placed_at": "2025-02-20",
        "items": [{"sku": "HD-900", "name": "USB-C dock", "quantity": 1}],
        "total": "129.00",
        "currency": "EUR",
        "shipping": {"carrier": "UPS", "tracking": "1Z999AA10123456784", "eta": "2025-02-24"},
        "customer": {"name": "Alan Turing", "email": "alan@example.com"},
    },
    {
        "id": "1045",
        "status": "cancelled",
        "placed_at": "2025-02-28",
        "items": [{"sku": "MN-270", "name": "27-inch monitor", "quantity": 1}],
        "total": "289.00",
        "currency": "EUR",
        "shipping": {"carrier": None, "tracking": None, "eta": None},
        "customer": {"name": "Katherine Johnson", "email": "katherine@example.com"},
    },
    {
        "id": "1046",
        "status": "delayed",
        "placed_at": "2025-03-01",
        "items": [{"sku": "LP-140", "name": "14-inch laptop", "quantity": 1}],
        "total": "999.00",
        "currency": "EUR",
        "shipping": {"carrier": "DPD", "tracking": "05212345678901", "eta": "2025-03-14"},
        "customer": {"name": "Edsger Dijkstra", "email": "edsger@example.com"},
    },
    {
        "id": "1047",
        "status": "returned",
        "placed_at": "2025-02-10",
        "items": [{"sku": "HP-330", "name": "Noise-cancelling headphones", "quantity": 1}],
        "total": "199.00",
        "currency": "EUR",
        "shipping": {"carrier": "DHL", "tracking": "JD014600003901", "eta": "2025-02-13"},
        "customer": {"name": "Barbara Liskov", "email": "barbara@example.com"},
    },
]


class OrderService:
    """The service's state. Handlers run on one event loop and never await between
    looking up an idempotency key and storing its ticket, so concurrent retries
    with one key cannot both create a ticket."""

    def __init__(self) -> None:
        self.orders = {order["id"]: copy.deepcopy(order) for order in _ORDERS}
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
