"""The plot: added time to first token (p50, p99) and added gap (p99) against
concurrency, one line per path and ladder, with the targets marked."""

from __future__ import annotations

import math
from pathlib import Path

from bench.report import Results

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
