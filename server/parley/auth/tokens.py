"""Bearer tokens: verifying JWTs into a :class:`Principal`, and minting dev tokens.

Verification is strict: the algorithm is fixed by the configured key, ``exp``
and ``sub`` are required, and audience and issuer are checked when configured.
Failures raise :class:`~parley.errors.Unauthorized` with a short reason that is
safe to show the client; the token itself is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt

from parley.auth import keys
from parley.config import ConfigurationError, Settings
from parley.errors import Unauthorized

log = logging.getLogger(__name__)

# Far above any real JWT; stops oversized input before it is base64-decoded.
MAX_TOKEN_CHARS = 8192
MAX_SUBJECT_CHARS = 255
MAX_NAME_CHARS = 128
DEV_SECRET_FILE = "jwt-secret"
# Subjects Parley gives guests (parley.guests); a token from anyone else may not claim one.
GUEST_SUBJECT_PREFIX = "guest:"
# Tokens are accepted this long past their ``exp``: the issuer's clock may run ahead of ours.
CLOCK_SKEW_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who is making a request."""

    user_id: str
    name: str
    admin: bool
    # A guest (docs/clients.md, "Widget") may chat with this agent only, nothing else.
    guest_agent: str | None = None


@dataclass(frozen=True)
class VerifiedToken:
    """A verified token's principal, plus its expiry (Unix seconds) for cookies."""

    principal: Principal
    expires_at: int


class Verifier(Protocol):
    """What checks a token: :class:`TokenVerifier`, or one that also knows guest tokens."""

    @property
    def leeway(self) -> float: ...

    async def verify_claims(self, token: str) -> VerifiedToken: ...


class TokenVerifier:
    """Checks JWTs against exactly one of: an HS256 secret, a PEM public key, a JWKS URL."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = CLOCK_SKEW_SECONDS,
    ) -> None:
        given = [value for value in (secret, public_key, jwks_url) if value]
        if len(given) != 1:
            raise ValueError("give exactly one of secret, public_key or jwks_url")
        if leeway < 0:
            raise ValueError("leeway must not be negative")
        self._keys: keys.StaticKey | keys.JwksKeys
        if secret:
            self._keys = keys.secret_key(secret)
        elif public_key:
            self._keys = keys.public_key(public_key)
        else:
            self._keys = keys.JwksKeys(given[0])  # the only one left: jwks_url
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway

    @classmethod
    def from_settings(cls, settings: Settings, dev_secret: str | None) -> TokenVerifier:
        """The configured key; ``dev_secret`` only when none is configured."""
        secret = settings.jwt_secret
        if not settings.has_configured_jwt_key:
            secret = dev_secret
        try:
            pem = keys.read_pem(settings.jwt_public_key) if settings.jwt_public_key else None
            return cls(
                secret=secret,
                public_key=pem,
                jwks_url=settings.jwks_url,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        except (ValueError, OSError) as error:
            raise ConfigurationError([_setting_problem(settings, dev_secret, error)]) from None

    @property
    def leeway(self) -> float:
        """Seconds past ``exp`` that a token is still accepted."""
        return self._leeway

    async def verify(self, token: str) -> Principal:
        return (await self.verify_claims(token)).principal

    async def verify_claims(self, token: str) -> VerifiedToken:
        """Like :meth:`verify`, also returning the expiry (used for the cookie's Max-Age)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("malformed token")
        try:
            claims = await self._decode(token)
        except jwt.PyJWTError as error:
            reason = _reason(error)
            log.info("token rejected: %s", reason)
            raise Unauthorized(reason) from None
        return VerifiedToken(_principal(claims), int(claims["exp"]))

    async def _decode(self, token: str) -> dict[str, Any]:
        key: Any
        algorithms: tuple[str, ...]
        if isinstance(self._keys, keys.JwksKeys):
            key, algorithms = await self._keys.key_for(token), keys.JWKS_ALGORITHMS
        else:
            key, algorithms = self._keys.key, self._keys.algorithms
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp", "sub"]},
        )
        return claims


def mint_token(
    secret: str,
    *,
    user_id: str,
    name: str | None = None,
    ttl_seconds: int = 3600,
    admin: bool = False,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token that :class:`TokenVerifier` (with the same secret) accepts."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    keys.secret_key(secret)  # Refuses secrets too short for HS256.
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if name is not None:
        claims["name"] = name
    if admin:
        claims["roles"] = ["admin"]
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def ensure_dev_secret(data_dir: Path) -> str:
    """The dev signing secret in ``data_dir/jwt-secret``, created (mode 0600) if missing.

    Several processes may start at once: the secret is written to a private
    temporary file and hard-linked into place, which fails instead of
    overwriting when another process won, so everyone ends up reading one secret.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / DEV_SECRET_FILE
    if not path.exists():
        _publish_new_secret(path)
    if path.stat().st_mode & 0o077:
        log.warning("tightening permissions of %s to 0600", path)
        path.chmod(0o600)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret.encode()) < keys.MIN_SECRET_BYTES:
        raise ValueError(f"{path} holds a secret shorter than 32 bytes; delete it to regenerate")
    return secret


def _publish_new_secret(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        # FileExistsError: another process published its secret first; use that one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise Unauthorized("invalid subject")
    if subject.startswith(GUEST_SUBJECT_PREFIX):
        raise Unauthorized("invalid subject")  # reserved: it would be some guest's identity
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        name = subject
    roles = claims.get("roles")
    admin = claims.get("admin") is True or (isinstance(roles, list) and "admin" in roles)
    return Principal(user_id=subject, name=name.strip()[:MAX_NAME_CHARS], admin=admin)


# Most specific first: InvalidSignatureError is a DecodeError, for instance.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidIssuedAtError, "invalid issued-at time"),
    (jwt.exceptions.InvalidSubjectError, "invalid subject"),
    (jwt.InvalidKeyError, "unusable signing key"),
    (jwt.PyJWKClientConnectionError, "signing keys unavailable"),
    (jwt.PyJWKClientError, "unknown signing key"),
    (jwt.DecodeError, "malformed token"),
)


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing {error.claim} claim"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "invalid token"


def _setting_problem(settings: Settings, dev_secret: str | None, error: Exception) -> str:
    if settings.jwt_public_key:
        name = "PARLEY_JWT_PUBLIC_KEY"
    elif settings.jwks_url:
        name = "PARLEY_JWKS_URL"
    elif settings.jwt_secret:
        name = "PARLEY_JWT_SECRET"
    elif dev_secret is None:
        return (
            "PARLEY_JWT_SECRET: set it, PARLEY_JWT_PUBLIC_KEY or PARLEY_JWKS_URL "
            "(or enable dev login)"
        )
    else:
        name = "PARLEY_DATA_DIR"
    # OSError text names a file, never its content; ValueError text is ours.
    return f"{name}: {error}"
