"""The targets table: each target judged per path from a run's results.

Where several ladders give a figure, the worst of those with enough samples is
judged and every ladder's value goes into the notes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bench.report import Results
from bench.report.formatting import cpu_parts, ms, num, phase_profile
from bench.stats import min_samples
from bench.verdicts import HARNESS_LIMITED, NOT_PROBED, TARGETS, Target


def evaluate(results: Results) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for source in results["meta"]["sources"]:
        label = source["label"]
        for row in _judged(results, label):
            rows.append({**row, "source": label})
    return rows


def _judged(results: Results, source: str) -> Iterable[dict[str, Any]]:
    yield from _first_token_rows(results.get("first_token"), source)
    yield from _burst_rows(results.get("burst"), source)
    ladders = [lad for lad in results.get("ladders", []) if lad["vendor"] == "openai"]
    for transport in TRANSPORTS:
        for key, level, metric in (
            ("ttft_128_p99", 128, "ttft"),
            ("gap_1_p99", 1, "gap"),
            ("gap_200_p99", 200, "gap"),
        ):
            value, n, note = _worst_added(ladders, level, metric, transport, source)
            yield TARGETS[key].judge(value, note, path=transport, n=n, q=0.99)
    for transport in TRANSPORTS:
        yield _cpu_per_token(ladders, source, transport)
    yield from _stall_rows(results.get("stall_free", []), source)
    yield from _scaling_rows(results.get("scaling", []), source)
    for key, read in PHASE_TARGETS:
        phase, target = key.split(":")
        entry = _for(results, phase, source)
        if entry is None:
            yield TARGETS[target].judge(None, path="ws")
        elif target == "commit_lag_p99":  # a percentile: judged only with enough samples
            value, note = read(entry)
            n = int(entry["lag_ms"].get("n", 0))
            yield TARGETS[target].judge(value, note, path="ws", n=n, q=0.99)
        else:
            value, note = read(entry)
            yield TARGETS[target].judge(value, note, path="ws")


TRANSPORTS = ("ws", "sse")
FIRST_TOKEN_PATHS = ("ws", "ws-new", "sse")


def _first_token_rows(phase: Results | None, source: str) -> Iterable[dict[str, Any]]:
    """Added time to first token at one stream, p50 and p99, per path."""
    cells = {c["kind"]: c for c in (phase or {}).get("cells", []) if c["source"] == source}
    for kind in FIRST_TOKEN_PATHS:
        cell = cells.get(kind)
        for key, q in (("ttft_1_p50", 0.5), ("ttft_1_p99", 0.99)):
            if cell is None or "added" not in cell:
                yield TARGETS[key].judge(None, path=kind)
                continue
            added = cell["added"]
            note = f"{cell['streams']} probes of {phase_profile(phase)}" + _failures(cell)
            value = added[f"ttft_p{round(100 * q)}"]
            yield TARGETS[key].judge(value, note, path=kind, n=int(added["ttft_n"]), q=q)


def _burst_rows(phase: Results | None, source: str) -> Iterable[dict[str, Any]]:
    """Stalls in the running streams and the burst's added first token, per path."""
    running = {c["kind"]: c for c in (phase or {}).get("running", []) if c["source"] == source}
    burst = {c["kind"]: c for c in (phase or {}).get("burst", []) if c["source"] == source}
    for kind in TRANSPORTS:
        if kind not in running or phase is None:
            yield TARGETS["burst_stalls"].judge(None, path=kind)
            yield TARGETS["burst_ttft_p99"].judge(None, path=kind)
            continue
        cell = running[kind]
        base = next((c for c in phase["running"] if c["source"] is None), None)
        note = (
            f"{phase['streams']} new streams {phase['at_ms']:.0f} ms into as many running, "
            f"{phase['rounds']} rounds; {cell['gap_ms'].get('n', 0)} gaps" + _failures(cell)
        )
        if base is not None:
            note += f"; the baseline's running streams: {base['stalls']} stalls"
        yield TARGETS["burst_stalls"].judge(float(cell["stalls"]), note, path=kind)
        added = burst[kind].get("added", {})
        yield TARGETS["burst_ttft_p99"].judge(
            added.get("ttft_p99"),
            f"{burst[kind]['streams']} burst streams" + _failures(burst[kind]),
            path=kind,
            n=int(added.get("ttft_n", 0)),
            q=0.99,
        )


def _worst_added(
    ladders: Sequence[Results], level: int, metric: str, transport: str, source: str
) -> tuple[float | None, int | None, str]:
    """The worst ladder's added p99 among those with enough samples for one."""
    found = []
    for ladder in ladders:
        cell = _cell(ladder, level, transport, source)
        if cell is not None and "added" in cell:
            added = cell["added"]
            found.append((added[f"{metric}_p99"], int(added.get(f"{metric}_n", 0)), ladder, cell))
    if not found:
        return None, None, ""
    notes = [
        f"{ladder['name']}: {ms(value)} (n={n}{_failures(cell)})"
        for value, n, ladder, cell in found
    ]
    counted = [item for item in found if item[1] >= min_samples(0.99)] or found
    value, n, _, _ = max(counted, key=lambda item: item[0])
    return value, n, "; ".join(notes)


def _stall_rows(entries: Sequence[Results], source: str) -> Iterable[dict[str, Any]]:
    judged = set()
    for e in entries:
        if e["source"] != source:
            continue
        path = e.get("path", "ws")
        judged.add(path)
        note = f"{e['max_streams']} streams clean on {e['parley_cores']} core(s)"
        if not e.get("probed", True):
            note += "; no unclean level found: the limit was not probed"
            yield TARGETS["stall_free"].judge(None, note, path=path, missing=NOT_PROBED)
            continue
        note += f"; first unclean level: {e['first_unclean']}"
        yield TARGETS["stall_free"].judge(e["per_core"], note, path=path)
    for path in TRANSPORTS:
        if path not in judged:
            yield TARGETS["stall_free"].judge(None, path=path)


SCALING_TARGETS = (("workers_2", "workers"), ("instances_2", "instances"))


def _scaling_rows(entries: Sequence[Results], source: str) -> Iterable[dict[str, Any]]:
    """Two cores' stall-free streams over one worker's: ``--workers 2``, two instances."""
    entry = next((e for e in entries if e["source"] == source), None)
    configs = {c["key"]: c for c in (entry or {}).get("configs", [])}
    for key, config in SCALING_TARGETS:
        yield _scaling_row(TARGETS[key], configs.get(config), configs.get("single"))


def _scaling_row(target: Target, config: Results | None, single: Results | None) -> Results:
    """A ratio only from two found limits that are Parley's: a limit never reached is
    not probed, one the baseline shared is the harness's."""
    if config is None or single is None:
        return target.judge(None, path="ws")
    failed = next((c for c in (config, single) if "error" in c), None)
    if failed is not None:
        return target.judge(None, f"{failed['label']} failed: {failed['error'][:200]}", path="ws")
    note = (
        f"{config['max_streams']} vs {single['max_streams']} streams clean; first unclean "
        f"{config['first_unclean'] or '-'} vs {single['first_unclean'] or '-'}"
    )
    limits = [c["limit"] for c in (config, single) if c.get("limit")]
    note += "".join(f"; {limit}" for limit in dict.fromkeys(limits))
    unknown = [c["label"] for c in (single, config) if not c["probed"]]
    if unknown:
        clean = " and ".join(unknown)
        note += f"; every level tried was clean for {clean}: the limit was not probed"
        return target.judge(None, note, path="ws", missing=NOT_PROBED)
    if config.get("baseline_stalled") or single.get("baseline_stalled"):
        return target.judge(None, note, path="ws", missing=HARNESS_LIMITED)
    row = target.judge(config.get("ratio"), note, path="ws")
    if limits and row["verdict"] != "met":  # a miss on shared cores is not Parley's alone
        row["verdict"] = f"{HARNESS_LIMITED}; {row['verdict']}"
    return row


Reading = tuple[float, str]


def _idle(e: Results) -> Reading:
    first, last = int(e["points"][1][0]), int(e["points"][-1][0])
    return e["kib_per_socket"], f"RSS slope from {first} to {last} sockets"


def _burst(e: Results) -> str:
    failed = f"; {e['failed']} failed" if e["failed"] else ""
    return f"{e['streams']} concurrent replies of {e['profile']['tokens']} tokens{failed}"


def _rows(e: Results) -> Reading:
    return e["rows_per_s"], _burst(e)


def _lag(e: Results) -> Reading:
    return e["lag_ms"]["p99"], _burst(e) + "; last token to done at the client"


def _redis(e: Results) -> Reading:
    note = f"{e['round_trips_per_reply']:.0f} round trips per reply"
    return e["round_trips_per_token"], note + f"; {e['commands_per_token']:.2f} commands/token"


def _soak_note(e: Results) -> str:
    return f"{e['seconds']:g} s, {e['streams']} streams, {e['replies']} replies"


def _growth(e: Results) -> Reading:
    return e["growth_mib_per_min"], _soak_note(e)


def _return(e: Results) -> Reading:
    note = f"{e['rss_before_mib']:.1f} MiB before, {e['rss_after_mib']:.1f} MiB after"
    return abs(e["after_vs_before_pct"]), note


PHASE_TARGETS: tuple[tuple[str, Callable[[Results], Reading]], ...] = (
    ("idle:idle_ws_kib", _idle),
    ("persistence:rows_per_s", _rows),
    ("persistence:commit_lag_p99", _lag),
    ("redis:redis_rt_per_token", _redis),
    ("soak:soak_growth", _growth),
    ("soak:soak_return", _return),
)


def _cpu_per_token(ladders: Sequence[Results], source: str, transport: str) -> dict[str, Any]:
    """At 32 streams, 20 ms apart (the largest level up to 32 if 32 was not run): Parley's
    CPU plus its Redis's and its Postgres backends'."""
    paced = [lad for lad in ladders if lad["profile"]["interval_ms"] == 20] or ladders
    cells = [
        c for lad in paced for c in lad["cells"] if _is(c, transport, source) and c["level"] <= 32
    ]
    if not cells:
        return TARGETS["cpu_per_token"].judge(None, path=transport)
    cell = max(cells, key=lambda c: c["level"])
    parts = cpu_parts(cell)
    note = (
        f"at {cell['level']} streams: server {num(parts['server'], 0)}, Redis "
        f"{num(parts.get('redis'), 0)}, Postgres backends {num(parts.get('postgres'), 0)} µs; "
        f"server-wide Postgres {num(parts.get('postgres_shared'), 0)} µs not added"
    )
    others = [
        f"x{c['level']}: {num(cpu_parts(c)['total'], 0)}"
        for lad in paced
        for c in lad["cells"]
        if _is(c, transport, source) and c is not cell
    ]
    if others:
        note += "; other levels (µs): " + ", ".join(others)
    return TARGETS["cpu_per_token"].judge(parts["total"], note, path=transport)


def _is(cell: dict[str, Any], transport: str, source: str) -> bool:
    return bool(cell["kind"] == transport and cell["source"] == source)


def _cell(ladder: Results, level: int, transport: str, source: str) -> dict[str, Any] | None:
    for cell in ladder["cells"]:
        if cell["level"] == level and _is(cell, transport, source):
            return dict(cell)
    return None


def _for(results: Results, phase: str, source: str) -> dict[str, Any] | None:
    for entry in results.get(phase, []):
        if entry["source"] == source:
            return dict(entry)
    return None


def _failures(cell: dict[str, Any]) -> str:
    return f", {cell['failed']} failed" if cell["failed"] else ""
