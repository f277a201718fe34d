"""The tables of limits: stall-free streams per path, and across cores (scaling)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report import Results
from bench.report.formatting import num, table


def stall_table(entries: Sequence[Results]) -> str:
    rows = []
    for entry in entries:
        for probe in entry["probes"]:
            rows.append(
                [
                    entry["source"],
                    entry.get("path", "ws"),
                    str(probe["level"]),
                    "clean" if probe["clean"] else "stalled",
                    str(probe["stalls"]),
                    num(probe["max_gap_ms"]),
                    f"{probe['failed']}/{probe['streams']}",
                    str(probe["lost_tokens"]),
                    num(probe["baseline_max_gap_ms"]),
                ]
            )
    columns = ["source", "path", "streams", "verdict", "stalls", "max gap", "failed", "lost"]
    return (
        table([*columns, "baseline max gap"], rows)
        + "\n\n"
        + "\n".join(_stall_sentence(e) for e in entries)
    )


def _stall_sentence(e: Results) -> str:
    where = f"`{e['source']}` {e.get('path', 'ws')}"
    if not e.get("probed", True):
        return (
            f"{where}: every level tried was clean, up to {e['max_streams']} streams; "
            "the limit was **not probed**."
        )
    return (
        f"{where}: at most **{e['max_streams']}** streams stall-free "
        f"({e['per_core']:.0f} per core, on {e['parley_cores']} core(s))."
    )


SCALING_COLUMNS = (
    "source",
    "configuration",
    "processes x workers",
    "CPUs",
    "stall-free streams",
    "first unclean",
    "probed",
    "vs one worker",
    "Parley CPU at the limit",
    "harness limit",
    "probes",
)


def scaling_table(entries: Sequence[Results]) -> str:
    rows, errors = [], []
    for entry in entries:
        for c in entry["configs"]:
            rows.append(_scaling_row_cells(entry["source"], c))
            if "error" in c:
                errors.append(f"- `{entry['source']}` {c['label']}: {c['error'][:500]}")
    first = entries[0]
    intro = (
        f"WebSocket streams at {1000 / first['interval_ms']:g} tokens/s, each level against "
        "the baseline at the same level, bisected as above; two instances share one database "
        f"and Redis and take a round's streams in turn. Machine: {first['machine_cores']} "
        f"cores; below 4 the stub, load generator and Redis share Parley's second core."
    )
    failures = "\n\nFailed:\n\n" + "\n".join(errors) if errors else ""
    return intro + "\n\n" + table(SCALING_COLUMNS, rows) + failures


def _scaling_row_cells(source: str, c: Results) -> list[str]:
    ratio = c.get("ratio")
    busy = c.get("parley_busy")
    label = c["label"] + (" (stall-free phase)" if c.get("reused") else "")
    probes = ", ".join(
        f"{p['level']} {'clean' if p['clean'] else 'stalled'}"
        + (" (baseline stalled)" if p.get("baseline_stalls") or p.get("baseline_failed") else "")
        for p in c["probes"]
    )
    return [
        source,
        f"`{label}`" if label.startswith("--") else label,
        f"{c['processes']} x {c['workers']}",
        c["cpus"],
        "failed" if "error" in c else str(c["max_streams"]),
        str(c["first_unclean"] or "-"),
        "yes" if c["probed"] else "**not probed**",
        "-" if ratio is None else f"x{ratio:.2f}",
        "-" if busy is None else f"{num(busy, 2)} cores",
        c.get("limit", ""),
        probes,
    ]
