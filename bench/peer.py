"""Peers measured in the same run as Parley (``--peer``, repeatable), each pinned like
Parley, pointed at the same stub and measured through the same client as the
baseline, on its OpenAI-compatible ``/v1/chat/completions`` stream:

* ``litellm``: LiteLLM proxy, with no database. The harness installs it into a
  virtualenv of its own under the cache folder (``--peer-cache``, default
  ``~/.cache/parley-bench``; the first run pip-installs ``litellm[proxy]``,
  later runs reuse it).
* ``floor``: :mod:`bench.floor`, the least work Parley's promises need, on
  Parley's own stack, with a scratch database and a private Redis of its own
  whose CPU is counted with it, as Parley's are.

A peer that cannot be installed or started is reported as such; the run goes
on without it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import yaml

from bench.common import OPENAI_MODEL
from bench.processes import BenchError, Child, Children, free_port, wait_until_ok
from bench.servers import Scratch

PEERS = ("litellm", "floor")
STORING_PEERS = ("floor",)  # given a scratch database and a private Redis
FLOOR_TOKEN_SECONDS = 7 * 24 * 3600
INSTALL_TIMEOUT_SECONDS = 1200.0
LITELLM_REQUIREMENT = "litellm[proxy]"


@dataclass
class Peer:
    """A running peer server (it has no replies to wait for: a stream's end is its end)."""

    name: str
    child: Child
    port: int
    api_key: str

    @property
    def label(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def active_replies(self) -> int:
        return 0

    async def stop(self) -> None:
        self.child.stop()


def cache_folder(given: Path | None) -> Path:
    if given is not None:
        return given
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parley-bench"


async def ensure_litellm(cache: Path, log: Path) -> Path:
    """``litellm`` in a virtualenv of its own under ``cache``, installed once."""
    venv = cache / "litellm"
    executable = venv / "bin" / "litellm"
    if await asyncio.to_thread(executable.exists):
        return executable
    await asyncio.to_thread(cache.mkdir, parents=True, exist_ok=True)
    print(f"  installing {LITELLM_REQUIREMENT} into {venv} (once; log: {log})", flush=True)
    await _run([sys.executable, "-m", "venv", str(venv)], log)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    await _run([*pip, LITELLM_REQUIREMENT], log)
    if not await asyncio.to_thread(executable.exists):
        raise BenchError(f"{LITELLM_REQUIREMENT} installed no {executable}")
    return executable


async def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out)
        try:
            code = await asyncio.wait_for(process.wait(), INSTALL_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BenchError(f"{argv[0]} timed out; see {log}") from None
    if code != 0:
        raise BenchError(f"{' '.join(argv[-2:])} failed ({code}); see {log}")


def litellm_config(stub_url: str) -> str:
    """One model, the stub's, under the name the load generator asks for."""
    return yaml.safe_dump(
        {
            "model_list": [
                {
                    "model_name": OPENAI_MODEL,
                    "litellm_params": {
                        "model": f"openai/{OPENAI_MODEL}",
                        "api_base": f"{stub_url}/v1",
                        "api_key": "sk-stub",
                    },
                }
            ],
        }
    )


async def start_litellm(children: Children, cache: Path, stub_url: str, cpu: int | None) -> Peer:
    executable = await ensure_litellm(cache, children.logs / "litellm-install.log")
    config = children.logs / "litellm.yaml"
    config.write_text(litellm_config(stub_url))
    port = free_port()
    key = "sk-" + secrets.token_hex(24)
    argv = [str(executable), "--config", str(config), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1"]
    env: dict[str, str | None] = {
        "DATABASE_URL": None,  # no database: the proxy alone
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
    }
    child = children.spawn("litellm", argv, env=env, cpu=cpu)
    peer = Peer("litellm", child, port, key)
    await wait_until_ok(child, f"{peer.url}/health/liveliness")
    return peer


async def start_floor(children: Children, storage: Scratch, stub_url: str, cpu: int | None) -> Peer:
    port = free_port()
    secret = secrets.token_hex(32)
    argv = [sys.executable, "-m", "bench.floor", "--port", str(port), "--stub-url", stub_url]
    argv += ["--database-url", storage.database_url, "--redis-url", storage.redis_url]
    argv += ["--secret", secret]
    child = children.spawn("floor", argv, cpu=cpu)
    claims = {"sub": "bench-floor", "exp": int(time.time()) + FLOOR_TOKEN_SECONDS}
    peer = Peer("floor", child, port, jwt.encode(claims, secret, algorithm="HS256"))
    await wait_until_ok(child, f"{peer.url}/health")
    return peer


async def start_peer(
    name: str,
    children: Children,
    cache: Path,
    stub_url: str,
    cpu: int | None,
    storage: Scratch | None = None,
) -> Peer:
    if name == "litellm":
        return await start_litellm(children, cache, stub_url, cpu)
    if name == "floor" and storage is not None:
        return await start_floor(children, storage, stub_url, cpu)
    raise BenchError(f"--peer {name}: choose from {', '.join(PEERS)} (the floor needs storage)")
