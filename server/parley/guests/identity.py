"""Guest ids: a random name and its HMAC tag, ``<22 chars>.<22 chars>``.

The widget keeps the id and presents it again for a fresh token as the same
guest (same conversations, same budget). Only ids this server signed are
accepted, so nobody can pick someone else's: the random part is 128 bits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from parley.auth.tokens import GUEST_SUBJECT_PREFIX
from parley.errors import BadRequest

_GUEST_ID = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$")
MAX_GUEST_ID_CHARS = 45


class GuestIds:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self) -> str:
        """A new guest's id."""
        name = secrets.token_urlsafe(16)
        return f"{name}.{self._tag(name)}"

    def user_id(self, guest_id: str) -> str:
        """The user id of a guest id this server signed; ``BadRequest`` for any other."""
        match = _GUEST_ID.fullmatch(guest_id)
        if match is None or not hmac.compare_digest(match[2], self._tag(match[1])):
            raise BadRequest("guest_id: not a guest id this server issued; ask without one.")
        return f"{GUEST_SUBJECT_PREFIX}{match[1]}"

    def _tag(self, name: str) -> str:
        digest = hmac.new(self._key, name.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
