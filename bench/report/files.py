"""The run's files, and the docs update.

``--publish`` replaces the block between :data:`START` and :data:`END` in
``docs/performance.md`` with this run's Markdown and copies the plot next to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.report import Results
from bench.report.page import markdown
from bench.report.plot import plot

START = "<!-- bench:figures:start -->"
END = "<!-- bench:figures:end -->"


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
