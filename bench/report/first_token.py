"""The first-token tables: at one stream, and of a burst arriving while streams run."""

from __future__ import annotations

from bench.report import Results
from bench.report.formatting import ms, num, p99, phase_profile, table

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


def first_token_table(phase: Results) -> str:
    rows = []
    for cell in phase["cells"]:
        ttft, added = cell["ttft_ms"], cell.get("added", {})
        parley = cell["source"] is not None
        rows.append(
            [
                cell["target"],
                str(ttft.get("n", "?")),
                str(cell["failed"]),
                num(ttft["p50"]),
                p99(ttft["p99"], ttft.get("n", 0)),
                ms(added.get("ttft_p50")) if parley else "",
                p99(added.get("ttft_p99"), added.get("ttft_n", 0), signed=True) if parley else "",
                num(cell["accepted_ms"]["p50"]) if parley else "",
                num(cell["upstream_ttft_ms"]["p50"], 0) if parley else "",
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


def burst_table(phase: Results) -> str:
    rows = []
    for running, burst in zip(phase["running"], phase["burst"], strict=True):
        ttft, added = burst["ttft_ms"], burst.get("added", {})
        parley = burst["source"] is not None
        rows.append(
            [
                running["target"],
                str(running["streams"]),
                str(running["stalls"]),
                num(running["gap_ms"]["max"]),
                str(ttft.get("n", "?")),
                num(ttft["p50"]),
                p99(ttft["p99"], ttft.get("n", 0)),
                p99(added.get("ttft_p99"), added.get("ttft_n", 0), signed=True) if parley else "",
                f"{running['failed'] + burst['failed']}",
            ]
        )
    intro = (
        f"{phase['streams']} streams start together; {phase['streams']} more arrive at once "
        f"{phase['at_ms']:.0f} ms later; {phase['rounds']} rounds per path; a stall is a gap "
        f"over {2 * phase['profile']['interval_ms']:g} ms."
    )
    return intro + "\n\n" + table(BURST_COLUMNS, rows)
