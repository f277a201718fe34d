"""The vector path: pgvector on a private Postgres from the pgserver wheel (the
machine's has no pgvector), embeddings from the fake vendor's /v1/embeddings
(vectors of character trigrams, so a misspelt question is near its passage)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from conftest import TokenFactory
from parley.config import Settings, load_settings
from parley.knowledge.service import Asker, Knowledge
from parley.llm.models import PriceTable
from parley.storage.database import create_pool, migrate
from support.client import ask_once
from support.fake_llm import FakeLLM
from support.knowledge import migrated_database
from support.server import ParleyServer
from support.storage import StorageURLs, _admin
from test_outages import PrivatePostgres

DIMENSIONS = 64
TYPO = "pasword resset emial"  # full-text search finds nothing for this


@pytest.fixture(scope="module")
def pgvector_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    postgres = PrivatePostgres(tmp_path_factory.mktemp("pgvector"))
    url = postgres.start()
    yield url
    postgres.stop()


@pytest.fixture
async def vector_pool(pgvector_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pgvector_url, max_size=4)
    async with pool.acquire() as connection:  # a clean slate for each test
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await migrate(pool)
    yield pool
    await pool.close()


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "knowledge" / "help"
    folder.mkdir(parents=True)
    (folder / "password.md").write_text(
        "# Password reset\n\nSelect Forgot password and we e-mail you a reset link."
    )
    (folder / "printer.md").write_text("# Printer\n\nLoad paper and press the green button.")
    return tmp_path


def embedding_settings(catalog: Path, fake: FakeLLM) -> Settings:
    return load_settings(
        catalog=catalog,
        embeddings_model="openai:text-embedding-3-small",
        embeddings_dimensions=DIMENSIONS,
        OPENAI_BASE_URL=fake.base_url,
        OPENAI_API_KEY="sk-test-key",
    )


async def start(pool: asyncpg.Pool, settings: Settings) -> Knowledge:
    return await Knowledge.start(pool, settings, PriceTable.defaults().cost_usd)


async def test_hybrid_search_finds_what_full_text_cannot(
    vector_pool: asyncpg.Pool, catalog: Path, fake: FakeLLM
) -> None:
    knowledge = await start(vector_pool, embedding_settings(catalog, fake))
    try:
        assert knowledge.mode == "hybrid"
        assert knowledge.describe() == (
            "KNOWLEDGE: hybrid search (Postgres full text + pgvector,"
            f" openai:text-embedding-3-small/{DIMENSIONS})"
        )
        [report] = await knowledge.sync()
        assert (len(report.added), report.embedded) == (2, 2)
        assert await vector_pool.fetchval("SELECT count(*) FROM knowledge_embeddings") == 2
        assert await knowledge.store.search_text(["help"], TYPO, 5) == []
        hits = await knowledge.search(["help"], TYPO, 5, Asker(user_id="u-1"))
        assert hits[0].document == "password.md"
        # Both calls were accounted: the ingestion's and the question's.
        rows = await vector_pool.fetch("SELECT * FROM knowledge_usage ORDER BY id")
        assert [(r["purpose"], r["status"], r["user_id"]) for r in rows] == [
            ("ingest", "ok", None),
            ("query", "ok", "u-1"),
        ]
        assert rows[0]["collection"] == "help" and rows[0]["input_tokens"] > 0
        assert rows[0]["model"] == "text-embedding-3-small"
        # $0.02 per million tokens: a question costs far less than a micro-dollar.
        cost = float(rows[1]["cost_usd"])
        assert cost == pytest.approx(rows[1]["input_tokens"] * 0.02e-6) and 0 < cost < 1e-6
        # What went to the vendor: the configured model and dimensions.
        first = fake.embedding_requests[-2]
        assert (first["model"], first["dimensions"]) == ("text-embedding-3-small", DIMENSIONS)
        # Unchanged files are neither parsed nor embedded again.
        calls = len(fake.embedding_requests)
        [again] = await knowledge.sync()
        assert (again.unchanged, again.embedded) == (2, 0)
        assert len(fake.embedding_requests) == calls
        # The HNSW index exists and a search uses the space's expression.
        indexes = await vector_pool.fetch(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'knowledge_embeddings'"
        )
        assert any(f"hnsw (((embedding)::vector({DIMENSIONS}))" in i["indexdef"] for i in indexes)
    finally:
        await knowledge.aclose()


async def test_a_failed_embedding_falls_back_and_catches_up(
    vector_pool: asyncpg.Pool, catalog: Path, fake: FakeLLM
) -> None:
    knowledge = await start(vector_pool, embedding_settings(catalog, fake))
    try:
        fake.fail_embeddings(3)  # every attempt of the first batch
        [report] = await knowledge.sync()
        assert report.embedded == 0 and "HTTP 500" in (report.embedding_error or "")
        hits = await knowledge.search(["help"], "printer paper", 5, Asker())
        assert hits[0].document == "printer.md"  # full text still answers
        [caught_up] = await knowledge.sync()
        assert (caught_up.unchanged, caught_up.embedded) == (2, 2)
        fake.fail_embeddings(3)
        fallback = await knowledge.search(["help"], "printer paper", 5, Asker())
        assert fallback[0].document == "printer.md"
        statuses = await vector_pool.fetch(
            "SELECT purpose, status FROM knowledge_usage ORDER BY id"
        )
        assert [tuple(r) for r in statuses] == [
            *[("ingest", "error")] * 3,
            ("query", "ok"),
            ("ingest", "ok"),
            *[("query", "error")] * 3,
        ]
    finally:
        await knowledge.aclose()


@pytest.fixture
async def plain_pool(storage: StorageURLs) -> AsyncIterator[asyncpg.Pool]:
    """A database on the suite's Postgres, used by a role that may not create
    extensions: pgvector is out of reach whether the server has it (embedded
    Postgres) or not (the machine's), as on a managed Postgres without it."""
    async with migrated_database(storage.database_url) as owner_pool:
        role = f"parley_plain_{secrets.token_hex(4)}"
        await owner_pool.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
        for grant in (
            f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"',
            f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"',
            f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
        ):
            await owner_pool.execute(grant)
        url = urlsplit(storage.database_url)
        name = await owner_pool.fetchval("SELECT current_database()")
        netloc = f"{role}@{url.netloc.rpartition('@')[2]}"  # the same server, as the role
        plain = await asyncpg.create_pool(
            urlunsplit(url._replace(netloc=netloc, path=f"/{name}")), min_size=1, max_size=4
        )
        try:
            yield plain
        finally:
            await plain.close()
            await owner_pool.execute(f'DROP OWNED BY "{role}"')
            await owner_pool.execute(f'DROP ROLE "{role}"')


async def test_without_pgvector_it_says_so_and_searches_full_text(
    plain_pool: asyncpg.Pool, catalog: Path, fake: FakeLLM
) -> None:
    knowledge = await start(plain_pool, embedding_settings(catalog, fake))
    assert (knowledge.mode, knowledge.degraded) == ("full-text", True)
    assert knowledge.describe().startswith(
        "KNOWLEDGE: full-text search only (openai:text-embedding-3-small is set but Postgres"
        " has no pgvector: CREATE EXTENSION vector failed:"
    )
    calls = len(fake.embedding_requests)
    await knowledge.sync()
    assert len(fake.embedding_requests) == calls  # nothing is embedded without pgvector
    hits = await knowledge.search(["help"], "forgot password", 5, Asker())
    assert hits[0].document == "password.md"
    await knowledge.aclose()


@pytest.fixture
def hybrid_server(
    server_env: dict[str, str], pgvector_url: str, fake_llm: FakeLLM
) -> Iterator[ParleyServer]:
    """A Parley on the pgvector Postgres, embedding with the fake vendor."""
    database = urlunsplit(urlsplit(pgvector_url)._replace(path="/parley_hybrid"))
    asyncio.run(_admin(pgvector_url, "DROP DATABASE IF EXISTS parley_hybrid WITH (FORCE)"))
    asyncio.run(_admin(pgvector_url, "CREATE DATABASE parley_hybrid"))
    env = {
        **server_env,
        "DATABASE_URL": database,
        "PARLEY_EMBEDDINGS_MODEL": "openai:text-embedding-3-small",
        "PARLEY_EMBEDDINGS_DIMENSIONS": str(DIMENSIONS),
    }
    with ParleyServer(env, name="parley-hybrid") as instance:
        yield instance


async def test_a_server_with_pgvector_answers_misspelt_questions(
    hybrid_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    assert "KNOWLEDGE: hybrid search (Postgres full text + pgvector," in hybrid_server.log()
    reply = await ask_once(
        hybrid_server.ws_url, make_token()[1], "agent_kb", "resseting the ruoter to factroy setings"
    )
    assert reply.sources is not None
    assert reply.sources["sources"][0]["title"] == "Acme router manual \u203a Resetting the router"
    [request] = fake.requests  # the chat request; embeddings are recorded apart
    assert "hold the recessed reset pin" in request.body["messages"][0]["content"]
    question = fake.embedding_requests[-1]
    assert question["input"] == ["resseting the ruoter to factroy setings"]
