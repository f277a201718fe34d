"""The tables of what serving costs: rows committed, Redis round trips, memory per idle
socket and under a soak, and where the server's CPU goes (py-spy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.report import Results
from bench.report.formatting import num, p99, table


def persistence_table(entries: Sequence[Results]) -> str:
    columns = ["source", "streams", "replies", "failed", "rows", "rows/s", "lag p50", "lag p99"]
    rows = [
        [
            e["source"],
            str(e["streams"]),
            str(e["replies"]),
            str(e["failed"]),
            str(e["rows"]),
            num(e["rows_per_s"], 0),
            num(e["lag_ms"]["p50"]),
            p99(e["lag_ms"]["p99"], e["lag_ms"].get("n", 0)),
        ]
        for e in entries
    ]
    return table(columns, rows)


def redis_table(entries: Sequence[Results]) -> str:
    columns = ["source", "streams", "tokens", "round trips", "per token", "per reply"]
    columns += ["commands/token", "by command (per token)"]
    rows = []
    for e in entries:
        by_name = ", ".join(
            f"{name} {n:.2f}" for name, n in e["commands_per_token_by_name"].items()
        )
        rows.append(
            [
                e["source"],
                str(e["streams"]),
                str(e["tokens"]),
                str(e["round_trips"]),
                num(e["round_trips_per_token"], 2),
                num(e["round_trips_per_reply"], 0),
                num(e["commands_per_token"], 2),
                by_name,
            ]
        )
    return table(columns, rows)


def idle_table(entries: Sequence[Results]) -> str:
    rows = []
    for e in entries:
        points = ", ".join(f"{int(n)}: {rss / 2**20:.1f}" for n, rss in e["points"])
        errors = "; ".join(e["errors"]) or ""
        rows.append([e["source"], points, num(e["kib_per_socket"]), errors])
    return table(["source", "sockets: RSS MiB", "KiB per socket", "errors"], rows)


def soak_table(entries: Sequence[Results]) -> str:
    columns = ["source", "seconds", "streams", "replies", "failed", "lost", "RSS before"]
    columns += ["peak", "after", "growth MiB/min"]
    rows = [
        [
            e["source"],
            f"{e['seconds']:g}",
            str(e["streams"]),
            str(e["replies"]),
            str(e["failed"]),
            str(e["lost_tokens"]),
            num(e["rss_before_mib"]),
            num(e["rss_peak_mib"]),
            num(e["rss_after_mib"]),
            num(e["growth_mib_per_min"], 2),
        ]
        for e in entries
    ]
    return table(columns, rows)


def profile_section(entry: Results) -> str:
    head = (
        f"**{entry['scenario']}** (`{entry['source']}`, {entry['streams']} streams x "
        f"{entry['rounds']} rounds, {entry['samples']} samples of the thread holding the GIL)"
    )
    packages = ", ".join(f"{name} {share}%" for name, share in entry["packages"][:8])
    rows = []
    for i in range(min(12, max(len(entry["self"]), len(entry["parley"])))):
        own = entry["self"][i] if i < len(entry["self"]) else ["", ""]
        ours = entry["parley"][i] if i < len(entry["parley"]) else ["", ""]
        rows.append([_code(own[0]), _share(own[1]), _code(ours[0]), _share(ours[1])])
    columns = ["self (innermost frame)", "%", "Parley function (inclusive)", "%"]
    return f"{head}\n\nSelf time by package: {packages}.\n\n" + table(columns, rows)


def _code(name: str) -> str:
    return f"`{name}`" if name else ""


def _share(value: Any) -> str:
    return f"{value}%" if value != "" else ""
