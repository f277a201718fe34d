"""The shipped collections as the quick start shows them: ``parley serve`` on the
repository's own catalog with the demo model ingests them at start, and its
agents answer with cited passages. Also ``parley ingest`` from the command line.

Each test has a database of its own: the shipped catalog's collections are not
the shared servers'.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from conftest import TokenFactory
from support.client import ChatClient
from support.fake_llm import FakeLLM
from support.server import ParleyServer, run_parley
from support.storage import StorageURLs, _admin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def database(storage: StorageURLs) -> Iterator[str]:
    name = f"parley_shipped_{secrets.token_hex(4)}"
    asyncio.run(_admin(storage.database_url, f'CREATE DATABASE "{name}"'))
    yield urlunsplit(urlsplit(storage.database_url)._replace(path=f"/{name}"))
    asyncio.run(_admin(storage.database_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def quick_start(server_env: dict[str, str], database: str) -> Iterator[ParleyServer]:
    env = {
        **server_env,
        "DATABASE_URL": database,
        "PARLEY_CATALOG": str(REPO),
        "PARLEY_MODEL": "demo:echo",
        "PARLEY_DEMO_DELAY_MS": "0",
    }
    with ParleyServer(env, name="parley-quick-start") as instance:
        yield instance


async def test_the_quick_start_answers_with_cited_passages(
    quick_start: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    log = quick_start.log()
    assert "KNOWLEDGE: full-text search only (no PARLEY_EMBEDDINGS_MODEL)" in log
    assert "knowledge support_articles: 5 added" in log
    token = make_token()[1]
    async with await ChatClient.connect(quick_start.ws_url, token) as client:
        await client.start(agent="agent_gamma")
        support = await client.ask("I forgot my password. How do I reset it?")
        await client.start(agent="agent_alpha")
        finance = await client.ask("How big should an emergency fund be?")
        await client.start(agent="agent_beta")
        brand = await client.ask("Which words should our copy avoid?")
    for reply, title in (
        (support, "Resetting your password"),
        (finance, "Emergency funds"),
        (brand, "Brand voice guide"),
    ):
        assert reply.sources is not None, reply
        assert reply.sources["sources"][0]["title"].startswith(title)
        assert reply.text.startswith(f"[Demo model — offline] From {title}")
        assert "[1]" in reply.text
    assert fake.requests == []  # all of it offline


def ingest(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": database, "PARLEY_CATALOG": str(REPO)}
    return run_parley("ingest", *args, env=env, timeout=120)


def test_parley_ingest_is_incremental(database: str) -> None:
    first = ingest(database)
    assert first.returncode == 0, first.stderr
    assert "KNOWLEDGE: full-text search only" in first.stderr
    lines = first.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "brand_guide",
        "personal_finance",
        "support_articles",
    ]
    assert "support_articles: 5 added, 0 updated, 0 removed, 0 unchanged" in first.stdout
    again = ingest(database, "support_articles")
    assert again.stdout.strip().startswith(
        "support_articles: 0 added, 0 updated, 0 removed, 5 unchanged (0 chunks written)"
    )
    unknown = ingest(database, "nope")
    assert unknown.returncode == 2
    assert "no collection 'nope' (knowledge/*/: brand_guide, personal_finance" in unknown.stderr


async def test_admin_lists_the_shipped_collections(
    quick_start: ParleyServer, make_token: TokenFactory
) -> None:
    token = make_token(admin=True)[1]
    async with httpx.AsyncClient(base_url=quick_start.url) as http:
        overview = (
            await http.get("/v1/admin/knowledge", headers={"Authorization": f"Bearer {token}"})
        ).json()
    assert overview["mode"] == "full-text"
    assert [(c["id"], c["documents"], c["agents"]) for c in overview["collections"]] == [
        ("brand_guide", 3, ["agent_beta"]),
        ("personal_finance", 5, ["agent_alpha"]),
        ("support_articles", 5, ["agent_gamma"]),
    ]
