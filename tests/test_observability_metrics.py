"""GET /metrics of a real server: who may scrape it, and counters moved by real replies.

The server runs with one worker (see test_observability_workers.py for
several); the fake vendor answers its upstream calls.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from redis.exceptions import ConnectionError as RedisConnectionError

from conftest import TIGHT_BUDGET, TokenFactory
from parley.observability import metrics
from parley.observability.exposition import authorized
from parley.transport.failures import client_error
from support.client import ChatClient, ask_once
from support.fake_llm import FakeLLM, Script
from support.metrics import (
    ALERTS,
    Scrape,
    alert_queries,
    dashboard_queries,
    metric_names,
    scrape,
)
from support.server import ParleyServer, free_port, run_parley

METRICS_TOKEN = "metrics-token-0123456789abcdef"
MINI = "openai:gpt-4o-mini"
WORDS = ["Restart", " the", " router,", " then", " wait."]


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def metrics_server(server_env: dict[str, str], metrics_port: int) -> Iterator[ParleyServer]:
    env = {
        **server_env,
        "PARLEY_METRICS_TOKEN": METRICS_TOKEN,
        "PARLEY_METRICS_PORT": str(metrics_port),
    }
    with ParleyServer(env, name="parley-metrics") as instance:
        yield instance


def scraped(server: ParleyServer) -> Scrape:
    return scrape(server.url, METRICS_TOKEN)


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_feedback_is_counted_by_agent_and_rating(
    metrics_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=WORDS))
    before = scraped(metrics_server)
    async with await ChatClient.connect(metrics_server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        reply = await client.ask("My wifi keeps dropping")
        assert reply.done is not None
        for rating in ("down", "up"):  # a change of mind counts again
            await client.send(
                {"type": "feedback", "message_id": reply.done["message_id"], "rating": rating}
            )
            assert (await client.expect("feedback_saved"))["rating"] == rating
    after = scraped(metrics_server)
    for rating in ("up", "down"):
        assert (
            moved(before, after, "parley_feedback_total", agent="agent_gamma", rating=rating) == 1
        )


# -- who may scrape ----------------------------------------------------------------


def test_without_a_token_or_port_there_is_no_metrics_path(server: ParleyServer) -> None:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_metrics_need_the_token(metrics_server: ParleyServer) -> None:
    url = f"{metrics_server.url}/metrics"
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
    ):
        refused = httpx.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "parley_" not in refused.text
    assert scraped(metrics_server).families  # and the token opens it


def test_the_token_is_compared_whole() -> None:
    assert authorized(f"Bearer {METRICS_TOKEN}", METRICS_TOKEN)
    assert authorized(f"bearer  {METRICS_TOKEN} ", METRICS_TOKEN)
    assert not authorized(f"Bearer {METRICS_TOKEN[:-1]}", METRICS_TOKEN)
    assert not authorized(None, METRICS_TOKEN)
    assert authorized(None, None)  # the metrics port without a token


# -- counters moved by replies -------------------------------------------------------


async def test_a_reply_is_counted_with_its_usage_and_timings(
    metrics_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=WORDS, prompt_tokens=321, completion_tokens=7, hold=True))
    before = scraped(metrics_server)
    async with await ChatClient.connect(metrics_server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("My wifi keeps dropping")
        await client.reply(accepted["reply_id"], until_seq=1)
        during = scraped(metrics_server)  # the reply is held open by the fake vendor
        fake.release()
        reply = await client.reply(accepted["reply_id"])
        assert reply.done is not None and reply.done["status"] == "complete"
        after = scraped(metrics_server)

    assert moved(before, during, "parley_active_replies") == 1
    assert moved(before, during, "parley_open_websockets") == 1
    assert (
        moved(
            before,
            after,
            "parley_replies_total",
            agent="agent_gamma",
            model=MINI,
            status="complete",
        )
        == 1
    )
    tokens = {"agent": "agent_gamma", "model": MINI}
    assert moved(before, after, "parley_tokens_total", **tokens, kind="prompt") == 321
    assert moved(before, after, "parley_tokens_total", **tokens, kind="completion") == 7
    assert moved(before, after, "parley_cost_usd_total", **tokens, kind="prompt") == pytest.approx(
        321 * 0.15 / 1e6
    )
    assert moved(
        before, after, "parley_cost_usd_total", **tokens, kind="completion"
    ) == pytest.approx(7 * 0.60 / 1e6)
    for histogram in ("parley_reply_first_token_seconds", "parley_reply_duration_seconds"):
        assert moved(before, after, f"{histogram}_count", agent="agent_gamma") == 1
    first_token = moved(before, after, "parley_reply_first_token_seconds_sum", agent="agent_gamma")
    duration = moved(before, after, "parley_reply_duration_seconds_sum", agent="agent_gamma")
    assert 0 < first_token <= duration
    assert (
        moved(before, after, "parley_upstream_calls_total", provider="openai", status="complete")
        == 1
    )
    assert moved(before, after, "parley_upstream_errors_total") == 0


async def test_tool_calls_and_rule_actions_are_counted(
    metrics_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(
        Script(tool_calls=[("lookup_order", '{"order_id": "1042"}'), ("format_disk", "{}")]),
        Script(chunks=["Order 1042 has shipped."]),
    )
    before = scraped(metrics_server)
    reply = await ask_once(
        metrics_server.ws_url,
        make_token()[1],
        "agent_tools",
        "Where is order 1042? My password is hunter2hunter2",
    )
    assert reply.done is not None and reply.done["status"] == "complete"
    after = scraped(metrics_server)

    assert moved(before, after, "parley_tool_calls_total", tool="lookup_order", status="ok") == 1
    assert moved(before, after, "parley_tool_call_duration_seconds_count", tool="lookup_order") == 1
    # The model's made-up tool name is not a label value.
    assert (
        moved(before, after, "parley_tool_calls_total", tool=metrics.UNKNOWN_TOOL, status="refused")
        == 1
    )
    assert "format_disk" not in after.text
    assert (
        moved(before, after, "parley_rule_actions_total", rule="password", action="redacted") == 1
    )
    assert moved(before, after, "parley_rule_actions_total", rule="tools", action="refused") == 1
    assert (
        moved(before, after, "parley_upstream_calls_total", provider="openai", status="complete")
        == 2
    )


async def test_retries_and_fallbacks_are_counted_by_provider(
    metrics_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(*[Script(status=503, model_filter="gpt-4o") for _ in range(3)])
    fake.enqueue(Script(chunks=["Fallback reply."], model_filter="claude-haiku-4-5"))
    before = scraped(metrics_server)
    reply = await ask_once(metrics_server.ws_url, make_token()[1], "agent_fallback", "hello")
    assert reply.text == "Fallback reply."
    after = scraped(metrics_server)

    assert (
        moved(before, after, "parley_upstream_errors_total", provider="openai", kind="transient")
        == 3
    )
    assert moved(before, after, "parley_upstream_retries_total", provider="openai") == 2
    assert moved(before, after, "parley_upstream_fallbacks_total", provider="openai") == 1
    assert (
        moved(before, after, "parley_upstream_calls_total", provider="anthropic", status="complete")
        == 1
    )
    assert (
        moved(
            before,
            after,
            "parley_replies_total",
            agent="agent_fallback",
            model="anthropic:claude-haiku-4-5",
            status="complete",
        )
        == 1
    )


async def test_budget_and_rate_limit_refusals_are_counted(
    metrics_server: ParleyServer, make_token: TokenFactory
) -> None:
    before = scraped(metrics_server)
    async with await ChatClient.connect(metrics_server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_budget")
        # With the system prompt and the reply cap (500), more than the whole
        # daily budget: refused before any call.
        text = "word " * (TIGHT_BUDGET - 500)
        await client.send({"type": "message", "client_id": "big", "text": text})
        refusal = await client.expect("error")
        assert refusal["code"] == "budget_exceeded"
        # A burst past the socket's frame limit (20): the extra frames are refused.
        for _ in range(30):
            await client.send({"type": "ping"})
        answers = [await client.receive() for _ in range(30)]
    limited = [frame for frame in answers if frame.get("code") == "rate_limited"]
    assert limited
    after = scraped(metrics_server)

    assert (
        moved(
            before, after, "parley_budget_refusals_total", domain="tight_budget", reason="too_large"
        )
        == 1
    )
    assert moved(
        before, after, "parley_rate_limit_refusals_total", transport="websocket", reason="limited"
    ) == len(limited)


async def test_rest_rate_limit_refusals_are_counted(
    server_env: dict[str, str], make_token: TokenFactory
) -> None:
    env = {
        **server_env,
        "PARLEY_METRICS_TOKEN": METRICS_TOKEN,
        "PARLEY_REST_RATE_LIMIT": "2/minute",
    }
    with ParleyServer(env, name="parley-metrics-limited") as instance:
        headers = {"Authorization": f"Bearer {make_token()[1]}"}
        async with httpx.AsyncClient(base_url=instance.url, headers=headers) as http:
            statuses = [(await http.get("/v1/agents")).status_code for _ in range(5)]
        after = await asyncio.to_thread(scraped, instance)
    assert statuses == [200, 200, 429, 429, 429]
    assert after.value("parley_rate_limit_refusals_total", transport="rest", reason="limited") == 3


def test_garbage_collections_are_timed_by_generation(metrics_server: ParleyServer) -> None:
    name = "parley_gc_pause_seconds"
    assert scraped(metrics_server).families[name].type == "histogram"  # the server exports it
    # What the server's start-up calls, in this process, where a collection can be forced.
    metrics.time_garbage_collections()
    metrics.time_garbage_collections()  # once per process, however often it is called
    labels = {"generation": "2"}
    before = metrics.REGISTRY.get_sample_value(f"{name}_count", labels) or 0
    gc.collect()
    metrics.record_collection_pauses()  # what the server does every second and on a scrape
    assert metrics.REGISTRY.get_sample_value(f"{name}_count", labels) == before + 1
    assert metrics.REGISTRY.get_sample_value(f"{name}_bucket", {**labels, "le": "+Inf"}) == (
        before + 1
    )


# A worker under ``--workers`` records metrics into files shared by the workers,
# through one lock that prometheus_client holds while it allocates a new labelled
# child. Collections are forced at nearly every allocation, so one starts inside
# that lock: timing it there must not call back into prometheus_client.
MULTIPROCESS_COLLECTIONS = """
import gc, os, sys
from parley.observability import metrics
metrics.time_garbage_collections()
gc.set_threshold(1)
for i in range(300):
    metrics.TOOL_CALLS.labels(f"tool-{i}", "ok").inc()
gc.set_threshold(700)
metrics.record_collection_pauses()
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(registry.get_sample_value("parley_gc_pause_seconds_count", {"generation": "0"}))
"""


def test_a_collection_inside_a_workers_metric_update_is_timed_without_deadlock(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_COLLECTIONS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a guard: before the fix, the process hung here for good
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) > 300  # the collections were timed, and recorded


def test_the_metrics_port_shows_the_same_metrics(
    metrics_server: ParleyServer, metrics_port: int
) -> None:
    # One worker: the port's thread reads the worker's own memory (after the replies above).
    main = scraped(metrics_server)
    port = scrape(f"http://127.0.0.1:{metrics_port}", METRICS_TOKEN)
    assert set(port.families) == set(main.families)
    assert port.value("parley_replies_total") == main.value("parley_replies_total") > 0


def test_a_metrics_port_that_cannot_be_had_stops_the_start(server_env: dict[str, str]) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for metrics_port, problem in (
            (port, f"PARLEY_METRICS_PORT: {port} is the port Parley serves on"),
            (taken.getsockname()[1], "PARLEY_METRICS_PORT: cannot listen on 127.0.0.1:"),
        ):
            result = run_parley(
                "serve",
                "--port",
                str(port),
                env={**server_env, "PARLEY_METRICS_PORT": str(metrics_port)},
            )
            assert result.returncode == 2
            assert f"parley: {problem}" in result.stderr
            assert "Parley on" not in result.stderr  # before the banner and the workers


# -- storage errors (in process: an outage is not needed to see them counted) -----------


def test_storage_errors_are_counted_by_backend() -> None:
    labels = {"backend": "redis", "operation": "request"}
    before = metrics.REGISTRY.get_sample_value("parley_storage_errors_total", labels) or 0
    error = client_error(RedisConnectionError("connection refused"), context="GET /v1/agents")
    assert error.code.value == "internal"
    assert metrics.REGISTRY.get_sample_value("parley_storage_errors_total", labels) == before + 1


def test_storage_backends_are_told_apart() -> None:
    import asyncpg

    assert metrics.backend_of(asyncpg.ConnectionDoesNotExistError()) == "postgres"
    assert metrics.backend_of(asyncpg.InterfaceError("pool closed")) == "postgres"
    assert metrics.backend_of(RedisConnectionError()) == "redis"
    assert metrics.backend_of(ConnectionRefusedError()) == "unknown"
    assert metrics.backend_of(ValueError()) is None


# -- the dashboard and the alerts ---------------------------------------------------------


def test_dashboard_and_alerts_use_only_metrics_that_exist(metrics_server: ParleyServer) -> None:
    exposed = scraped(metrics_server)
    families = {name for name in exposed.families if name.startswith("parley_")}
    dashboard, alerts = metric_names(dashboard_queries()), metric_names(alert_queries())
    assert dashboard and alerts
    assert (dashboard | alerts) - exposed.series_names() == set()
    # ...and the dashboard shows every metric there is.
    shown = {name.removesuffix("_total") for name in dashboard} | {
        name.rsplit("_", 1)[0] for name in dashboard if name.endswith(("_bucket", "_count", "_sum"))
    }
    assert families - shown == set()


def test_every_alert_is_complete() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
