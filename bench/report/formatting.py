"""How figures are written in the report: numbers, milliseconds, shares, p99s, tables,
and the readings of a saved run that both the verdicts and the tables need."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from bench.report import Results
from bench.stats import Quantile, shown


def _known(value: float | None) -> float | None:
    """``value``, or None where there is no figure (none, or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def ms(value: float | None, digits: int = 1) -> str:
    known = _known(value)
    if known is None:
        return "-"
    return f"{known:+.{digits}f} ms" if digits >= 0 else f"{known:.0f} ms"


def num(value: float | None, digits: int = 1) -> str:
    known = _known(value)
    return "-" if known is None else f"{known:,.{digits}f}"


def pct(value: float | None) -> str:
    known = _known(value)
    return "-" if known is None else f"{100 * known:.0f}%"


def p99(value: float | None, n: float, signed: bool = False) -> str:
    """A p99, or the count that was too small for one (never the maximum of a few)."""
    if value is None:
        return "-"
    text = shown(Quantile(0.99, float(value), int(n)), signed=signed)
    return text.split(" (n=")[0] + (" ms" if signed and "<" not in text else "")


def table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [columns, ["---"] * len(columns), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def phase_profile(phase: Results | None) -> str:
    profile = (phase or {}).get("profile", {})
    return f"{profile.get('tokens', '?')} tokens {profile.get('interval_ms', '?'):g} ms apart"


def cpu_parts(cell: Results) -> dict[str, float]:
    """CPU per token by process; files from before Redis and Postgres were counted
    have the server's alone."""
    parts: dict[str, float] = cell.get("cpu_us_per_token") or {
        "server": cell["parley_cpu_us_per_token"],
        "total": math.nan,
    }
    return parts
