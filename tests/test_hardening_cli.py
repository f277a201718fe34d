"""The command line with bad settings, and outside a checkout: one line per problem.

Every case runs the real ``parley`` command in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from conftest import JWT_SECRET
from parley import __version__
from support.server import free_port, run_parley

UNREACHABLE_PORT = "1"  # nothing listens on tcpmux


def problem_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The indented problem lines under the ``parley: invalid ...`` heading."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("parley: invalid"), result.stderr
    return [line.strip() for line in lines[1:]]


def prices_file(tmp_path: Path, name: str, text: str | None) -> str:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    return str(path)


BAD_SETTINGS = {
    "log-level": ({"PARLEY_LOG_LEVEL": "LOUD"}, "PARLEY_LOG_LEVEL: 'LOUD' is not a log level"),
    "redis-http-scheme": ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL: must be a redis://"),
    "database-malformed": ({"DATABASE_URL": "not a url"}, "DATABASE_URL: must be a postgresql://"),
    "database-unreachable": (
        {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{UNREACHABLE_PORT}/parley"},
        "DATABASE_URL: cannot connect",
    ),
    "redis-unreachable": (
        {"REDIS_URL": f"redis://127.0.0.1:{UNREACHABLE_PORT}/0"},
        "REDIS_URL: cannot connect",
    ),
}

BAD_PRICES = {
    "missing": (None, "cannot read it"),
    "unparsable": ("openai:gpt-4o: [unclosed\n", "not valid YAML/JSON"),
    "wrong-shape": ("- openai:gpt-4o\n", "expected a mapping"),
    "bad-entry": (
        "openai:gpt-4o:\n  input_per_million: cheap\n  output_per_million: 1\n",
        "input_per_million must be a non-negative number",
    ),
}


@pytest.mark.parametrize("command", ["check", "serve"])
@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_a_bad_setting_is_one_line(command: str, case: str, server_env: dict[str, str]) -> None:
    env, expected = BAD_SETTINGS[case]
    args = [command, "--port", str(free_port())] if command == "serve" else [command]
    # The test servers' settings, which pass: then only the bad one is wrong.
    result = run_parley(*args, env={**server_env, **env})
    assert result.returncode != 0
    [line] = problem_lines(result)
    assert line.startswith(expected), line
    assert "Parley on" not in result.stderr


@pytest.mark.parametrize("case", BAD_PRICES, ids=list(BAD_PRICES))
def test_a_bad_prices_file_is_one_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD_PRICES[case]
    result = run_parley(
        "check", env={"PARLEY_PRICES_FILE": prices_file(tmp_path, "prices.yaml", text)}
    )
    assert result.returncode == 2
    [line] = problem_lines(result)
    assert line.startswith("PARLEY_PRICES_FILE: ")
    assert expected in line


def test_every_bad_setting_is_reported_at_once(tmp_path: Path) -> None:
    result = run_parley(
        "check",
        env={
            "PARLEY_LOG_LEVEL": "LOUD",
            "REDIS_URL": "http://127.0.0.1:6379",
            "DATABASE_URL": "mysql://localhost/parley",
            "PARLEY_PRICES_FILE": prices_file(tmp_path, "gone.yaml", None),
            "PARLEY_JWT_SECRET": "short",
        },
    )
    assert result.returncode == 2
    assert sorted(line.split(":")[0] for line in problem_lines(result)) == [
        "DATABASE_URL",
        "PARLEY_JWT_SECRET",
        "PARLEY_LOG_LEVEL",
        "PARLEY_PRICES_FILE",
        "REDIS_URL",
    ]


def test_unreachable_storage_is_reported_together_with_catalog_problems(tmp_path: Path) -> None:
    result = run_parley(
        "check",
        env={
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{UNREACHABLE_PORT}/parley",
            "REDIS_URL": f"redis://127.0.0.1:{UNREACHABLE_PORT}/0",
            "PARLEY_CATALOG": str(tmp_path),
        },
    )
    assert result.returncode == 1
    problems = problem_lines(result)
    assert any(line.startswith("agents.yaml:") for line in problems)
    assert any(line.startswith("DATABASE_URL: cannot connect") for line in problems)
    assert any(line.startswith("REDIS_URL: cannot connect") for line in problems)


def test_migrate_with_unreachable_database_is_one_line() -> None:
    result = run_parley(
        "migrate", env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{UNREACHABLE_PORT}/x"}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("parley: DATABASE_URL: cannot connect")
    assert len(result.stderr.strip().splitlines()) == 1


def test_version() -> None:
    result = run_parley("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"parley {__version__}"


def test_serve_help_describes_every_option() -> None:
    result = run_parley("serve", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "address to listen on (default: PARLEY_HOST, else 127.0.0.1)" in help_text
    assert "port to listen on (default: PARLEY_PORT, else 8000)" in help_text
    assert "worker processes (default: 1)" in help_text


def test_token_works_outside_a_checkout(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PARLEY_CATALOG"}
    result = subprocess.run(
        [sys.executable, "-m", "parley", "token", "--user", "ada"],
        env={**env, "PARLEY_JWT_SECRET": JWT_SECRET},
        cwd=tmp_path,  # no agents.yaml here, nor anywhere it would look
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])["sub"] == "ada"


def test_check_with_working_storage_passes(server_env: dict[str, str]) -> None:
    result = run_parley("check", env=server_env)
    assert result.returncode == 0, result.stderr
