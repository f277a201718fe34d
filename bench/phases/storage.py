"""What replies cost the storage: rows committed per second into Postgres, and
round trips to Redis per relayed token."""

from __future__ import annotations

import math
from typing import Any

from bench.common import Profile
from bench.cpu import harness_connection
from bench.figures import Cell, error_samples
from bench.measure import CountingProxy, command_stats
from bench.phases.harness import Harness, Route
from bench.phases.rounds import WARM_UP_STREAMS, quiet, run_round
from bench.servers import Instance, Source
from bench.stats import spread

# What the harness sends to a Parley's Redis: the sizes of the active-reply sets
# (one EVAL of SCARDs: Parley sends EVAL only to undo a reply that never started).
HARNESS_COMMANDS = ("EVAL", "SCARD", "INFO")


async def persistence(h: Harness, instance: Instance) -> dict[str, Any]:
    """A burst of short replies: rows committed per second, and reply end to commit.

    Rows are the user and assistant ``messages`` rows and the ``llm_usage`` rows
    the burst stored, counted in Postgres, over the burst's wall time (first
    message sent to the last reply stored and its ``done`` appended). The lag
    is from the last token to ``done`` at the client: Parley commits the reply,
    then publishes ``done``, so this bounds reply end to commit from above.
    """
    profile = h.settings.persistence_profile
    await h.set_profile(profile)
    level = h.settings.persistence_streams
    path = Route("ws", "ws", instance)
    await run_round(h, path, min(level, WARM_UP_STREAMS), profile)
    rounds: list[dict[str, float]] = []
    cells = Cell(level, "ws", "ws", instance.source.label)
    for _ in range(h.settings.persistence_rounds):
        round_ = await run_round(h, path, level, profile)
        cells.add(round_)
        stored = await stored_rows(instance.storage.database_url, round_.users)
        rounds.append({"rows": stored, "wall_s": round_.usage.wall})
    rows = sum(r["rows"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    lags = cells.values(lambda r: r.done_lag)
    return {
        "source": instance.source.label,
        "profile": {"tokens": profile.tokens, "interval_ms": profile.interval_ms},
        "streams": level,
        "rounds": rounds,
        "replies": len(cells.results),
        "failed": len(cells.failed()),
        "errors": error_samples(cells),
        "rows": rows,
        "rows_per_s": rows / wall if wall else math.nan,
        "lag_ms": spread(lags),
        "parley_busy": cells.usage.busy(cells.usage.parley),
    }


async def stored_rows(database_url: str, users: str) -> int:
    connection = await harness_connection(database_url)
    try:
        pattern = users + ".%"
        messages = await connection.fetchval(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.owner_id LIKE $1 AND m.status <> 'streaming'",
            pattern,
        )
        usage = await connection.fetchval(
            "SELECT count(*) FROM llm_usage WHERE user_id LIKE $1", pattern
        )
    finally:
        await connection.close()
    return int(messages) + int(usage)


async def redis_round_trips(h: Harness, source: Source, profile: Profile) -> dict[str, Any]:
    """A Parley instance whose Redis traffic passes a counting proxy, under WebSocket load."""
    storage = h.storage[source.label]
    proxy = await CountingProxy(storage.redis_url).start()
    instance = await h.start_instance("parley-counted", source, redis_url=proxy.url)
    try:
        await h.set_profile(profile)
        path = Route("ws", "ws", instance)
        level = h.settings.redis_streams
        await run_round(h, path, min(level, WARM_UP_STREAMS), profile)
        await quiet(instance)
        counts, commands = proxy.snapshot(), await command_stats(storage.redis_url)
        cell = Cell(level, "ws", "ws", source.label)
        for _ in range(2):
            cell.add(await run_round(h, path, level, profile))
        delta = proxy.snapshot().minus(counts)
        calls = await command_stats(storage.redis_url) - commands
        for own in HARNESS_COMMANDS:  # the harness's polling, on its own connection
            calls.pop(own, None)
    finally:
        await h.stop_instance(instance)
        await proxy.stop()
    tokens, replies = cell.tokens(), len(cell.results)
    per_token = {name: n / tokens for name, n in calls.most_common(12)} if tokens else {}
    return {
        "source": source.label,
        "streams": level,
        "replies": replies,
        "failed": len(cell.failed()),
        "tokens": tokens,
        "round_trips": delta.round_trips,
        "round_trips_per_token": delta.round_trips / tokens if tokens else math.nan,
        "round_trips_per_reply": delta.round_trips / replies if replies else math.nan,
        "commands": sum(calls.values()),
        "commands_per_token": sum(calls.values()) / tokens if tokens else math.nan,
        "commands_per_token_by_name": per_token,
        "connections_opened": delta.connections,
    }
