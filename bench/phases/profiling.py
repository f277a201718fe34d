"""py-spy's view of the server under WebSocket load (``--profile``)."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import signal
import subprocess
import sys
from typing import Any

from bench.common import Profile
from bench.measure import summarise_profile
from bench.phases.harness import Harness, Route
from bench.phases.rounds import run_round
from bench.processes import BenchError
from bench.servers import Instance


async def profiled(
    h: Harness, instance: Instance, name: str, level: int, rounds: int, profile: Profile
) -> dict[str, Any]:
    """py-spy's view of the server during ``rounds`` rounds of ``level`` WebSocket streams."""
    h.out.mkdir(parents=True, exist_ok=True)
    slug = "-".join(name.replace(",", "").split())
    raw = h.out / f"profile-{slug}-{instance.source.label}.txt"
    argv = [py_spy(), "record", "--pid", str(instance.child.pid), "--rate", "250"]
    argv += ["--gil", "--format", "raw", "--output", str(raw)]  # the GIL holder: CPU work
    await h.set_profile(profile)
    spy = h.children.spawn(f"py-spy-{name}", argv, stdout=subprocess.DEVNULL)
    await asyncio.sleep(1)
    if not spy.alive():
        raise BenchError(f"py-spy did not start:\n{spy.tail()}")
    path = Route("ws", "ws", instance)
    for _ in range(rounds):
        await run_round(h, path, level, profile)
    spy.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    await asyncio.to_thread(spy.process.wait, 30)
    h.children.stop(spy)
    summary = summarise_profile(raw)
    return {
        "source": instance.source.label,
        "scenario": name,
        "streams": level,
        "rounds": rounds,
        "raw": str(raw),
        **summary,
    }


def py_spy() -> str:
    """py-spy beside this Python (a virtualenv's bin), else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    return found
