"""Log lines: JSON or text, Parley's and uvicorn's alike, also from worker processes.

The formatters are checked on records made here; real servers started with
``--workers 2`` show that the workers log in the same format as the parent,
Parley's INFO lines included, with the ids of what a line is about and
without what users wrote or any token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import TokenFactory
from parley.observability import context
from parley.observability.logs import JsonFormatter, TextFormatter, logging_config
from support.client import start_and_ask
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

METRICS_TOKEN = "logs-token-0123456789abcdef"
SECRET_TEXT = "my password is hunter2hunter2 and my card is 4111 1111 1111 1111"
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: "
)


def record(name: str, message: str, *args: Any, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, exc_info)


def access_record(path: str) -> logging.LogRecord:
    return record(
        "uvicorn.access", '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", path, "1.1", 200
    )


# -- the formatters ---------------------------------------------------------------------


def test_json_lines_carry_the_known_ids() -> None:
    with context.bound(request_id="r-1", user_id="alice", reply_id="rep-1"):
        line = JsonFormatter().format(record("parley.replies.task", "reply %s failed", "rep-1"))
    entry = json.loads(line)
    assert entry["message"] == "reply rep-1 failed"
    assert (entry["level"], entry["logger"]) == ("INFO", "parley.replies.task")
    assert (entry["request_id"], entry["user_id"], entry["reply_id"]) == ("r-1", "alice", "rep-1")
    assert "conversation_id" not in entry  # unknown here
    assert "trace_id" not in entry  # no span
    assert isinstance(entry["pid"], int) and entry["time"].endswith("+00:00")


def test_json_exceptions_stay_on_one_line() -> None:
    line = JsonFormatter().format(record("parley", "failed", exc=True))
    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exception"]


def test_access_lines_have_fields_and_no_query_string() -> None:
    entry = json.loads(JsonFormatter().format(access_record("/v1/usage?token=s3cr3t&days=3")))
    assert entry["url.path"] == "/v1/usage"
    assert entry["http.request.method"] == "GET"
    assert entry["http.response.status_code"] == 200
    assert "s3cr3t" not in json.dumps(entry)
    text = TextFormatter().format(access_record("/v1/usage?token=s3cr3t"))
    assert text.endswith('uvicorn.access: 10.0.0.1:5000 - "GET /v1/usage HTTP/1.1" 200')


def test_text_lines_are_one_format_for_parley_and_uvicorn() -> None:
    formatter = TextFormatter()
    for name in ("parley.services", "uvicorn.error", "uvicorn.access"):
        assert TEXT_LINE.match(formatter.format(record(name, "hello"))), name
    with context.bound(request_id="r-9", reply_id="rep-9"):
        line = formatter.format(record("parley", "hello"))
    assert line.endswith("parley: hello [request_id=r-9 reply_id=rep-9]")


def test_one_config_for_every_logger() -> None:
    config = logging_config("json", "INFO")
    assert config["formatters"]["parley"]["()"].endswith("JsonFormatter")
    assert config["root"] == {"level": logging.INFO, "handlers": ["stderr"]}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root's handler
        assert config["loggers"][name]["handlers"] == []
        assert config["loggers"][name]["propagate"] is True
    assert config["loggers"]["httpx2"]["level"] == logging.WARNING  # URLs may carry tokens
    assert logging_config("text", "DEBUG")["formatters"]["parley"]["()"].endswith("TextFormatter")


# -- real servers, two workers each ------------------------------------------------------------


@pytest.fixture(scope="module")
def json_server(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    env = {**server_env, "PARLEY_LOG_FORMAT": "json", "PARLEY_METRICS_TOKEN": METRICS_TOKEN}
    with ParleyServer(env, name="parley-json", args=["--workers", "2"]) as instance:
        yield instance


async def test_json_logs_of_two_workers(
    json_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    user, token = make_token()
    fake.enqueue(Script(status=503), Script(chunks=["Noted."]))  # the retry logs a line
    session, reply = await start_and_ask(json_server.ws_url, token, "agent_gamma", SECRET_TEXT)
    assert reply.done is not None and reply.done["status"] == "complete"
    async with httpx.AsyncClient(base_url=json_server.url) as http:
        agents = await http.get(
            "/v1/agents?token=in-the-url", headers={"Authorization": f"Bearer {token}"}
        )
        assert agents.status_code == 200
    await asyncio.to_thread(json_server.stop)  # every line written and flushed

    lines = [json.loads(line) for line in json_server.log().splitlines() if line.strip()]
    workers = {line["pid"] for line in lines if line["logger"] == "parley.services"}
    assert len(workers) == 2, "Parley's INFO lines come from both workers"
    assert json_server.process is not None and json_server.process.pid not in workers

    [retry] = [line for line in lines if "retrying" in line["message"]]
    assert retry["level"] == "WARNING"
    assert retry["reply_id"] == reply.reply_id
    assert retry["conversation_id"] == session["conversation_id"]
    assert retry["user_id"] == user
    assert retry["request_id"]

    [access] = [line for line in lines if line.get("url.path") == "/v1/agents"]
    assert access["user_id"] == user
    assert access["request_id"] == agents.headers["x-request-id"]

    everything = json_server.log()
    for secret in ("hunter2", "4111 1111", "in-the-url", token, METRICS_TOKEN, "sk-test-key"):
        assert secret not in everything, secret


def test_text_logs_of_two_workers_are_one_format(server_env: dict[str, str]) -> None:
    with ParleyServer(server_env, name="parley-text", args=["--workers", "2"]) as instance:
        assert httpx.get(f"{instance.url}/health", timeout=10).status_code == 200
    lines = instance.log().splitlines()
    assert all(TEXT_LINE.match(line) for line in lines), "\n".join(
        line for line in lines if not TEXT_LINE.match(line)
    )
    assert sum(" INFO parley.services: instance " in line for line in lines) == 2
    assert any(" INFO uvicorn.access: " in line and "/health" in line for line in lines)
