"""Shared fixtures: real Postgres and Redis, a fake LLM vendor, real servers.

End-to-end tests talk to Parley servers running in child processes (started
with ``parley serve``) over real sockets. The only fake is the LLM vendor,
a real HTTP server speaking OpenAI's and Anthropic's wire formats.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml
from playwright.async_api import Browser
from redis.asyncio import Redis

from parley.auth.tokens import mint_token
from parley.examples.background import BackgroundServer
from parley.examples.orders import ORDERS_URL_ENV, start_orders_service
from parley.llm.anthropic import AnthropicProvider
from parley.llm.base import Provider
from parley.llm.openai import OpenAIProvider
from parley.storage.keys import Keys
from parley.storage.redis import connect
from support.browser import TIMEOUT_MS, launched_browser
from support.classifiers import (
    CLASSIFIER_AGENTS,
    MODERATION_KEY,
    MODERATION_KEY_ENV,
    write_classifier_rule_sets,
)
from support.fake_llm import FakeLLM
from support.knowledge import KB_AGENTS, write_knowledge_lab
from support.private import PrivateRedis
from support.server import ParleyServer
from support.storage import StorageURLs, storage_urls
from support.tool_service import ToolService

REPO = Path(__file__).resolve().parents[1]
SHARED_TIKTOKEN_CACHE = REPO.parent / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and SHARED_TIKTOKEN_CACHE.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED_TIKTOKEN_CACHE)

JWT_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
# This run's Redis keys: test runs sharing a Redis never see each other's replies.
REDIS_PREFIX = f"parley-test-{uuid.uuid4().hex[:8]}"
KEYS = Keys(prefix=REDIS_PREFIX)
TokenFactory = Callable[..., tuple[str, str]]
TIGHT_BUDGET = 2000
TOOL_BUDGET = 3000

# Agents only the tests use: pinned to the fake vendors' models.
TEST_AGENTS = [
    {
        "id": "agent_anthropic",
        "name": "Anthropic test agent",
        "description": "Talks to the fake Anthropic API.",
        "personality": "supportive",
        "rules": "technical_support",
        "models": ["anthropic:claude-haiku-4-5"],
    },
    {
        "id": "agent_budget",
        "name": "Budget test agent",
        "description": "Technical support with a tiny daily token budget.",
        "personality": "supportive",
        "rules": "tight_budget",
    },
    {
        "id": "agent_fallback",
        "name": "Fallback test agent",
        "description": "Prefers a fake OpenAI model, falls back to fake Anthropic.",
        "personality": "supportive",
        "rules": "technical_support",
        "models": ["openai:gpt-4o", "anthropic:claude-haiku-4-5"],
    },
]


# Tools and agents only the tool tests use (tests/test_tools_replies.py).
TEST_TOOLS = {
    "slow_lookup": {
        "id": "slow_lookup",
        "description": "Look something up slowly.",
        "parameters": {
            "type": "object",
            "properties": {"key": {"type": "string", "pattern": "^[a-z0-9]{1,20}$"}},
            "required": ["key"],
            "additionalProperties": False,
        },
        "timeout": 1,
        "http": {"method": "GET", "url": "${env:PARLEY_TEST_TOOLS_URL}/slow/{key}"},
    },
    "customer_record": {
        "id": "customer_record",
        "description": "A customer's record.",
        "parameters": {
            "type": "object",
            "properties": {"customer_id": {"type": "string", "pattern": "^c-[0-9]{1,6}$"}},
            "required": ["customer_id"],
            "additionalProperties": False,
        },
        "http": {
            "method": "GET",
            "url": "${env:PARLEY_TEST_TOOLS_URL}/customers/{customer_id}",
        },
    },
}
TOOL_LAB_TOOLS = [
    "lookup_order",
    "create_ticket",
    "handoff_to_human",
    "slow_lookup",
    "customer_record",
]
TEST_TOOL_AGENTS = [
    {
        "id": "agent_tools",
        "name": "Tool lab",
        "description": "Every test tool, on the fake OpenAI API.",
        "personality": "supportive",
        "rules": "tool_lab",
        "models": ["openai:gpt-4o-mini"],
    },
    {
        "id": "agent_tools_anthropic",
        "name": "Tool lab (Anthropic)",
        "description": "Every test tool, on the fake Anthropic API.",
        "personality": "supportive",
        "rules": "tool_lab",
        "models": ["anthropic:claude-haiku-4-5"],
    },
    {
        "id": "agent_tools_narrow",
        "name": "Tool lab, narrowed",
        "description": "Only lookup_order, although the rule set allows more.",
        "personality": "supportive",
        "rules": "tool_lab",
        "models": ["openai:gpt-4o-mini"],
        "tools": ["lookup_order"],
    },
    {
        "id": "agent_tools_budget",
        "name": "Tool lab on a budget",
        "description": "Tools with a tiny daily token budget.",
        "personality": "supportive",
        "rules": "tool_budget",
        "models": ["openai:gpt-4o-mini"],
    },
    {
        "id": "agent_demo_tools",
        "name": "Demo with tools",
        "description": "The offline demo model with the shipped tools.",
        "personality": "supportive",
        "rules": "technical_support",
        "models": ["demo:echo"],
    },
]


@pytest.fixture(scope="session")
def storage() -> Iterator[StorageURLs]:
    with storage_urls() as urls:
        yield urls


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake(fake_llm: FakeLLM) -> FakeLLM:
    """The fake vendor with no scripts queued and no requests recorded."""
    fake_llm.reset()
    return fake_llm


@pytest.fixture
async def vendors(fake: FakeLLM) -> AsyncIterator[dict[str, Provider]]:
    """Both vendors' providers on the fake vendor, by wire: "openai" and "anthropic"."""
    made: dict[str, Provider] = {
        "openai": OpenAIProvider("sk-test", fake.base_url, connect_timeout=2),
        "anthropic": AnthropicProvider("sk-ant-test", fake.anthropic_base_url, 2),
    }
    yield made
    for provider in made.values():
        await provider.aclose()


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM) -> Path:
    """The shipped catalog plus the test-only agents."""
    root = tmp_path_factory.mktemp("catalog")
    for folder in ("personalities", "rules", "tools"):
        shutil.copytree(REPO / folder, root / folder)
    tight = yaml.safe_load((REPO / "rules" / "technical_support.yaml").read_text())
    tight.update(id="tight_budget", name="Tight budget")
    tight["limits"].update(daily_token_budget=TIGHT_BUDGET, max_reply_tokens=500)
    (root / "rules" / "tight_budget.yaml").write_text(yaml.safe_dump(tight))
    for tool_id, tool in TEST_TOOLS.items():
        (root / "tools" / f"{tool_id}.yaml").write_text(yaml.safe_dump(tool))
    lab = yaml.safe_load((REPO / "rules" / "technical_support.yaml").read_text())
    lab.update(id="tool_lab", name="Tool lab", tools=TOOL_LAB_TOOLS)
    lab["limits"].update(max_tool_rounds=2)
    (root / "rules" / "tool_lab.yaml").write_text(yaml.safe_dump(lab))
    lab.update(id="tool_budget", name="Tool budget")
    lab["limits"].update(daily_token_budget=TOOL_BUDGET, max_reply_tokens=200)
    (root / "rules" / "tool_budget.yaml").write_text(yaml.safe_dump(lab))
    write_classifier_rule_sets(REPO, root / "rules", f"{fake_llm.base_url}/moderations")
    write_knowledge_lab(REPO, root)  # last: it takes knowledge off every other rule set
    agents = yaml.safe_load((REPO / "agents.yaml").read_text())
    agents["agents"].extend(TEST_AGENTS + TEST_TOOL_AGENTS + CLASSIFIER_AGENTS + KB_AGENTS)
    (root / "agents.yaml").write_text(yaml.safe_dump(agents))
    return root


@pytest.fixture(scope="session")
def orders_service() -> Iterator[BackgroundServer]:
    """The example order service the shipped HTTP tools call (a real HTTP server)."""
    service = start_orders_service()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def tool_service_state() -> ToolService:
    return ToolService()


@pytest.fixture(scope="session")
def tool_service_server(tool_service_state: ToolService) -> Iterator[BackgroundServer]:
    server = tool_service_state.start()
    yield server
    tool_service_state.release()  # let a hanging request end before the thread stops
    server.stop()


@pytest.fixture
def tool_service(
    tool_service_state: ToolService, tool_service_server: BackgroundServer
) -> ToolService:
    """The test tool service, its counters and its hanging requests reset."""
    tool_service_state.release()
    tool_service_state.reset()
    return tool_service_state


@pytest.fixture(scope="session")
def server_env(
    storage: StorageURLs,
    fake_llm: FakeLLM,
    catalog_dir: Path,
    orders_service: BackgroundServer,
    tool_service_server: BackgroundServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    return {
        ORDERS_URL_ENV: orders_service.url,
        "PARLEY_TEST_TOOLS_URL": tool_service_server.url,
        "DATABASE_URL": storage.database_url,
        "REDIS_URL": storage.redis_url,
        "PARLEY_REDIS_PREFIX": REDIS_PREFIX,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_CATALOG": str(catalog_dir),
        "PARLEY_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "PARLEY_WEB_DIR": str(REPO / "web"),
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-key",
        "ANTHROPIC_BASE_URL": fake_llm.anthropic_base_url,
        "PARLEY_MODEL": "openai:gpt-4o-mini",
        "PARLEY_RETRY_BASE_DELAY": "0.01",
        "PARLEY_FIRST_TOKEN_TIMEOUT": "10",
        "PARLEY_IDLE_TIMEOUT": "10",
        "PARLEY_LEASE_TTL_SECONDS": "2",
        "PARLEY_LOG_LEVEL": "INFO",
        MODERATION_KEY_ENV: MODERATION_KEY,
        # A title is one more upstream request after a first reply, which would
        # take scripts queued for other requests: only tests/test_titles.py's server titles.
        "PARLEY_GENERATE_TITLES": "false",
    }


@pytest.fixture(scope="session")
def server(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    with ParleyServer(server_env, name="parley-a") as instance:
        yield instance


@pytest.fixture(scope="session")
def server_b(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    """A second instance sharing the first one's Postgres and Redis."""
    with ParleyServer(server_env, name="parley-b") as instance:
        yield instance


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Chromium for a browser test module; every expect() waits up to TIMEOUT_MS."""
    async with launched_browser(TIMEOUT_MS) as instance:
        yield instance


@pytest.fixture
def make_token() -> TokenFactory:
    """``make_token(user=None, **claims) -> (user_id, jwt)``; a fresh user by default."""

    def make(user: str | None = None, **options: object) -> tuple[str, str]:
        user_id = user or f"user-{uuid.uuid4().hex[:10]}"
        return user_id, mint_token(JWT_SECRET, user_id=user_id, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def redis(storage: StorageURLs) -> AsyncIterator[Redis]:
    """A direct connection to the test run's Redis (as Parley makes them)."""
    client = connect(storage.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def db(storage: StorageURLs) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, to check what Parley stored."""
    connection = await asyncpg.connect(storage.database_url)
    yield connection
    await connection.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of the test's own: it may be stopped, and its counters are the test's."""
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def private_redis_server(
    server_env: dict[str, str], private_redis: PrivateRedis
) -> Iterator[ParleyServer]:
    """A server of the test's own on the test's own Redis, which the test may stop."""
    with ParleyServer(
        {**server_env, "REDIS_URL": private_redis.url}, name="parley-private-redis"
    ) as instance:
        yield instance
