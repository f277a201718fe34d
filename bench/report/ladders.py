"""A latency ladder's tables: latency per level and path, and where the time goes."""

from __future__ import annotations

import math
from typing import Any

from bench.report import Results
from bench.report.formatting import cpu_parts, ms, num, p99, pct, table


def ladder_title(ladder: Results) -> str:
    profile = ladder["profile"]
    title = (
        f"### Ladder: {ladder['vendor']} stub, {profile['tokens']} tokens "
        f"{profile['interval_ms']:g} ms apart"
    )
    if ladder["stopped_after"] is not None:
        title += f" (stopped after {ladder['stopped_after']} streams: Parley failed most streams)"
    return title


LATENCY_COLUMNS = (
    "streams",
    "path",
    "failed",
    "lost",
    "n TTFT",
    "TTFT p50",
    "TTFT p99",
    "+TTFT p50",
    "+TTFT p99",
    "n gaps",
    "gap p50",
    "gap p99",
    "+gap p99",
    "stalls",
)
BREAKDOWN_COLUMNS = (
    "streams",
    "path",
    "accepted p50",
    "upstream TTFT p50",
    "done lag p99",
    "frames/token",
    "CPU/token: all (server, Redis, PG)",
    "server busy",
    "Redis busy",
    "PG busy",
    "gen busy",
    "stub busy",
    "stub late p99",
    "limit",
)


def ladder_table(ladder: Results) -> str:
    latency = table(LATENCY_COLUMNS, (_latency_row(cell) for cell in ladder["cells"]))
    breakdown = table(BREAKDOWN_COLUMNS, (_breakdown_row(cell) for cell in ladder["cells"]))
    return latency + "\n\nWhere the time goes:\n\n" + breakdown


def _latency_row(cell: dict[str, Any]) -> list[str]:
    added = cell.get("added", {})
    parley = cell["source"] is not None
    ttft, gaps = cell["ttft_ms"], cell["gap_ms"]
    return [
        str(cell["level"]),
        cell["target"],
        f"{cell['failed']}/{cell['streams']}",
        str(cell["lost_tokens"]),
        str(ttft.get("n", "?")),
        num(ttft["p50"]),
        p99(ttft["p99"], ttft.get("n", 0)),
        ms(added.get("ttft_p50")) if parley else "",
        p99(added.get("ttft_p99"), added.get("ttft_n", 0), signed=True) if parley else "",
        str(gaps.get("n", "?")),
        num(gaps["p50"]),
        p99(gaps["p99"], gaps.get("n", 0)),
        p99(added.get("gap_p99"), added.get("gap_n", 0), signed=True) if parley else "",
        str(cell["stalls"]),
    ]


def _breakdown_row(cell: dict[str, Any]) -> list[str]:
    busy = cell["busy"]
    parley = cell["source"] is not None
    return [
        str(cell["level"]),
        cell["target"],
        num(cell["accepted_ms"]["p50"]) if parley else "",
        num(cell["upstream_ttft_ms"]["p50"], 0) if parley else "",
        num(cell["done_lag_ms"]["p99"]) if parley else "",
        num(cell["frames_per_token"], 2),
        _cpu(cell) if parley else "",
        pct(busy["parley"]) if parley else "",
        pct(busy.get("redis")) if parley else "",
        pct(busy.get("postgres")) if parley else "",
        pct(busy["generator"]),
        pct(busy["stub"]),
        num(cell["stub_late_p99_ms"]),
        cell["limit"],
    ]


def _cpu(cell: Results) -> str:
    parts = cpu_parts(cell)
    if math.isnan(parts.get("total", math.nan)):
        return f"{num(parts['server'], 0)} µs (server)"
    pieces = ", ".join(num(parts.get(name), 0) for name in ("server", "redis", "postgres"))
    return f"{num(parts['total'], 0)} µs ({pieces})"


def ladder_notes(ladder: Results) -> str:
    notes = []
    for cell in ladder["cells"]:
        if cell["error_samples"]:
            notes.append(
                f"- {cell['target']} x{cell['level']}: " + "; ".join(cell["error_samples"])
            )
    return "Failures:\n\n" + "\n".join(notes) if notes else ""
