"""The targets of docs/performance.md and how a figure is judged against one.

A verdict is ``met``, ``missed (…)``, or one that says why there is none:
``not measured`` (the phase did not run or failed), ``not probed`` (the
harness never found the limit: quick mode, or every level it tried was
clean), ``too few samples`` (a percentile whose count is under
:func:`bench.stats.min_samples`), or ``harness-limited`` (the harness, not
Parley, set the limit: the baseline stalled too, or too few cores to keep the
stub and load generator off Parley's). Every target is judged per path
(``ws``, ``ws-new``, ``sse``). Nothing here does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.stats import Quantile, min_samples

NOT_MEASURED = "not measured"
NOT_PROBED = "not probed"
HARNESS_LIMITED = "harness-limited"


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

    def judge(
        self,
        value: float | None,
        note: str = "",
        *,
        path: str = "",
        n: int | None = None,
        q: float | None = None,
        missing: str = NOT_MEASURED,
    ) -> dict[str, Any]:
        """One row of the targets table.

        ``n`` is the sample count behind ``value``; with ``q`` (the value is that
        percentile) too few samples give no verdict at all.
        """
        row: dict[str, Any] = {
            "key": self.key,
            "figure": self.figure,
            "path": path,
            "target": f"{self.sign} {_num(self.limit)} {self.unit}".strip(),
            "value": value,
            "n": n,
            "unit": self.unit,
            "note": note,
        }
        if value is None or (isinstance(value, float) and math.isnan(value)):
            row.update(measured=missing, verdict=missing)
            return row
        counted = f" (n={n})" if n is not None else ""
        if q is not None and n is not None and not Quantile(q, value, n).reportable:
            need = min_samples(q)
            row.update(measured=f"n={n} < {need}", verdict=f"too few samples (n={n}, need {need})")
            return row
        met = value >= self.limit if self.higher_is_better else value <= self.limit
        row["measured"] = f"{_num(value)} {self.unit}".strip() + counted
        row["verdict"] = "met" if met else f"missed ({self.shortfall(value)})"
        return row

    def shortfall(self, value: float) -> str:
        if self.higher_is_better:
            ratio = self.limit / value if value > 0 else math.inf
            return f"{_num(self.limit - value)} {self.unit} short, x{ratio:.1f} below".replace(
                "  ", " "
            )
        over = f"{_num(value - self.limit)} {self.unit} over".replace("  ", " ")
        if self.limit <= 0:
            return over
        return f"{over}, x{value / self.limit:.1f}"


TARGETS = {
    t.key: t
    for t in (
        Target("ttft_1_p50", "added time to first token, 1 stream, p50", 1.5, "ms"),
        Target("ttft_1_p99", "added time to first token, 1 stream, p99", 3.0, "ms"),
        Target("burst_stalls", "stalls in running streams during a burst", 0, "stalls"),
        Target("burst_ttft_p99", "added time to first token of a burst, p99", 30.0, "ms"),
        Target("ttft_128_p99", "added time to first token, 128 streams, p99", 10.0, "ms"),
        Target("gap_1_p99", "added inter-token gap p99, 1 stream", 2.0, "ms"),
        Target("gap_200_p99", "added inter-token gap p99, 200 streams", 10.0, "ms"),
        Target("cpu_per_token", "CPU per relayed token (server + Redis + Postgres)", 60.0, "µs"),
        Target("stall_free", "stall-free streams at 50 tokens/s, per core", 200, "streams", True),
        Target("workers_2", "`--workers 2` stall-free streams vs one worker", 1.8, "x", True),
        Target(
            "instances_2",
            "two instances, aggregate stall-free streams vs one worker",
            1.8,
            "x",
            True,
        ),
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
