"""Token verification against real keys: HS256 secrets, RSA/EC PEMs and a live JWKS server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from parley.auth.tokens import Principal, TokenVerifier, ensure_dev_secret, mint_token
from parley.config import ConfigurationError, Settings
from parley.errors import Unauthorized

SECRET = "s" * 64
OTHER_SECRET = "o" * 40


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "u1", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _public_pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


async def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    return caught.value.message


# --- HS256 -----------------------------------------------------------------


async def test_minted_token_verifies_into_principal() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, user_id="u1", name="Ada")
    assert await verifier.verify(token) == Principal(user_id="u1", name="Ada", admin=False)


async def test_name_defaults_to_subject_and_admin_flag_is_carried() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, user_id="root", admin=True)
    assert await verifier.verify(token) == Principal(user_id="root", name="root", admin=True)


@pytest.mark.parametrize(
    ("extra", "admin"),
    [
        ({"roles": ["user", "admin"]}, True),
        ({"admin": True}, True),
        ({"admin": "true"}, False),
        ({"roles": "admin"}, False),
        ({"roles": ["user"]}, False),
    ],
)
async def test_admin_comes_from_roles_list_or_boolean_claim(
    extra: dict[str, Any], admin: bool
) -> None:
    token = jwt.encode(_claims(**extra), SECRET, algorithm="HS256")
    assert (await TokenVerifier(secret=SECRET).verify(token)).admin is admin


async def test_verify_claims_reports_expiry() -> None:
    claims = _claims()
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    verified = await TokenVerifier(secret=SECRET).verify_claims(token)
    assert verified.expires_at == claims["exp"]


async def test_expired_token_is_rejected() -> None:
    token = jwt.encode(_claims(exp=int(time.time()) - 120), SECRET, algorithm="HS256")
    assert await _reason(TokenVerifier(secret=SECRET), token) == "token expired"


async def test_leeway_tolerates_small_clock_skew() -> None:
    token = jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    assert (await TokenVerifier(secret=SECRET, leeway=30).verify(token)).user_id == "u1"
    assert await _reason(TokenVerifier(secret=SECRET, leeway=0), token) == "token expired"


async def test_token_signed_with_another_secret_is_rejected() -> None:
    token = mint_token(OTHER_SECRET, user_id="u1")
    assert await _reason(TokenVerifier(secret=SECRET), token) == "bad signature"


async def test_tampered_claims_are_rejected() -> None:
    header, _, signature = mint_token(SECRET, user_id="u1").split(".")
    forged = _b64(json.dumps(_claims(sub="someone-else")).encode())
    token = f"{header}.{forged}.{signature}"
    assert await _reason(TokenVerifier(secret=SECRET), token) == "bad signature"


async def test_unsigned_alg_none_token_is_rejected() -> None:
    token = _segments({"alg": "none", "typ": "JWT"}, _claims(admin=True)) + "."
    assert await _reason(TokenVerifier(secret=SECRET), token) == "algorithm not allowed"


async def test_other_hmac_algorithms_are_rejected() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS512")
    assert await _reason(TokenVerifier(secret=SECRET), token) == "algorithm not allowed"


@pytest.mark.parametrize("missing", ["exp", "sub"])
async def test_required_claims(missing: str) -> None:
    token = jwt.encode(_claims(**{missing: None}), SECRET, algorithm="HS256")
    assert await _reason(TokenVerifier(secret=SECRET), token) == f"missing {missing} claim"


@pytest.mark.parametrize("subject", ["", 123, "x" * 256])
async def test_subject_must_be_a_reasonable_string(subject: object) -> None:
    token = jwt.encode(_claims(sub=subject), SECRET, algorithm="HS256")
    assert await _reason(TokenVerifier(secret=SECRET), token) == "invalid subject"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 9000])
async def test_garbage_is_rejected(token: str) -> None:
    assert await _reason(TokenVerifier(secret=SECRET), token) == "malformed token"


async def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="parley", issuer="https://idp")
    good = mint_token(SECRET, user_id="u1", audience="parley", issuer="https://idp")
    assert (await verifier.verify(good)).user_id == "u1"
    wrong_aud = mint_token(SECRET, user_id="u1", audience="other", issuer="https://idp")
    assert await _reason(verifier, wrong_aud) == "wrong audience"
    wrong_iss = mint_token(SECRET, user_id="u1", audience="parley", issuer="https://evil")
    assert await _reason(verifier, wrong_iss) == "wrong issuer"
    no_aud = mint_token(SECRET, user_id="u1", issuer="https://idp")
    assert await _reason(verifier, no_aud) == "missing aud claim"
    no_iss = mint_token(SECRET, user_id="u1", audience="parley")
    assert await _reason(verifier, no_iss) == "missing iss claim"


async def test_token_for_some_audience_is_refused_when_none_is_configured() -> None:
    token = mint_token(SECRET, user_id="u1", audience="another-service")
    assert await _reason(TokenVerifier(secret=SECRET), token) == "wrong audience"


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier(secret="short")
    with pytest.raises(ValueError, match="32 bytes"):
        mint_token("short", user_id="u1")


def test_exactly_one_key_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier()
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier(secret=SECRET, jwks_url="http://127.0.0.1:1/jwks")


# --- PEM public keys -------------------------------------------------------


async def test_rs256_with_pem_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(public_key=_public_pem(rsa_key))
    token = jwt.encode(_claims(name="Grace"), rsa_key, algorithm="RS256")
    assert await verifier.verify(token) == Principal("u1", "Grace", False)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(), other, algorithm="RS256")
    assert await _reason(verifier, forged) == "bad signature"


async def test_es256_with_pem_public_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = TokenVerifier(public_key=_public_pem(ec_key))
    token = jwt.encode(_claims(), ec_key, algorithm="ES256")
    assert (await verifier.verify(token)).user_id == "u1"


async def test_algorithm_is_fixed_by_key_type(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = TokenVerifier(public_key=_public_pem(rsa_key))
    ps256 = jwt.encode(_claims(), rsa_key, algorithm="PS256")
    assert await _reason(verifier, ps256) == "algorithm not allowed"
    es256 = jwt.encode(_claims(), ec_key, algorithm="ES256")
    assert await _reason(verifier, es256) == "algorithm not allowed"


async def test_hs256_signed_with_the_public_key_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    # Algorithm confusion: an attacker signs with HMAC, using the (public) PEM as secret.
    pem = _public_pem(rsa_key)
    signing_input = _segments({"alg": "HS256", "typ": "JWT"}, _claims(sub="admin", admin=True))
    mac = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(mac)}"
    assert await _reason(TokenVerifier(public_key=pem), token) == "algorithm not allowed"


def test_unusable_public_keys_are_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="PEM public key"):
        TokenVerifier(public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    private_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ValueError) as caught:
        TokenVerifier(public_key=private_pem)
    assert "PRIVATE" not in str(caught.value)  # key material never echoed
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        TokenVerifier(public_key=_public_pem(weak))


# --- JWKS ------------------------------------------------------------------


@dataclass
class JwksServer:
    url: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server_state = JwksServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state.hits += 1
            body = json.dumps({"keys": server_state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # Keep test output quiet.

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _jwk(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


async def test_jwks_rs256_and_es256_with_caching(
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.keys = [_jwk(rsa_key, "rsa-1"), _jwk(ec_key, "ec-1")]
    verifier = TokenVerifier(jwks_url=jwks_server.url, audience="parley")
    rs = jwt.encode(_claims(aud="parley"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(_claims(aud="parley"), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await verifier.verify(rs)).user_id == "u1"
    assert (await verifier.verify(es)).user_id == "u1"
    assert (await verifier.verify(rs)).user_id == "u1"
    assert jwks_server.hits == 1


async def test_jwks_rejects_forged_and_unknown_keys(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.keys = [_jwk(rsa_key, "rsa-1")]
    verifier = TokenVerifier(jwks_url=jwks_server.url)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(), attacker, algorithm="RS256", headers={"kid": "rsa-1"})
    assert await _reason(verifier, forged) == "bad signature"
    unknown = jwt.encode(_claims(), attacker, algorithm="RS256", headers={"kid": "nope"})
    assert await _reason(verifier, unknown) == "unknown signing key"
    # The refresh that an unknown kid triggers is rate-limited: forged kids
    # can't make us hammer the identity provider.
    hits = jwks_server.hits
    for _ in range(3):
        await _reason(verifier, unknown)
    assert jwks_server.hits == hits


async def test_jwks_rejects_alg_none_and_hmac_confusion(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.keys = [_jwk(rsa_key, "rsa-1")]
    verifier = TokenVerifier(jwks_url=jwks_server.url)
    unsigned = _segments({"alg": "none", "kid": "rsa-1"}, _claims()) + "."
    assert await _reason(verifier, unsigned) == "algorithm not allowed"
    signing_input = _segments({"alg": "HS256", "kid": "rsa-1"}, _claims())
    mac = hmac.new(_public_pem(rsa_key).encode(), signing_input.encode(), hashlib.sha256)
    confused = f"{signing_input}.{_b64(mac.digest())}"
    assert await _reason(verifier, confused) == "algorithm not allowed"


async def test_unreachable_jwks_is_reported(rsa_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = TokenVerifier(jwks_url=f"http://127.0.0.1:{port}/jwks")
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k"})
    assert await _reason(verifier, token) == "signing keys unavailable"


def test_jwks_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="scheme"):
        TokenVerifier(jwks_url="file:///etc/passwd")


# --- settings and the dev secret ---------------------------------------------


async def test_from_settings_prefers_the_configured_secret() -> None:
    verifier = TokenVerifier.from_settings(Settings(jwt_secret=SECRET), dev_secret=OTHER_SECRET)
    assert (await verifier.verify(mint_token(SECRET, user_id="u1"))).user_id == "u1"
    assert await _reason(verifier, mint_token(OTHER_SECRET, user_id="u1")) == "bad signature"


async def test_from_settings_uses_dev_secret_when_no_key_is_configured() -> None:
    verifier = TokenVerifier.from_settings(Settings(), dev_secret=OTHER_SECRET)
    assert (await verifier.verify(mint_token(OTHER_SECRET, user_id="u1"))).user_id == "u1"


async def test_from_settings_reads_public_key_file_and_checks_claims(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    pem_file = tmp_path / "key.pem"
    pem_file.write_text(_public_pem(ec_key))
    settings = Settings(jwt_public_key=str(pem_file), jwt_audience="parley", jwt_issuer="idp")
    verifier = TokenVerifier.from_settings(settings, dev_secret=None)
    token = jwt.encode(_claims(aud="parley", iss="idp"), ec_key, algorithm="ES256")
    assert (await verifier.verify(token)).user_id == "u1"
    no_aud = jwt.encode(_claims(iss="idp"), ec_key, algorithm="ES256")
    assert await _reason(verifier, no_aud) == "missing aud claim"


def test_from_settings_without_any_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenVerifier.from_settings(Settings(), dev_secret=None)
    assert caught.value.problems[0].startswith("PARLEY_JWT_SECRET")


def test_from_settings_names_the_bad_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenVerifier.from_settings(
            Settings(jwt_public_key=str(tmp_path / "missing.pem")), dev_secret=None
        )
    assert caught.value.problems[0].startswith("PARLEY_JWT_PUBLIC_KEY:")


def test_dev_secret_is_created_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    secret = ensure_dev_secret(data_dir)
    path = data_dir / "jwt-secret"
    assert len(secret) >= 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_dev_secret(data_dir) == secret
    assert [p.name for p in data_dir.iterdir()] == ["jwt-secret"]  # no temporary left


def test_dev_secret_permissions_are_tightened(tmp_path: Path) -> None:
    secret = ensure_dev_secret(tmp_path)
    path = tmp_path / "jwt-secret"
    path.chmod(0o644)
    assert ensure_dev_secret(tmp_path) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_dev_secret_that_is_too_short_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt-secret").write_text("short\n")
    with pytest.raises(ValueError, match="delete it"):
        ensure_dev_secret(tmp_path)
