"""Guest tokens: HS256 JWTs that Parley signs with a key of its own.

They are not the deployment's user tokens: the configured verifier (secret,
public key or JWKS) never accepts one, so every endpoint refuses guests unless
it asks :class:`~parley.guests.verifier.ChatVerifier`, which only the chat
WebSocket and the scope check of the REST API do. A guest token names its
guest (``sub``) and the one agent it may chat with (``agent``), and lives
``PARLEY_GUEST_TOKEN_TTL_SECONDS``.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import jwt

from parley.auth.tokens import (
    CLOCK_SKEW_SECONDS,
    GUEST_SUBJECT_PREFIX,
    MAX_TOKEN_CHARS,
    Principal,
    VerifiedToken,
)
from parley.errors import Unauthorized

log = logging.getLogger(__name__)

# In the JWT header: says which verifier a token is for (the signature decides the rest).
GUEST_KEY_ID = "parley-guest-1"
GUEST_AUDIENCE = "parley-guest"
GUEST_NAME = "Guest"
_AGENT_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class GuestTokens:
    def __init__(self, key: bytes, *, ttl_seconds: int, leeway: float = CLOCK_SKEW_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._key = key
        self._ttl = ttl_seconds
        self._leeway = leeway

    @property
    def leeway(self) -> float:
        return self._leeway

    def mint(self, user_id: str, agent_id: str) -> tuple[str, int]:
        """A token for guest ``user_id`` and agent ``agent_id``, and its expiry."""
        now = int(time.time())
        expires_at = now + self._ttl
        claims = {
            "sub": user_id,
            "agent": agent_id,
            "aud": GUEST_AUDIENCE,
            "iat": now,
            "exp": expires_at,
        }
        token = jwt.encode(claims, self._key, algorithm="HS256", headers={"kid": GUEST_KEY_ID})
        return token, expires_at

    @staticmethod
    def claims_guest(token: str) -> bool:
        """Whether ``token`` says it is a guest token (unverified: it only picks the verifier)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return False
        try:
            return jwt.get_unverified_header(token).get("kid") == GUEST_KEY_ID
        except jwt.PyJWTError:
            return False

    async def verify_claims(self, token: str) -> VerifiedToken:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("malformed token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=GUEST_AUDIENCE,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWTError as error:
            log.info("guest token rejected: %s", type(error).__name__)
            raise Unauthorized("invalid guest token") from None
        subject, agent = claims.get("sub"), claims.get("agent")
        if not isinstance(subject, str) or not subject.startswith(GUEST_SUBJECT_PREFIX):
            raise Unauthorized("invalid guest token")
        if not isinstance(agent, str) or not _AGENT_ID.fullmatch(agent):
            raise Unauthorized("invalid guest token")
        principal = Principal(user_id=subject, name=GUEST_NAME, admin=False, guest_agent=agent)
        return VerifiedToken(principal, int(claims["exp"]))
