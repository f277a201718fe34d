"""The Markdown report of a run: its description, the targets, then a section per phase."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench import collector
from bench.report import Results
from bench.report.costs import (
    idle_table,
    persistence_table,
    profile_section,
    redis_table,
    soak_table,
)
from bench.report.first_token import burst_table, first_token_table
from bench.report.formatting import table
from bench.report.ladders import ladder_notes, ladder_table, ladder_title
from bench.report.limits import scaling_table, stall_table
from bench.stats import min_samples


def markdown(results: Results, image: str | None = None) -> str:
    meta = results["meta"]
    several = len(meta["sources"]) > 1
    peers = results.get("peers") or ([results["peer"]] if results.get("peer") else [])
    parts = [_header(meta), *(_peer_line(peer) for peer in peers)]
    parts += ["### Targets", _targets_table(results["targets"], several)]
    if image is not None:
        parts.append(
            f"![Added time to first token and inter-token gap against concurrency]({image})"
        )
    parts += _sections(results, BEFORE_LADDERS)
    for ladder in results.get("ladders", []):
        parts += [ladder_title(ladder), ladder_table(ladder), ladder_notes(ladder)]
    parts += _sections(results, AFTER_LADDERS)
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


PEER_KINDS = {
    "litellm": "LiteLLM proxy, no database",
    "floor": "bench/floor.py: the least work Parley's promises need, on Parley's stack, "
    "with its own database and Redis, whose CPU is counted with it",
}


def _peer_line(peer: Results) -> str:
    name = peer["name"]
    if peer.get("started"):
        return (
            f"Peer: **{name}** ({PEER_KINDS.get(name, name)}; same stub, pinned like Parley), "
            f"measured through the same client; rows `{name}`."
        )
    return f"Peer: **{name} was not measured**: {peer.get('error', 'it did not start')}."


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


def _collector_section(entries: Sequence[Results]) -> str:
    intro = (
        "Collections during every phase above, from each instance's "
        "`parley_gc_pause_seconds` (read when ready and before it stopped)."
    )
    return intro + "\n\n" + table(collector.COLUMNS, collector.table_rows(entries))


def _profiles_section(entries: Sequence[Results]) -> str:
    return "\n\n".join(profile_section(entry) for entry in entries)


Section = tuple[str, str, Callable[[Any], str]]  # key in the results, title, its text

# A section is shown only when its phase left something in the results.
BEFORE_LADDERS: tuple[Section, ...] = (
    ("first_token", "First token at one stream", first_token_table),
    ("burst", "A burst while streams run", burst_table),
)
AFTER_LADDERS: tuple[Section, ...] = (
    ("stall_free", "Stall-free streams at 50 tokens/s", stall_table),
    ("scaling", "Scaling across cores", scaling_table),
    ("persistence", "Persistence", persistence_table),
    ("collector", "The garbage collector", _collector_section),
    ("redis", "Redis round trips", redis_table),
    ("idle", "Idle authenticated WebSockets", idle_table),
    ("soak", "Soak", soak_table),
    ("profiles", "Profiles (py-spy, busy samples only)", _profiles_section),
)


def _sections(results: Results, sections: Sequence[Section]) -> list[str]:
    parts: list[str] = []
    for key, title, text in sections:
        if results.get(key):
            parts += [f"### {title}", text(results[key])]
    return parts
