"""The run's output: the JSON file, the Markdown tables, the plot, and the docs update.

``--publish`` replaces the block between :data:`START` and :data:`END` in
``docs/performance.md`` with this run's Markdown and copies the plot next to it.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench import collector
from bench.stats import Quantile, min_samples, shown
from bench.verdicts import HARNESS_LIMITED, NOT_PROBED, TARGETS, Target

START = "<!-- bench:figures:start -->"
END = "<!-- bench:figures:end -->"
Results = dict[str, Any]


# -- targets -----------------------------------------------------------------------------


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


def phase_profile(phase: Results | None) -> str:
    profile = (phase or {}).get("profile", {})
    return f"{profile.get('tokens', '?')} tokens {profile.get('interval_ms', '?'):g} ms apart"


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
        f"{ladder['name']}: {_ms(value)} (n={n}{_failures(cell)})"
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


def cpu_parts(cell: Results) -> dict[str, float]:
    """CPU per token by process; files from before Redis and Postgres were counted
    have the server's alone."""
    parts: dict[str, float] = cell.get("cpu_us_per_token") or {
        "server": cell["parley_cpu_us_per_token"],
        "total": math.nan,
    }
    return parts


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
        f"at {cell['level']} streams: server {_n(parts['server'], 0)}, Redis "
        f"{_n(parts.get('redis'), 0)}, Postgres backends {_n(parts.get('postgres'), 0)} µs; "
        f"server-wide Postgres {_n(parts.get('postgres_shared'), 0)} µs not added"
    )
    others = [
        f"x{c['level']}: {_n(cpu_parts(c)['total'], 0)}"
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


# -- Markdown ------------------------------------------------------------------------------


def _ms(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f} ms" if digits >= 0 else f"{value:.0f} ms"


def _n(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.0f}%"


def table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [columns, ["---"] * len(columns), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def markdown(results: Results, image: str | None = None) -> str:
    meta = results["meta"]
    several = len(meta["sources"]) > 1
    parts = [_header(meta), _peer_line(results.get("peer"))]
    parts += ["### Targets", _targets_table(results["targets"], several)]
    if image is not None:
        parts.append(
            f"![Added time to first token and inter-token gap against concurrency]({image})"
        )
    if results.get("first_token"):
        parts += ["### First token at one stream", _first_token_table(results["first_token"])]
    if results.get("burst"):
        parts += ["### A burst while streams run", _burst_table(results["burst"])]
    for ladder in results.get("ladders", []):
        parts += [_ladder_title(ladder), _ladder_table(ladder), _ladder_notes(ladder)]
    parts += _phase_sections(results)
    return "\n\n".join(part for part in parts if part) + "\n"


def _header(meta: Results) -> str:
    sources = "; ".join(f"`{s['label']}`: {s['describe']}" for s in meta["sources"])
    lines = [
        f"Measured {meta['date']} with `{meta['command']}` ({meta['seconds']:.0f} s).",
        f"Parley: {sources}.",
        f"Machine: {meta['machine']}, {meta.get('load_after', '?')} at the end.",
        f"Pinning: {meta['pinning']}. WebSocket clients "
        f"{'offer' if meta.get('ws_deflate', True) else 'do not offer'} permessage-deflate.",
        f"Arrivals: {meta.get('arrivals', 'all streams of a round at once')}. A p99 needs "
        f"{min_samples(0.99)} samples: with fewer it is shown as `n=… < {min_samples(0.99)}`"
        " and not judged.",
    ]
    return "\n".join(lines)


def _peer_line(peer: Results | None) -> str:
    if not peer:
        return ""
    if peer.get("started"):
        return (
            f"Peer: **{peer['name']}** (no database, same stub, pinned like Parley), "
            f"measured through the same client; rows `{peer['name']}`."
        )
    return f"Peer: **{peer['name']} was not measured**: {peer.get('error', 'it did not start')}."


def _targets_table(rows: Sequence[dict[str, Any]], several: bool) -> str:
    columns = ["figure", "path", "target", "measured", "verdict", "notes"]
    if several:
        columns.insert(0, "source")
    body = []
    for row in rows:
        cells = [row["figure"], row.get("path", ""), row["target"], row["measured"]]
        cells += [row["verdict"], row["note"] or ""]
        body.append(([row["source"]] if several else []) + cells)
    return table(columns, body)


def _ladder_title(ladder: Results) -> str:
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


def _ladder_table(ladder: Results) -> str:
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
        _n(ttft["p50"]),
        _p99(ttft["p99"], ttft.get("n", 0)),
        _ms(added.get("ttft_p50")) if parley else "",
        _p99(added.get("ttft_p99"), added.get("ttft_n", 0), signed=True) if parley else "",
        str(gaps.get("n", "?")),
        _n(gaps["p50"]),
        _p99(gaps["p99"], gaps.get("n", 0)),
        _p99(added.get("gap_p99"), added.get("gap_n", 0), signed=True) if parley else "",
        str(cell["stalls"]),
    ]


def _p99(value: float | None, n: float, signed: bool = False) -> str:
    """A p99, or the count that was too small for one (never the maximum of a few)."""
    if value is None:
        return "-"
    text = shown(Quantile(0.99, float(value), int(n)), signed=signed)
    return text.split(" (n=")[0] + (" ms" if signed and "<" not in text else "")


def _breakdown_row(cell: dict[str, Any]) -> list[str]:
    busy = cell["busy"]
    parley = cell["source"] is not None
    return [
        str(cell["level"]),
        cell["target"],
        _n(cell["accepted_ms"]["p50"]) if parley else "",
        _n(cell["upstream_ttft_ms"]["p50"], 0) if parley else "",
        _n(cell["done_lag_ms"]["p99"]) if parley else "",
        _n(cell["frames_per_token"], 2),
        _cpu(cell) if parley else "",
        _pct(busy["parley"]) if parley else "",
        _pct(busy.get("redis")) if parley else "",
        _pct(busy.get("postgres")) if parley else "",
        _pct(busy["generator"]),
        _pct(busy["stub"]),
        _n(cell["stub_late_p99_ms"]),
        cell["limit"],
    ]


def _cpu(cell: Results) -> str:
    parts = cpu_parts(cell)
    if math.isnan(parts.get("total", math.nan)):
        return f"{_n(parts['server'], 0)} µs (server)"
    pieces = ", ".join(_n(parts.get(name), 0) for name in ("server", "redis", "postgres"))
    return f"{_n(parts['total'], 0)} µs ({pieces})"


FIRST_TOKEN_COLUMNS: tuple[str, ...] = (
    "path",
    "probes",
    "failed",
    "TTFT p50",
    "TTFT p99",
    "+TTFT p50",
    "+TTFT p99",
    "accepted p50",
    "upstream TTFT p50",
)


def _first_token_table(phase: Results) -> str:
    rows = []
    for cell in phase["cells"]:
        ttft, added = cell["ttft_ms"], cell.get("added", {})
        parley = cell["source"] is not None
        rows.append(
            [
                cell["target"],
                str(ttft.get("n", "?")),
                str(cell["failed"]),
                _n(ttft["p50"]),
                _p99(ttft["p99"], ttft.get("n", 0)),
                _ms(added.get("ttft_p50")) if parley else "",
                _p99(added.get("ttft_p99"), added.get("ttft_n", 0), signed=True) if parley else "",
                _n(cell["accepted_ms"]["p50"]) if parley else "",
                _n(cell["upstream_ttft_ms"]["p50"], 0) if parley else "",
            ]
        )
    intro = (
        f"{phase['samples_per_path']} probes per path, one at a time, "
        f"{phase['pause_ms']:.0f} ms apart, replies of {phase_profile(phase)}; "
        "`ws` opens each conversation untimed, `ws-new` times `start` too."
    )
    return intro + "\n\n" + table(FIRST_TOKEN_COLUMNS, rows)


BURST_COLUMNS: tuple[str, ...] = (
    "path",
    "running streams",
    "stalls",
    "max gap",
    "burst streams",
    "burst TTFT p50",
    "burst TTFT p99",
    "+TTFT p99",
    "failed",
)


def _burst_table(phase: Results) -> str:
    rows = []
    for running, burst in zip(phase["running"], phase["burst"], strict=True):
        ttft, added = burst["ttft_ms"], burst.get("added", {})
        parley = burst["source"] is not None
        rows.append(
            [
                running["target"],
                str(running["streams"]),
                str(running["stalls"]),
                _n(running["gap_ms"]["max"]),
                str(ttft.get("n", "?")),
                _n(ttft["p50"]),
                _p99(ttft["p99"], ttft.get("n", 0)),
                _p99(added.get("ttft_p99"), added.get("ttft_n", 0), signed=True) if parley else "",
                f"{running['failed'] + burst['failed']}",
            ]
        )
    intro = (
        f"{phase['streams']} streams start together; {phase['streams']} more arrive at once "
        f"{phase['at_ms']:.0f} ms later; {phase['rounds']} rounds per path; a stall is a gap "
        f"over {2 * phase['profile']['interval_ms']:g} ms."
    )
    return intro + "\n\n" + table(BURST_COLUMNS, rows)


def _ladder_notes(ladder: Results) -> str:
    notes = []
    for cell in ladder["cells"]:
        if cell["error_samples"]:
            notes.append(
                f"- {cell['target']} x{cell['level']}: " + "; ".join(cell["error_samples"])
            )
    return "Failures:\n\n" + "\n".join(notes) if notes else ""


def _phase_sections(results: Results) -> list[str]:
    parts: list[str] = []
    if results.get("stall_free"):
        parts += ["### Stall-free streams at 50 tokens/s", _stall_table(results["stall_free"])]
    if results.get("scaling"):
        parts += ["### Scaling across cores", _scaling_table(results["scaling"])]
    if results.get("persistence"):
        parts += ["### Persistence", _persistence_table(results["persistence"])]
    if results.get("collector"):
        intro = (
            "Collections during every phase above, from each instance's "
            "`parley_gc_pause_seconds` (read when ready and before it stopped)."
        )
        rows = collector.table_rows(results["collector"])
        parts += ["### The garbage collector", intro, table(collector.COLUMNS, rows)]
    if results.get("redis"):
        parts += ["### Redis round trips", _redis_table(results["redis"])]
    if results.get("idle"):
        parts += ["### Idle authenticated WebSockets", _idle_table(results["idle"])]
    if results.get("soak"):
        parts += ["### Soak", _soak_table(results["soak"])]
    if results.get("profiles"):
        parts += ["### Profiles (py-spy, busy samples only)", *map(_profile, results["profiles"])]
    return parts


def _stall_table(entries: Sequence[Results]) -> str:
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
                    _n(probe["max_gap_ms"]),
                    f"{probe['failed']}/{probe['streams']}",
                    str(probe["lost_tokens"]),
                    _n(probe["baseline_max_gap_ms"]),
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
        f"({e['per_core']:.0f} per core; Parley on {e['parley_cores']} core(s))."
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


def _scaling_table(entries: Sequence[Results]) -> str:
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
        "-" if busy is None else f"{_n(busy, 2)} cores",
        c.get("limit", ""),
        probes,
    ]


def _persistence_table(entries: Sequence[Results]) -> str:
    columns = ["source", "streams", "replies", "failed", "rows", "rows/s", "lag p50", "lag p99"]
    rows = [
        [
            e["source"],
            str(e["streams"]),
            str(e["replies"]),
            str(e["failed"]),
            str(e["rows"]),
            _n(e["rows_per_s"], 0),
            _n(e["lag_ms"]["p50"]),
            _p99(e["lag_ms"]["p99"], e["lag_ms"].get("n", 0)),
        ]
        for e in entries
    ]
    return table(columns, rows)


def _redis_table(entries: Sequence[Results]) -> str:
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
                _n(e["round_trips_per_token"], 2),
                _n(e["round_trips_per_reply"], 0),
                _n(e["commands_per_token"], 2),
                by_name,
            ]
        )
    return table(columns, rows)


def _idle_table(entries: Sequence[Results]) -> str:
    rows = []
    for e in entries:
        points = ", ".join(f"{int(n)}: {rss / 2**20:.1f}" for n, rss in e["points"])
        errors = "; ".join(e["errors"]) or ""
        rows.append([e["source"], points, _n(e["kib_per_socket"]), errors])
    return table(["source", "sockets: RSS MiB", "KiB per socket", "errors"], rows)


def _soak_table(entries: Sequence[Results]) -> str:
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
            _n(e["rss_before_mib"]),
            _n(e["rss_peak_mib"]),
            _n(e["rss_after_mib"]),
            _n(e["growth_mib_per_min"], 2),
        ]
        for e in entries
    ]
    return table(columns, rows)


def _profile(entry: Results) -> str:
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


# -- plot ----------------------------------------------------------------------------------


PANELS = (
    ("ttft_p50", "added time to first token, p50"),
    ("ttft_p99", "added time to first token, p99"),
    ("gap_p99", "added inter-token gap, p99"),
)
PANEL_TARGETS = {  # (streams, ms) of the targets in docs/performance.md
    "ttft_p50": [(1, 1.5)],
    "ttft_p99": [(1, 3.0), (128, 10.0)],
    "gap_p99": [(1, 2.0), (200, 10.0)],
}


def plot(results: Results, path: Path) -> str | None:
    """Added TTFT (p50, p99) and added gap (p99) against concurrency; None if drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no plot"
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    for axis, (key, title) in zip(axes, PANELS, strict=True):
        lowest = 0.0
        for label, xs, ys in _series(results, key):
            axis.plot(xs, ys, marker="o", label=label)
            lowest = min(lowest, *ys)
        targets = PANEL_TARGETS[key]
        axis.plot(
            [x for x, _ in targets], [y for _, y in targets], "rx", ms=11, mew=2, label="target"
        )
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_yscale("symlog", linthresh=1.0)
        axis.set_ylim(bottom=-1.0 if lowest < 0 else 0.0)
        axis.set_title(title)
        axis.set_xlabel("concurrent streams")
        axis.set_ylabel("ms over the baseline (linear below 1 ms)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    meta = results["meta"]
    figure.suptitle(f"Parley minus direct streaming ({meta['date']}, {meta['commit'][:8]})")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def _series(results: Results, key: str) -> list[tuple[str, list[int], list[float]]]:
    out = []
    for ladder in results.get("ladders", []):
        lines: dict[str, tuple[list[int], list[float]]] = {}
        for cell in ladder["cells"]:
            value = cell.get("added", {}).get(key)
            if value is None or math.isnan(value):
                continue
            xs, ys = lines.setdefault(cell["target"], ([], []))
            xs.append(cell["level"])
            ys.append(value)
        for target, (xs, ys) in lines.items():
            profile = ladder["profile"]
            label = f"{target}, {ladder['vendor']} {profile['interval_ms']:g} ms"
            out.append((label, xs, ys))
    return out


# -- files -----------------------------------------------------------------------------------


def write(results: Results, out: Path) -> tuple[Path, Path, Path, str | None]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = out / "bench.json", out / "bench.md", out / "bench.png"
    json_path.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    md_path.write_text(markdown(results, png_path.name))
    problem = plot(results, png_path)
    return json_path, md_path, png_path, problem


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def publish(results: Results, png: Path, docs: Path) -> None:
    """Put this run's figures into ``docs/performance.md`` and its plot beside it."""
    page = docs / "performance.md"
    text = page.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{page}: no {START} … {END} block to replace")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    block = markdown(results, "performance.png").replace("### ", "#### ")
    page.write_text(f"{head}{START}\n\n{block}\n{END}{tail}")
    if png.exists():
        shutil.copyfile(png, docs / "performance.png")
