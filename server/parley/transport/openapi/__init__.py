"""Parley's REST API described as OpenAPI 3.1: ``GET /openapi.json`` and ``GET /docs``.

- ``registry``: the vocabulary (:class:`Operation`, :class:`Answer`, parameters).
- ``operations``: every route, one :class:`Operation` each (``OPERATIONS``), in
  one module per part of the API, and the routes that are not API
  (``NOT_DESCRIBED``).
- ``document``: the OpenAPI document, built from those entries and the pydantic
  models they name (request bodies next to their endpoints; answers in
  :mod:`parley.transport.bodies`, the compatible APIs' in
  :mod:`parley.transport.compat`).
- ``page``: the readable page, rendered from the document.
- ``routes``: the two endpoints; both are built once, when the app is.

Adding a route (say ``POST /v1/guest``):

1. Give its JSON body a pydantic model next to the endpoint and parse it with
   :func:`parley.transport.rest.parse_body`; give its answer a model in the
   module of :mod:`parley.transport.bodies` for its part of the API and build
   the response from it.
2. Add one entry to its part's module of ``operations`` (``auth`` here), made
   with the module's ``partial(Operation, tag=…, access=…)``::

       auth(
           "POST", "/v1/guest", "A short-lived token for an anonymous visitor",
           ok(GuestToken, "The token and when it expires."),
           body=GuestRequest, errors=(403, 404),
       ),

   ``access`` decides the security and the shared errors (401 and 403 for
   admins, 429 under ``/v1/``, 500 everywhere, 400 with a body or query);
   ``errors`` adds the statuses of its own, in the ``{"error"}`` body.
3. tests/test_openapi.py fails until every route is described, validates the
   document, and fuzzes the new operation with schemathesis.

A route that is not API (a page, a script) goes into ``NOT_DESCRIBED`` with
the reason. Middleware answers (CORS preflights) need no entry.
"""

from parley.transport.openapi.document import build_document, served
from parley.transport.openapi.operations import NOT_DESCRIBED, OPERATIONS
from parley.transport.openapi.routes import openapi_routes

__all__ = ["NOT_DESCRIBED", "OPERATIONS", "build_document", "openapi_routes", "served"]
