"""Authentication: JWT verification, the session cookie, and the /auth routes."""

from parley.auth.http import (
    SESSION_COOKIE,
    authenticate,
    authenticate_token,
    check_origin,
    origin_allowed,
    token_from_headers,
)
from parley.auth.routes import auth_routes
from parley.auth.tokens import (
    Principal,
    TokenVerifier,
    VerifiedToken,
    ensure_dev_secret,
    mint_token,
)

__all__ = [
    "SESSION_COOKIE",
    "Principal",
    "TokenVerifier",
    "VerifiedToken",
    "auth_routes",
    "authenticate",
    "authenticate_token",
    "check_origin",
    "ensure_dev_secret",
    "mint_token",
    "origin_allowed",
    "token_from_headers",
]
