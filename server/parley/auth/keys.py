"""Verification keys, and the algorithms each one may be used with.

The allowed algorithm follows from the type of the configured key, never from
the token's header. That way a token can't pick ``none``, and it can't get a
public key used as an HMAC secret (algorithm confusion).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

HMAC_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "ES256")
MIN_SECRET_BYTES = 32

# Each curve has exactly one matching ECDSA algorithm (RFC 7518, section 3.4).
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

VerificationKey = str | RSAPublicKey | EllipticCurvePublicKey


@dataclass(frozen=True)
class StaticKey:
    """One key known at start-up, together with the only algorithms it accepts."""

    key: VerificationKey
    algorithms: tuple[str, ...]


def secret_key(secret: str) -> StaticKey:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"an HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
    return StaticKey(secret, HMAC_ALGORITHMS)


def public_key(pem: str) -> StaticKey:
    """A PEM public key (``PUBLIC KEY``, ``RSA PUBLIC KEY`` or ``CERTIFICATE``)."""
    loaded = _load_pem(pem.strip().encode())
    if isinstance(loaded, RSAPublicKey):
        if loaded.key_size < 2048:
            raise ValueError("the JWT RSA public key must be at least 2048 bits")
        return StaticKey(loaded, ("RS256",))
    if isinstance(loaded, EllipticCurvePublicKey):
        algorithm = _CURVE_ALGORITHMS.get(loaded.curve.name)
        if algorithm is None:
            raise ValueError(f"unsupported elliptic curve {loaded.curve.name}")
        return StaticKey(loaded, (algorithm,))
    raise ValueError("the JWT public key must be an RSA or EC key")


def _load_pem(data: bytes) -> object:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        return load_pem_public_key(data)
    except ValueError:
        # The message deliberately leaves the key material out.
        raise ValueError("the JWT public key is not a readable PEM public key") from None


def read_pem(value: str) -> str:
    """PEM text from a setting that holds either the PEM itself or a path to it.

    Environment variables often carry a PEM with its newlines written as ``\\n``.
    """
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n")
    return Path(value).expanduser().read_text(encoding="ascii")


class JwksKeys:
    """Signing keys published at a JWKS URL, fetched lazily and cached.

    ``PyJWKClient`` caches the key set (``lifespan``) and rate-limits refreshes
    caused by unknown ``kid`` values, so forged tokens can't hammer the
    identity provider. Its fetch is blocking, so it runs in a thread; the lock
    keeps a slow provider from tying up one worker thread per waiting request.
    """

    def __init__(self, url: str, *, lifespan: float = 300.0, timeout: float = 5.0) -> None:
        try:
            self._client = jwt.PyJWKClient(
                url, lifespan=lifespan, timeout=timeout, headers={"User-Agent": "parley"}
            )
        except jwt.PyJWKClientError as error:
            raise ValueError(str(error)) from None
        self._lock = asyncio.Lock()

    async def key_for(self, token: str) -> jwt.PyJWK:
        """The published key named by the token's ``kid``; raises ``jwt.PyJWTError``."""
        async with self._lock:
            return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
