"""The JSON bodies of Parley's own REST answers, as pydantic models.

They are what ``GET /openapi.json`` publishes (see :mod:`parley.transport.openapi`),
so a field an endpoint sends that is not here, or one here that it does not
send, is a schema violation the API tests catch. Objects are closed
(``additionalProperties: false``) where Parley decides every field; rows that
carry whatever a table holds (webhook deliveries, handoff records) are open.

One module per part of the API (``auth``, ``conversations``, ``replies``,
``admin``…); ``base`` holds :class:`~parley.transport.bodies.base.Closed` and
:func:`~parley.transport.bodies.base.respond`, ``errors`` the ``{"error"}``
body, ``messages`` the parts of a stored message that several answers share.

Request bodies live next to the endpoints that parse them (``ChatBody``,
``ConfirmBody``…); the compatible APIs' shapes live in
:mod:`parley.transport.compat`.
"""
