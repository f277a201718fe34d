"""From timed streams to figures: per-cell summaries, Parley minus baseline, targets.

A *cell* is one path (``baseline``, ``ws``, ``sse``) at one concurrency level of
one ladder, pooled over its rounds. Parley's cells are compared with the
baseline cell of the same level, whose rounds alternated with theirs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import Profile, StreamResult, percentile
from bench.stats import Quantile, spread

BUSY_LIMIT = 0.9  # a process this busy (share of one core) is the bottleneck


@dataclass
class Usage:
    """CPU seconds of each process over some wall-clock seconds.

    ``parley`` is the server under test (Parley, or a peer such as LiteLLM);
    ``postgres`` the backends serving its database; ``postgres_shared`` the
    server-wide Postgres processes (WAL writer, checkpointer, background
    writer), which other users of the same Postgres also make busy.
    """

    wall: float = 0.0
    parley: float = 0.0
    stub: float = 0.0
    generator: float = 0.0
    redis: float = 0.0
    postgres: float = 0.0
    postgres_shared: float = 0.0

    def add(self, other: Usage) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def server_side(self) -> float:
        """The server's CPU plus what it caused in Redis and in its Postgres backends."""
        return sum(v for v in (self.parley, self.redis, self.postgres) if not math.isnan(v))

    def busy(self, cpu: float) -> float:
        return cpu / self.wall if self.wall > 0 else math.nan


@dataclass
class Round:
    """What one round of one path produced."""

    results: list[StreamResult]
    usage: Usage
    stub_late: list[float] = field(default_factory=list)  # ms behind schedule, per token
    users: str = ""  # the user-id prefix of the round's streams
    upstream_ttft: list[float] = field(default_factory=list)  # Parley's own, from llm_usage


@dataclass
class Cell:
    level: int
    target: str
    kind: str  # openai | anthropic (the baseline) | ws | sse | ws-anthropic
    source: str | None  # the Parley source label; None for the baseline
    results: list[StreamResult] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    stub_late: list[float] = field(default_factory=list)
    rounds: int = 0
    upstream_ttft: list[float] = field(default_factory=list)

    def add(self, round_: Round) -> None:
        self.results += round_.results
        self.upstream_ttft += round_.upstream_ttft
        self.usage.add(round_.usage)
        self.stub_late += round_.stub_late
        self.rounds += 1

    @property
    def parley(self) -> bool:
        return self.source is not None

    def values(self, pick: Callable[[StreamResult], float | None]) -> list[float]:
        return [v for v in (pick(r) for r in self.results) if v is not None]

    def gaps(self) -> list[float]:
        return [gap for result in self.results for gap in result.gaps]

    def failed(self) -> list[StreamResult]:
        return [result for result in self.results if not result.ok]

    def tokens(self) -> int:
        return sum(result.tokens for result in self.results)

    def stalls(self, profile: Profile) -> int:
        return sum(gap > profile.stall_ms for gap in self.gaps())

    def clean(self, profile: Profile) -> bool:
        """Stall-free: every stream whole, no gap over twice the interval."""
        return bool(self.results) and not self.failed() and self.stalls(profile) == 0


def error_samples(cell: Cell, limit: int = 4) -> list[str]:
    reasons = Counter(
        result.error or f"{result.lost} tokens lost" for result in cell.failed()
    ).most_common(limit)
    return [f"{count}x {reason}" for reason, count in reasons]


def summarise(cell: Cell, profile: Profile, baseline: Cell | None) -> dict[str, Any]:
    usage, tokens = cell.usage, cell.tokens()
    frames = sum(result.frames for result in cell.results)
    summary: dict[str, Any] = {
        "level": cell.level,
        "target": cell.target,
        "kind": cell.kind,
        "source": cell.source,
        "rounds": cell.rounds,
        "streams": len(cell.results),
        "failed": len(cell.failed()),
        "lost_tokens": sum(result.lost for result in cell.results),
        "error_samples": error_samples(cell),
        "tokens": tokens,
        "frames_per_token": frames / tokens if tokens else math.nan,
        "ttft_ms": spread(cell.values(lambda r: r.ttft), (0.5, 0.9, 0.99)),
        "gap_ms": spread(cell.gaps()),
        "stalls": cell.stalls(profile),
        "clean": cell.clean(profile),
        "accepted_ms": spread(cell.values(lambda r: r.accepted)),
        "upstream_ttft_ms": spread(cell.upstream_ttft),
        "done_lag_ms": spread(cell.values(lambda r: r.done_lag)),
        "busy": {
            "parley": usage.busy(usage.parley),
            "stub": usage.busy(usage.stub),
            "generator": usage.busy(usage.generator),
            "redis": usage.busy(usage.redis),
            "postgres": usage.busy(usage.postgres),
            "postgres_shared": usage.busy(usage.postgres_shared),
        },
        "parley_cpu_us_per_token": 1e6 * usage.parley / tokens if tokens else math.nan,
        "cpu_us_per_token": {
            "server": 1e6 * usage.parley / tokens if tokens else math.nan,
            "redis": 1e6 * usage.redis / tokens if tokens else math.nan,
            "postgres": 1e6 * usage.postgres / tokens if tokens else math.nan,
            "total": 1e6 * usage.server_side / tokens if tokens else math.nan,
            "postgres_shared": 1e6 * usage.postgres_shared / tokens if tokens else math.nan,
        },
        "stub_late_p99_ms": percentile(cell.stub_late, 0.99),
    }
    summary["limit"] = limit_of(summary, profile)
    if cell.parley and baseline is not None:
        summary["added"] = added(cell, baseline)
    return summary


def added(cell: Cell, baseline: Cell) -> dict[str, float]:
    """Parley's percentile minus the baseline's, at the same level.

    ``ttft_n`` and ``gap_n`` count the smaller of the two samples: whether a
    difference of p99s may be reported depends on both (bench.stats).
    """
    mine_ttft, base_ttft = cell.values(lambda r: r.ttft), baseline.values(lambda r: r.ttft)
    series = {"ttft": (mine_ttft, base_ttft), "gap": (cell.gaps(), baseline.gaps())}
    out: dict[str, float] = {}
    for name, (mine, base) in series.items():
        for q in (0.5, 0.99):
            difference = Quantile.of(mine, q).minus(Quantile.of(base, q))
            out[f"{name}_p{round(100 * q)}"] = difference.value
        out[f"{name}_n"] = min(len(mine), len(base))
    return out


def limit_of(summary: dict[str, Any], profile: Profile) -> str:
    """Which process held the cell back, if one was saturated."""
    busy = summary["busy"]
    found = [name for name in ("parley", "generator", "stub") if busy[name] >= BUSY_LIMIT]
    if summary["stub_late_p99_ms"] > profile.interval_ms / 2:
        found.append("stub late")
    return ", ".join(dict.fromkeys(found))
