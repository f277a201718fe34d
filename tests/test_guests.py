"""Guests: ``POST /v1/guest``, what a guest token may do, their budget, CORS, the widget's page.

Against real servers with a catalog of their own (tests/support/guests.py):
``guest_server`` with generous guest limits, ``limited_server`` with tiny ones.
Each test that counts against a per-address limit asks from a client address
of its own (127.x.y.z are all this machine), so the tests do not share counters.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from conftest import REPO, TokenFactory
from parley.catalog import CatalogError, load_catalog
from parley.transport.cors import CorsPolicy
from support.client import ChatClient, ask_once, start_and_ask
from support.fake_llm import FakeLLM, Script
from support.guests import (
    BUDGET_FILLER,
    GUEST_AGENT,
    GUEST_BUDGET_AGENT,
    GUEST_TOOLS_AGENT,
    ask_guest,
    guest_token,
    write_guest_catalog,
)
from support.server import ParleyServer

SITE = "https://shop.example"
OTHER_SITE = "https://blog.example"
APP_ORIGIN = "https://app.example"  # PARLEY_ALLOWED_ORIGINS: a sibling front end
STRANGER = "https://evil.example"
LIMITED_SITES = [f"https://site-{n}.example" for n in range(6)]
TTL_SECONDS = 600

_addresses = itertools.count(2)


def fresh_address() -> str:
    """A loopback address no other test asked from."""
    n = next(_addresses)
    return f"127.0.{n // 250}.{n % 250 + 2}"


@pytest.fixture(scope="module")
def guest_server(
    server_env: dict[str, str], catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    catalog = write_guest_catalog(
        catalog_dir, tmp_path_factory.mktemp("guests") / "catalog", [SITE, OTHER_SITE]
    )
    env = {
        **server_env,
        "PARLEY_CATALOG": str(catalog),
        "PARLEY_ALLOWED_ORIGINS": APP_ORIGIN,
        "PARLEY_GUEST_TOKEN_TTL_SECONDS": str(TTL_SECONDS),
        "PARLEY_GUEST_RATE_LIMIT_IP": "1000/minute",
        "PARLEY_GUEST_RATE_LIMIT_SITE": "1000/minute",
    }
    with ParleyServer(env, name="parley-guests") as instance:
        yield instance


@pytest.fixture(scope="module")
def limited_server(
    server_env: dict[str, str], catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    catalog = write_guest_catalog(
        catalog_dir, tmp_path_factory.mktemp("limited") / "catalog", LIMITED_SITES
    )
    env = {
        **server_env,
        "PARLEY_CATALOG": str(catalog),
        # Its own rate-limit counters: the other servers of this run count elsewhere.
        "PARLEY_REDIS_PREFIX": f"parley-limited-{uuid.uuid4().hex[:8]}",
        "PARLEY_GUEST_RATE_LIMIT_IP": "3/minute",
        "PARLEY_GUEST_RATE_LIMIT_SITE": "3/minute",
    }
    with ParleyServer(env, name="parley-guests-limited") as instance:
        yield instance


def claims(token: str) -> dict[str, object]:
    """A token's claims, unverified (the server verifies; tests only read them)."""
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


# -- POST /v1/guest -----------------------------------------------------------------


async def test_a_guest_gets_a_short_lived_token_for_one_agent(guest_server: ParleyServer) -> None:
    response = await ask_guest(guest_server.url, source=fresh_address())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    assert set(answer) == {"token", "token_type", "expires_at", "expires_in", "guest_id", "agent"}
    assert answer["agent"] == GUEST_AGENT and answer["token_type"] == "Bearer"
    assert TTL_SECONDS - 5 <= answer["expires_in"] <= TTL_SECONDS
    token = claims(answer["token"])
    assert token["agent"] == GUEST_AGENT
    assert str(token["sub"]).startswith("guest:")
    assert int(str(token["exp"])) == answer["expires_at"]


async def test_the_same_guest_id_gets_the_same_guest_and_its_conversation(
    guest_server: ParleyServer, fake: FakeLLM
) -> None:
    first = await guest_token(guest_server.url, source=fresh_address())
    fake.enqueue(Script(chunks=["Hello ", "guest."]))
    session, reply = await start_and_ask(
        guest_server.ws_url, first["token"], GUEST_AGENT, "Hi there"
    )
    assert reply.done is not None and reply.done["status"] == "complete"
    assert reply.text == "Hello guest."

    again = await guest_token(guest_server.url, guest_id=first["guest_id"], source=fresh_address())
    assert again["guest_id"] == first["guest_id"]
    assert claims(again["token"])["sub"] == claims(first["token"])["sub"]
    async with await ChatClient.connect(guest_server.ws_url, again["token"]) as chat:
        resumed = await chat.start(conversation_id=session["conversation_id"])
    assert [m["content"] for m in resumed["history"]] == ["Hi there", "Hello guest."]

    stranger = await guest_token(guest_server.url, source=fresh_address())
    assert stranger["guest_id"] != first["guest_id"]
    async with await ChatClient.connect(guest_server.ws_url, stranger["token"]) as chat:
        await chat.send({"type": "start", "conversation_id": session["conversation_id"]})
        refused = await chat.expect("error")
    assert refused["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"agent": "agent_alpha"}, 404, "unknown_agent"),  # exists, takes no guests
        ({"agent": "agent_nobody"}, 404, "unknown_agent"),
        ({"agent": GUEST_AGENT, "guest_id": "made-up.id"}, 400, "bad_request"),
        ({"agent": GUEST_AGENT, "guest_id": "A" * 22 + "." + "B" * 22}, 400, "bad_request"),
        ({"agent": GUEST_AGENT, "site": "javascript:alert(1)"}, 400, "bad_request"),
        ({"agent": GUEST_AGENT, "extra": 1}, 400, "bad_request"),
        ({}, 400, "bad_request"),
    ],
)
async def test_bad_guest_requests_are_typed_errors(
    guest_server: ParleyServer, body: dict[str, object], status: int, code: str
) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=fresh_address())
    async with httpx.AsyncClient(base_url=guest_server.url, transport=transport) as client:
        response = await client.post("/v1/guest", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_only_the_agents_sites_may_ask(guest_server: ParleyServer) -> None:
    # Another site's page sends its Origin: listed sites (and PARLEY_ALLOWED_ORIGINS) only.
    for allowed in (SITE, OTHER_SITE, APP_ORIGIN):
        answer = await ask_guest(guest_server.url, source=fresh_address(), origin=allowed)
        assert answer.status_code == 200, (allowed, answer.text)
    refused = await ask_guest(guest_server.url, source=fresh_address(), origin=STRANGER)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "access-control-allow-origin" not in refused.headers
    # The widget's own page is this server's, and names the site that frames it.
    framed = await ask_guest(
        guest_server.url, site=SITE, source=fresh_address(), origin=guest_server.url
    )
    assert framed.status_code == 200
    unlisted = await ask_guest(
        guest_server.url, site=STRANGER, source=fresh_address(), origin=guest_server.url
    )
    assert unlisted.status_code == 403


async def test_guest_tokens_are_limited_per_address(limited_server: ParleyServer) -> None:
    address = fresh_address()
    answers = [
        await ask_guest(limited_server.url, source=address, origin=site)
        for site in LIMITED_SITES[:4]
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    # Another address is not held back by this one.
    other = await ask_guest(limited_server.url, source=fresh_address(), origin=LIMITED_SITES[5])
    assert other.status_code == 200


async def test_guest_tokens_are_limited_per_site(limited_server: ParleyServer) -> None:
    site = LIMITED_SITES[4]
    answers = [
        await ask_guest(limited_server.url, source=fresh_address(), origin=site) for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "site" in answers[-1].json()["error"]["message"]
    # The site's visitors are counted by the site whichever way it is named.
    claimed = await ask_guest(
        limited_server.url, site=site, source=fresh_address(), origin=limited_server.url
    )
    assert claimed.status_code == 429


# -- what a guest token opens ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/agents"),
        ("GET", "/v1/conversations"),
        ("GET", "/v1/usage"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat"),
        ("GET", "/v1/admin/queue"),
        ("GET", "/v1/admin/conversations"),
        ("GET", "/v1/admin/knowledge"),
        ("POST", "/v1/admin/reload"),
    ],
)
async def test_a_guest_token_opens_no_rest_route(
    guest_server: ParleyServer, method: str, path: str
) -> None:
    token = (await guest_token(guest_server.url, source=fresh_address()))["token"]
    async with httpx.AsyncClient(base_url=guest_server.url) as client:
        response = await client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, json={}
        )
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


async def test_a_guest_token_is_no_session(guest_server: ParleyServer) -> None:
    token = (await guest_token(guest_server.url, source=fresh_address()))["token"]
    async with httpx.AsyncClient(base_url=guest_server.url) as client:
        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        cookie = await client.post("/auth/session", json={"token": token})
    assert me.status_code == 401
    assert cookie.status_code == 401
    assert "set-cookie" not in cookie.headers


async def test_a_guest_chats_with_its_agent_only(
    guest_server: ParleyServer, make_token: TokenFactory
) -> None:
    other_agent = await guest_token(guest_server.url, GUEST_BUDGET_AGENT, source=fresh_address())
    async with await ChatClient.connect(guest_server.ws_url, other_agent["token"]) as guest:
        elsewhere = await guest.start(agent=GUEST_BUDGET_AGENT)
    token = (
        await guest_token(
            guest_server.url, guest_id=other_agent["guest_id"], source=fresh_address()
        )
    )["token"]
    _, user_token = make_token()
    async with await ChatClient.connect(guest_server.ws_url, user_token) as user:
        theirs = await user.start(agent=GUEST_AGENT)

    async with await ChatClient.connect(guest_server.ws_url, token) as guest:
        for target in (
            {"agent": "agent_alpha"},
            {"agent": GUEST_BUDGET_AGENT},
            {"personality": "supportive", "rules": "technical_support"},
        ):
            await guest.send({"type": "start", **target})
            assert (await guest.expect("error"))["code"] == "forbidden", target
        for conversation in (theirs, elsewhere):  # a user's; its own as another agent's guest
            await guest.send({"type": "start", "conversation_id": conversation["conversation_id"]})
            assert (await guest.expect("error"))["code"] == "not_found"
        session = await guest.start(agent=GUEST_AGENT)
    assert session["agent"]["id"] == GUEST_AGENT


async def test_a_user_token_may_not_claim_a_guest(
    guest_server: ParleyServer, make_token: TokenFactory
) -> None:
    guest = await guest_token(guest_server.url, source=fresh_address())
    _, forged = make_token(str(claims(guest["token"])["sub"]))
    async with httpx.AsyncClient(base_url=guest_server.url) as client:
        response = await client.get(
            "/v1/conversations", headers={"Authorization": f"Bearer {forged}"}
        )
    assert response.status_code == 401


async def test_guests_have_their_own_daily_budget(
    guest_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    token = (await guest_token(guest_server.url, GUEST_BUDGET_AGENT, source=fresh_address()))[
        "token"
    ]
    # The vendor reports a large prompt: what is left of the guest's day fits no other reply.
    fake.enqueue(Script(chunks=["Sure."], prompt_tokens=BUDGET_FILLER))
    async with await ChatClient.connect(guest_server.ws_url, token) as guest:
        await guest.start(agent=GUEST_BUDGET_AGENT)
        first = await guest.ask("How do I reset my router?")
        assert first.done is not None and first.done["status"] == "complete"
        await guest.send({"type": "message", "client_id": str(uuid.uuid4()), "text": "And then?"})
        refused = await guest.expect("error")
    assert refused["code"] == "budget_exceeded"

    # Another guest, and a signed-in user of the same agent, have budgets of their own.
    other = (await guest_token(guest_server.url, GUEST_BUDGET_AGENT, source=fresh_address()))[
        "token"
    ]
    _, user_token = make_token()
    for credential in (other, user_token):
        fake.enqueue(Script(chunks=["Fine."], prompt_tokens=BUDGET_FILLER))
        reply = await ask_once(guest_server.ws_url, credential, GUEST_BUDGET_AGENT, "Hello")
        assert reply.done is not None and reply.done["status"] == "complete"


async def test_a_guest_approves_a_tool_call(guest_server: ParleyServer, fake: FakeLLM) -> None:
    token = (await guest_token(guest_server.url, GUEST_TOOLS_AGENT, source=fresh_address()))[
        "token"
    ]
    arguments = '{"subject": "Router", "description": "It blinks all day long."}'
    fake.enqueue(
        Script(tool_calls=[("create_ticket", arguments)]),
        Script(chunks=["Ticket ", "created."]),
    )
    async with await ChatClient.connect(guest_server.ws_url, token) as guest:
        await guest.start(agent=GUEST_TOOLS_AGENT)
        accepted = await guest.say("Open a ticket please")
        waiting = await guest.reply(
            accepted["reply_id"], until=lambda f: f.get("status") == "awaiting_confirmation"
        )
        call = waiting.tool_frames[-1]
        await guest.confirm(accepted["reply_id"], call["call_id"], approve=True)
        reply = await guest.reply(accepted["reply_id"])
    assert reply.done is not None and reply.done["status"] == "complete"
    assert reply.text == "Ticket created."


# -- CORS -------------------------------------------------------------------------------


async def preflight(server: ParleyServer, path: str, origin: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )


async def test_cors_preflight_for_an_allowed_origin_allows_credentials(
    guest_server: ParleyServer,
) -> None:
    response = await preflight(guest_server, "/v1/conversations", APP_ORIGIN)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert set(response.headers["access-control-allow-headers"].split(", ")) >= {
        "authorization",
        "content-type",
    }
    assert "Origin" in response.headers["vary"]


async def test_cors_for_guest_sites_is_the_guest_route_only_and_without_credentials(
    guest_server: ParleyServer,
) -> None:
    response = await preflight(guest_server, "/v1/guest", SITE)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SITE
    assert "access-control-allow-credentials" not in response.headers
    elsewhere = await preflight(guest_server, "/v1/conversations", SITE)
    assert elsewhere.status_code == 403
    assert "access-control-allow-origin" not in elsewhere.headers
    answer = await ask_guest(guest_server.url, source=fresh_address(), origin=SITE)
    assert answer.headers["access-control-allow-origin"] == SITE
    assert "Origin" in answer.headers["vary"]


async def test_cors_refuses_other_origins(guest_server: ParleyServer) -> None:
    response = await preflight(guest_server, "/v1/guest", STRANGER)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "access-control-allow-origin" not in response.headers
    async with httpx.AsyncClient(base_url=guest_server.url) as client:
        plain = await client.get("/v1/agents", headers={"Origin": STRANGER})
    assert "access-control-allow-origin" not in plain.headers
    assert "Origin" in plain.headers["vary"]


def test_cors_any_origin_never_with_credentials() -> None:
    policy = CorsPolicy(["*", APP_ORIGIN])
    named = policy.grant(APP_ORIGIN, "/v1/agents", frozenset())
    anyone = policy.grant(STRANGER, "/v1/agents", frozenset())
    assert named is not None and named.headers() == {
        "Access-Control-Allow-Origin": APP_ORIGIN,
        "Access-Control-Allow-Credentials": "true",
    }
    assert anyone is not None and anyone.headers() == {"Access-Control-Allow-Origin": "*"}


# -- the widget's pages -----------------------------------------------------------------


def directives(csp: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}


async def test_only_the_widget_page_may_be_framed_and_by_the_agents_sites(
    guest_server: ParleyServer,
) -> None:
    async with httpx.AsyncClient(base_url=guest_server.url) as client:
        widget = await client.get("/widget", params={"agent": GUEST_AGENT})
        index = await client.get("/")
        no_guests = await client.get("/widget", params={"agent": "agent_alpha"})
        loader = await client.get("/widget.js")
    assert widget.status_code == 200
    csp = directives(widget.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'self'", SITE, OTHER_SITE]
    assert csp["script-src"] == ["'self'"] and csp["frame-src"] == ["'none'"]
    assert 'data-agent="agent_guest"' in widget.text
    assert directives(index.headers["content-security-policy"])["frame-ancestors"] == ["'none'"]
    assert no_guests.status_code == 404
    assert directives(no_guests.headers["content-security-policy"])["frame-ancestors"] == ["'none'"]
    assert loader.status_code == 200
    assert loader.headers["content-type"].startswith("text/javascript")
    assert loader.headers["cross-origin-resource-policy"] == "cross-origin"


async def test_the_demo_page_needs_dev_sign_in(guest_server: ParleyServer) -> None:
    async with httpx.AsyncClient(base_url=guest_server.url) as client:
        demo = await client.get("/widget/demo")
    assert demo.status_code == 404  # this server signs in with JWTs only


# -- agents.yaml ---------------------------------------------------------------------------


def test_the_shipped_gamma_takes_guests() -> None:
    gamma = load_catalog(REPO).agent("agent_gamma")
    assert gamma.guests is not None and gamma.guests.daily_token_budget > 0


@pytest.mark.parametrize(
    "site",
    ["https://shop.example/path", "shop.example", "https://shop.example; script-src *", "*"],
)
def test_guest_sites_must_be_origins(catalog_dir: Path, tmp_path: Path, site: str) -> None:
    root = write_guest_catalog(catalog_dir, tmp_path / "catalog", [site])
    with pytest.raises(CatalogError) as error:
        load_catalog(root)
    assert any("guests" in problem and "sites" in problem for problem in error.value.problems)
