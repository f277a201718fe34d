"""What every phase shares: the processes of the run (:class:`Harness`), the phases'
knobs (:class:`Settings`) and the ways of getting a reply (:class:`Route`)."""

from __future__ import annotations

import math
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

from bench.arrivals import Arrivals
from bench.common import Profile
from bench.cpu import PostgresCpu, Snapshot
from bench.figures import Cell
from bench.measure import http_json
from bench.peer import Peer
from bench.processes import Child, Children, Cpus, GeneratorClient
from bench.servers import (
    ANTHROPIC_AGENT,
    OPENAI_AGENT,
    Instance,
    Scratch,
    Source,
    Storage,
    start_instance,
)

Server = Instance | Peer


@dataclass(frozen=True)
class Route:
    """One way of getting a reply: straight from the stub, through a Parley instance,
    or through a peer (LiteLLM proxy)."""

    label: str
    kind: str  # openai | anthropic (the baseline) | ws | ws-new | sse | ws-anthropic | peer
    instance: Instance | None = None
    peer: Peer | None = None
    # More instances sharing ``instance``'s storage: a round's streams go to each in turn.
    others: tuple[Instance, ...] = ()

    @property
    def instances(self) -> tuple[Instance, ...]:
        return (self.instance, *self.others) if self.instance is not None else ()

    @property
    def agent(self) -> str:
        return ANTHROPIC_AGENT if self.kind == "ws-anthropic" else OPENAI_AGENT

    @property
    def server(self) -> Server | None:
        return self.instance if self.instance is not None else self.peer

    @property
    def source(self) -> str | None:
        """The label of what is measured: a source tree, a peer; None for the baseline."""
        if self.instance is not None:
            return self.instance.source.label
        return self.peer.label if self.peer is not None else None

    @property
    def protocol(self) -> str:
        """What the load generator speaks on this route."""
        return {"ws-anthropic": "ws", "peer": "openai"}.get(self.kind, self.kind)

    def cell(self, level: int) -> Cell:
        return Cell(level, self.label, self.kind, self.source)


@dataclass
class Settings:
    """The knobs the phases read (set from the command line)."""

    rounds: int
    transports: tuple[str, ...]
    stall_rounds: int
    persistence_streams: int
    persistence_rounds: int
    persistence_profile: Profile
    redis_streams: int
    idle_max: int
    idle_step: int
    soak_seconds: float
    soak_streams: int
    arrivals: Arrivals = field(default_factory=Arrivals)
    probe_samples: int = 200  # first-token probes per path
    probe_rounds: int = 5  # ... in this many rounds, the paths alternating
    probe_pause_s: float = 0.05  # between one path's probes (a user reading the reply)
    burst_streams: int = 128  # new streams arriving while as many run
    stall_probe_up: bool = True  # probe above the ladder when every level was clean
    stall_max: int = 2048  # ... up to this many streams
    collapse_share: float = 0.5  # stop a ladder when this share of a level's streams fail
    scaling_levels: tuple[int, ...] = ()  # the scaling phase's first probes (): its own


@dataclass
class Harness:
    settings: Settings
    children: Children
    generator: GeneratorClient
    stub: Child
    stub_url: str
    run_id: str
    parley_cpu: int | None
    tools_cpu: int | None
    out: pathlib.Path
    server_env: dict[str, str]
    deflate: bool = True  # WebSocket clients offer permessage-deflate, as browsers do
    redis: dict[str, Child] = field(default_factory=dict)  # source label -> redis-server
    storage: dict[str, Storage] = field(default_factory=dict)
    postgres: dict[str, PostgresCpu] = field(default_factory=dict)  # source label ->
    live: list[Instance] = field(default_factory=list)  # running Parley instances
    peers: list[Peer] = field(default_factory=list)
    peer_storage: dict[str, Scratch] = field(default_factory=dict)  # peer name ->
    serial: int = 0

    def users(self, what: str) -> str:
        self.serial += 1
        return f"b{self.run_id}.{what}.{self.serial}"

    async def set_profile(self, profile: Profile) -> None:
        body = {"tokens": profile.tokens, "interval_ms": profile.interval_ms}
        await http_json(f"{self.stub_url}/bench/profile", "PUT", body)

    async def stub_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await http_json(f"{self.stub_url}/bench/stats?reset=1&samples=1")
        return stats

    async def snapshot(self, route: Route) -> Snapshot:
        """CPU seconds so far of every process in the path (a snapshot, not a delta):
        the server, and for Parley (and a peer with storage, the floor) its Redis and
        the Postgres processes of its database."""
        label = route.source
        redis = self.redis.get(label) if label else None
        postgres = self.postgres.get(label) if label else None
        backends, shared = await postgres.snapshot() if postgres else (None, {})
        return Snapshot(
            wall=time.perf_counter(),
            parley=_server_cpu(route),
            stub=self.stub.cpu(),
            generator=self.generator.child.cpu(),
            redis=redis.cpu() if redis else math.nan,
            backends=backends,
            shared=shared,
        )

    def servers(self) -> list[Server]:
        return [*self.live, *self.peers]

    async def stop_instance(self, instance: Instance) -> None:
        await instance.stop()
        self.children.stop(instance.child)  # already stopped: just forget it
        if instance in self.live:
            self.live.remove(instance)

    async def start_instance(
        self,
        name: str,
        source: Source,
        redis_url: str | None = None,
        *,
        cpu: Cpus | None = None,
        workers: int = 1,
    ) -> Instance:
        """A Parley of ``source`` on the tree's database and Redis (``redis_url``: through
        a proxy to it), pinned to ``cpu`` (None: Parley's core), stopped with the run."""
        instance = await start_instance(
            self.children,
            f"{name}-{source.label}",
            source,
            self.storage[source.label],
            stub_url=self.stub_url,
            redis_url=redis_url,
            cpu=self.parley_cpu if cpu is None else cpu,
            extra_env=self.server_env,
            workers=workers,
        )
        self.live.append(instance)
        return instance


def _server_cpu(route: Route) -> float:
    """The CPU seconds of the route's server(s): every instance the streams are spread on."""
    if route.instance is not None:
        return sum(instance.child.cpu() for instance in route.instances)
    return route.peer.child.cpu() if route.peer is not None else math.nan
