"""Values from a URL (query parameters, path segments), read the one way.

Only ASCII digits make a number: ``str.isdigit`` also accepts "²" and other
digits ``int`` refuses, and ``int`` refuses more than 4300 digits, so both
once turned a malformed URL into a 500. Names (an agent, a user) follow the
body's :data:`~parley.transport.fields.Identifier` rules, so no NUL reaches
Postgres (which refuses it: another 500).
"""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from parley.errors import BadRequest
from parley.transport.fields import Identifier

# More digits than any limit here, and than a Postgres bigint holds.
MAX_DIGITS = 18
_identifier: TypeAdapter[str] = TypeAdapter(Identifier)


def whole_number(raw: str) -> int | None:
    """``raw`` as a non-negative integer, or ``None`` unless it is 1 to 18 ASCII digits."""
    if not 0 < len(raw) <= MAX_DIGITS or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def query_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` from ``low`` to ``high``; ``default`` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = whole_number(raw)
    if value is None or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}.")
    return value


def query_identifier(request: Request, name: str) -> str | None:
    """The query parameter ``name`` as an identifier; ``None`` when absent or empty."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return _identifier.validate_python(raw)
    except ValidationError as error:
        raise BadRequest(f"{name}: {error.errors()[0]['msg']}") from None
