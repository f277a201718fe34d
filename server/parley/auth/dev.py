"""Dev login: anyone may sign in under any name, so it is off unless enabled.

The user id is derived from the name alone, so typing the same name again
signs in as the same user (and sees the same conversations).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from parley.errors import BadRequest

DEV_TOKEN_TTL_SECONDS = 12 * 3600
MAX_NAME_CHARS = 64
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def clean_name(value: object) -> str:
    """The display name, trimmed; raises ``BadRequest`` unless 1-64 printable characters."""
    if not isinstance(value, str):
        raise BadRequest("name must be a string")
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise BadRequest(f"name must be 1 to {MAX_NAME_CHARS} characters")
    if not name.isprintable():
        raise BadRequest("name must contain printable characters only")
    return name


def dev_user_id(name: str) -> str:
    """``dev-`` plus an ASCII slug of the name ("Zoë Ann" -> "dev-zoe-ann").

    Names with no ASCII letters or digits at all get a hash of the name instead.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")
    if not slug:
        slug = hashlib.sha256(name.casefold().encode()).hexdigest()[:16]
    return f"dev-{slug}"
