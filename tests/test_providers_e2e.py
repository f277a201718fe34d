"""Named providers through a real server: a fallback chain across providers, and a
model that breaks off mid-reply reaching the client as an error frame."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from conftest import TokenFactory
from support.catalog import copy_catalog
from support.client import ask_once
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer, run_parley

CHAIN = ["ollama:llama3.2", "azure:gpt-4o", "anthropic:claude-haiku-4-5"]


async def usage_rows(db: asyncpg.Connection, message_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM llm_usage WHERE message_id = $1 ORDER BY id", uuid.UUID(message_id)
    )


@pytest.fixture(scope="module")
def providers_server(
    server_env: dict[str, str],
    catalog_dir: Path,
    fake_llm: FakeLLM,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ParleyServer]:
    """A server whose catalog names providers: Ollama and Azure beside the environment's."""
    root = tmp_path_factory.mktemp("providers-catalog")
    shutil.copytree(catalog_dir, root, dirs_exist_ok=True)
    providers = {
        "providers": {
            "ollama": {"kind": "openai", "base_url": fake_llm.base_url},
            "azure": {
                "kind": "azure",
                "endpoint": f"http://127.0.0.1:{fake_llm.port}",
                "api_key": "${env:TEST_AZURE_KEY}",
                "deployments": {"gpt-4o": "prod-gpt-4o"},
            },
        }
    }
    (root / "providers.yaml").write_text(yaml.safe_dump(providers))
    agents = yaml.safe_load((catalog_dir / "agents.yaml").read_text())
    agents["agents"].append(
        {
            "id": "agent_chain",
            "name": "Chain",
            "personality": "supportive",
            "rules": "technical_support",
            "models": CHAIN,
        }
    )
    (root / "agents.yaml").write_text(yaml.safe_dump(agents))
    env = {**server_env, "PARLEY_CATALOG": str(root), "TEST_AZURE_KEY": "azure-e2e-key-0123"}
    with ParleyServer(env, name="parley-providers") as instance:
        yield instance


async def test_fallback_chain_crosses_providers(
    providers_server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    # PARLEY_RETRY_ATTEMPTS is 3 in the test servers' environment.
    fake.enqueue(*[Script(status=503, model_filter="llama3.2") for _ in range(3)])
    fake.enqueue(Script(status=401, model_filter="prod-gpt-4o", error_message="bad key"))
    fake.enqueue(Script(chunks=["Third ", "time."], model_filter="claude-haiku-4-5"))
    reply = await ask_once(providers_server.ws_url, make_token()[1], "agent_chain", "hello")

    assert reply.text == "Third time." and reply.errors == []
    assert reply.done is not None and reply.done["status"] == "complete"
    rows = await usage_rows(db, reply.done["message_id"])
    assert [(r["provider"], r["model"], r["status"]) for r in rows] == [
        ("ollama", "llama3.2", "failed"),
        ("ollama", "llama3.2", "failed"),
        ("ollama", "llama3.2", "failed"),
        ("azure", "gpt-4o", "failed"),  # a 401 is not retried
        ("anthropic", "claude-haiku-4-5", "complete"),
    ]
    to_azure = next(r for r in fake.requests if r.model == "prod-gpt-4o")
    assert to_azure.path == "/openai/deployments/prod-gpt-4o/chat/completions"
    assert to_azure.headers["api-key"] == "azure-e2e-key-0123"
    assert "azure-e2e-key-0123" not in rows[3]["error"]


async def test_a_break_after_the_first_token_is_an_error_frame_with_the_prompt_kept(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Partial ", "answer ", "lost"], break_after=2, prompt_tokens=777))
    reply = await ask_once(server.ws_url, make_token()[1], "agent_anthropic", "hello")

    # The fake drops the connection right after its second chunk; on a busy machine
    # the drop can overtake that chunk, so the text is what arrived first.
    assert reply.text and "Partial answer ".startswith(reply.text)
    [error] = reply.errors  # before done: the client stops reading at done
    assert error["code"] == "upstream_unavailable" and error["reply_id"] == reply.reply_id
    assert "text so far is kept" in error["message"]
    assert reply.done is not None and reply.done["status"] == "failed"
    [row] = await usage_rows(db, reply.done["message_id"])
    assert (row["status"], row["prompt_tokens"], row["estimated"]) == ("failed", 777, True)
    assert reply.done["usage"]["prompt_tokens"] == 777
    assert len(fake.requests) == 1


def parley_check(catalog: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_parley("check", "--offline", env={"PARLEY_CATALOG": str(catalog), **env})


def test_check_lists_providers_problems_one_line_each(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path / "catalog")
    (root / "providers.yaml").write_text(
        "providers:\n"
        "  groq:\n"
        "    kind: openai\n"
        "    api_key: gsk_pasted_in_the_file\n"
        "  azure:\n"
        "    kind: azure\n"
        "    endpoint: https://r.openai.azure.com\n"
        "    api_key: ${env:NO_SUCH_AZURE_KEY}\n"
    )
    agents = yaml.safe_load((root / "agents.yaml").read_text())
    agents["agents"][0]["models"] = ["grok:3", "azure:gpt-4o"]
    (root / "agents.yaml").write_text(yaml.safe_dump(agents))

    result = parley_check(root, PARLEY_MODEL="demo:echo")

    assert result.returncode == 1
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert problems == [
        "providers.yaml: line 4: providers.groq.api_key: must be an ${env:NAME} reference;"
        " keep keys out of the file",
    ]
    (root / "providers.yaml").write_text(
        "providers:\n  azure:\n    kind: azure\n    endpoint: https://r.openai.azure.com\n"
        "    api_key: ${env:NO_SUCH_AZURE_KEY}\n"
    )
    result = parley_check(root, PARLEY_MODEL="demo:echo")
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert problems == [
        "providers.yaml: line 5: providers.azure.api_key: environment variable"
        " NO_SUCH_AZURE_KEY is not set",
    ]
    result = parley_check(root, PARLEY_MODEL="demo:echo", NO_SUCH_AZURE_KEY="k-0123456789")
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert problems == [
        "agents.yaml: agent 'agent_alpha': models: grok:3: no provider 'grok'"
        " (anthropic, azure, demo, openai)",
    ]
    agents["agents"][0]["models"] = ["azure:gpt-4o"]
    (root / "agents.yaml").write_text(yaml.safe_dump(agents))
    result = parley_check(root, PARLEY_MODEL="demo:echo", NO_SUCH_AZURE_KEY="k-0123456789")
    assert result.returncode == 0, result.stderr
    assert "providers: azure (azure)" in result.stdout
    assert "k-0123456789" not in result.stdout + result.stderr
