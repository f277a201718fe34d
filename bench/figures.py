"""From timed streams to figures: per-cell summaries, Parley minus baseline, targets.

A *cell* is one path (``baseline``, ``ws``, ``sse``) at one concurrency level of
one ladder, pooled over its rounds. Parley's cells are compared with the
baseline cell of the same level, whose rounds alternated with theirs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import Profile, StreamResult, percentile

BUSY_LIMIT = 0.9  # a process this busy (share of one core) is the bottleneck


@dataclass
class Usage:
    """CPU seconds of each process over some wall-clock seconds."""

    wall: float = 0.0
    parley: float = 0.0
    stub: float = 0.0
    generator: float = 0.0
    redis: float = 0.0

    def add(self, other: Usage) -> None:
        self.wall += other.wall
        self.parley += other.parley
        self.stub += other.stub
        self.generator += other.generator
        self.redis += other.redis

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


def spread(values: Sequence[float], points: Iterable[float] = (0.5, 0.99)) -> dict[str, float]:
    out = {f"p{round(100 * q)}": percentile(values, q) for q in points}
    out["max"] = max(values, default=math.nan)
    return out


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
        },
        "parley_cpu_us_per_token": 1e6 * usage.parley / tokens if tokens else math.nan,
        "stub_late_p99_ms": percentile(cell.stub_late, 0.99),
    }
    summary["limit"] = limit_of(summary, profile)
    if cell.parley and baseline is not None:
        summary["added"] = added(cell, baseline)
    return summary


def added(cell: Cell, baseline: Cell) -> dict[str, float]:
    """Parley's percentile minus the baseline's, at the same level."""
    mine_ttft, base_ttft = cell.values(lambda r: r.ttft), baseline.values(lambda r: r.ttft)
    mine_gaps, base_gaps = cell.gaps(), baseline.gaps()
    out: dict[str, float] = {}
    for q in (0.5, 0.99):
        name = f"p{round(100 * q)}"
        out[f"ttft_{name}"] = percentile(mine_ttft, q) - percentile(base_ttft, q)
        out[f"gap_{name}"] = percentile(mine_gaps, q) - percentile(base_gaps, q)
    return out


def limit_of(summary: dict[str, Any], profile: Profile) -> str:
    """Which process held the cell back, if one was saturated."""
    busy = summary["busy"]
    found = [name for name in ("parley", "generator", "stub") if busy[name] >= BUSY_LIMIT]
    if summary["stub_late_p99_ms"] > profile.interval_ms / 2:
        found.append("stub late")
    return ", ".join(dict.fromkeys(found))


# -- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    key: str
    figure: str
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def sign(self) -> str:
        return "≥" if self.higher_is_better else "≤"

    def judge(self, value: float | None, note: str = "") -> dict[str, Any]:
        row: dict[str, Any] = {
            "key": self.key,
            "figure": self.figure,
            "target": f"{self.sign} {_num(self.limit)} {self.unit}".strip(),
            "value": value,
            "unit": self.unit,
            "note": note,
        }
        if value is None or (isinstance(value, float) and math.isnan(value)):
            row.update(measured="not measured", verdict="not measured")
            return row
        met = value >= self.limit if self.higher_is_better else value <= self.limit
        row["measured"] = f"{_num(value)} {self.unit}".strip()
        row["verdict"] = "met" if met else f"missed ({self.shortfall(value)})"
        return row

    def shortfall(self, value: float) -> str:
        if self.higher_is_better:
            ratio = self.limit / value if value > 0 else math.inf
            return f"{_num(self.limit - value)} {self.unit} short, x{ratio:.1f} below".replace(
                "  ", " "
            )
        ratio = value / self.limit if self.limit > 0 else math.inf
        return f"{_num(value - self.limit)} {self.unit} over, x{ratio:.1f}".replace("  ", " ")


TARGETS = {
    t.key: t
    for t in (
        Target("ttft_1_p50", "added time to first token, 1 stream, p50", 1.5, "ms"),
        Target("ttft_1_p99", "added time to first token, 1 stream, p99", 3.0, "ms"),
        Target("ttft_128_p99", "added time to first token, 128 streams, p99", 10.0, "ms"),
        Target("gap_1_p99", "added inter-token gap p99, 1 stream", 2.0, "ms"),
        Target("gap_200_p99", "added inter-token gap p99, 200 streams", 10.0, "ms"),
        Target("cpu_per_token", "server CPU per relayed token", 60.0, "µs"),
        Target("stall_free", "stall-free streams at 50 tokens/s, per core", 200, "streams", True),
        Target("idle_ws_kib", "memory per idle authenticated WebSocket", 40.0, "KiB"),
        Target("rows_per_s", "persistence: rows committed per second", 5000, "rows/s", True),
        Target("commit_lag_p99", "persistence: reply end to commit, p99", 250.0, "ms"),
        Target("redis_rt_per_token", "Redis round trips per relayed token", 0.1, ""),
        Target("soak_growth", "soak: RSS growth under load", 1.0, "MiB/min"),
        Target("soak_return", "soak: RSS after load vs before", 10.0, "%"),
    )
}


def _num(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
