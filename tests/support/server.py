"""A real Parley server in a child process, started through its own CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 60


def run_parley(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``parley ARGS`` in a child process (its environment: this one's plus ``env``)
    and return what it printed and its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ParleyServer:
    def __init__(
        self, env: dict[str, str], *, name: str = "parley", args: Sequence[str] = ()
    ) -> None:
        self.env = env
        self.name = name
        self.args = list(args)  # more `parley serve` arguments, e.g. ["--workers", "2"]
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> ParleyServer:
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "parley", "serve", "--port", str(self.port), *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()  # not left running when it did not start in time
            raise
        return self

    def __enter__(self) -> ParleyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a readiness probe, not synchronising a test
        raise RuntimeError(f"{self.name} not ready in {START_TIMEOUT_SECONDS}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 30) -> None:
        """Return once the server has logged ``text``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {text!r}:\n{self.log()}")
            time.sleep(0.05)  # polling a file for a line, not synchronising on time

    def stop(self) -> None:
        self._signal(signal.SIGTERM, wait=30)

    def kill(self) -> None:
        """Die at once, as a crashed instance would: no shutdown code runs."""
        self._signal(signal.SIGKILL, wait=10)

    def _signal(self, sig: int, *, wait: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
