"""The ``parley`` command line, run as a real process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jwt
import pytest

from conftest import JWT_SECRET
from support.server import ParleyServer, run_parley
from support.storage import StorageURLs


def test_check_accepts_the_shipped_catalog(tmp_path: Path) -> None:
    result = run_parley("check", env={"PARLEY_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "agent_alpha, agent_beta, agent_gamma" in result.stdout


def test_check_lists_catalog_problems(catalog_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "catalog"
    subprocess.run(["cp", "-r", str(catalog_dir), str(broken)], check=True)
    (broken / "personalities" / "analytical.yaml").write_text("id: analytical\ncolour: blue\n")
    result = run_parley("check", env={"PARLEY_CATALOG": str(broken)})
    assert result.returncode == 1
    assert "analytical.yaml" in result.stderr
    assert "colour" in result.stderr


def test_invalid_configuration_gives_one_line_per_problem() -> None:
    result = run_parley(
        "check",
        env={"PARLEY_PORT": "not-a-port", "PARLEY_JWT_SECRET": "short", "PARLEY_MODEL": "gpt-4"},
    )
    assert result.returncode == 2
    problems = [line.strip() for line in result.stderr.strip().splitlines()[1:]]
    assert [problem.split(":")[0] for problem in problems] == [
        "PARLEY_PORT",
        "PARLEY_JWT_SECRET",
        "PARLEY_MODEL",
    ]


def test_short_jwt_secret_is_refused() -> None:
    result = run_parley("check", env={"PARLEY_JWT_SECRET": "short"})
    assert result.returncode == 2
    assert "PARLEY_JWT_SECRET: must be at least 32 bytes" in result.stderr


def test_token_mints_a_verifiable_jwt() -> None:
    result = run_parley(
        "token",
        "--user",
        "ada",
        "--name",
        "Ada",
        "--admin",
        "--ttl",
        "120",
        env={"PARLEY_JWT_SECRET": JWT_SECRET},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["name"]) == ("ada", "Ada")
    assert "admin" in claims["roles"]
    assert claims["exp"] - claims["iat"] == 120


def test_migrate_is_idempotent(storage: StorageURLs) -> None:
    env = {"DATABASE_URL": storage.database_url}
    first = run_parley("migrate", env=env)
    assert first.returncode == 0, first.stderr
    again = run_parley("migrate", env=env)
    assert again.stdout.strip() == "database is up to date"


def test_reload_asks_the_running_server(server: ParleyServer, server_env: dict[str, str]) -> None:
    result = run_parley("reload", "--url", server.url, env=server_env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 12  # the catalog version


@pytest.mark.parametrize("command", [["serve", "--help"], ["--help"]])
def test_help(command: list[str]) -> None:
    result = run_parley(*command)
    assert result.returncode == 0
    assert "usage: parley" in result.stdout
