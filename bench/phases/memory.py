"""Parley's memory: RSS per idle authenticated WebSocket, and RSS under steady load
(the soak). Each starts a fresh instance, so earlier phases leave nothing behind."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench.common import Profile, slope
from bench.phases.harness import Harness
from bench.phases.rounds import quiet
from bench.processes import Child
from bench.servers import JWT_SECRET, OPENAI_AGENT, Source


async def idle_sockets(h: Harness, source: Source) -> dict[str, Any]:
    """RSS of a fresh instance as authenticated, silent WebSockets pile up."""
    instance = await h.start_instance("parley-idle", source)
    points: list[list[float]] = [[0, await settled_rss(instance.child)]]
    errors: list[str] = []
    try:
        users = h.users("idle")
        for total in range(h.settings.idle_step, h.settings.idle_max + 1, h.settings.idle_step):
            answer = await h.generator.call(
                {
                    "op": "idle_open",
                    "url": instance.ws_url,
                    "count": total - int(points[-1][0]),
                    "users": users,
                    "secret": JWT_SECRET,
                    "deflate": h.deflate,
                }
            )
            errors += answer["error_samples"]
            points.append([answer["open"], await settled_rss(instance.child)])
            print(f"  idle sockets: {answer['open']} open, RSS {points[-1][1] / 2**20:.1f} MiB")
            if answer["errors"]:
                break
    finally:
        await h.generator.call({"op": "idle_close"})
        await h.stop_instance(instance)
    fitted = [p for p in points if p[0] >= h.settings.idle_step]
    per_socket = slope([p[0] for p in fitted], [p[1] for p in fitted])
    return {
        "source": source.label,
        "points": points,
        "kib_per_socket": per_socket / 1024,
        "errors": errors[:5],
    }


async def settled_rss(child: Child) -> float:
    """RSS once the server has gone quiet (median of three samples)."""
    await asyncio.sleep(2)
    samples = []
    for _ in range(3):
        samples.append(child.rss())
        await asyncio.sleep(0.3)
    return sorted(samples)[1]


async def soak(h: Harness, source: Source, profile: Profile) -> dict[str, Any]:
    """Steady WebSocket load for ``soak_seconds``: RSS slope, and RSS after the load."""
    instance = await h.start_instance("parley-soak", source)
    await h.set_profile(profile)
    streams = h.settings.soak_streams
    command = {
        "op": "soak",
        "url": instance.ws_url,
        "streams": streams,
        "agent": OPENAI_AGENT,
        "tokens": profile.tokens,
        "per_conversation": 10,
        "secret": JWT_SECRET,
        "deflate": h.deflate,
    }
    try:
        await h.generator.call({**command, "seconds": 60, "users": h.users("soak-warm")})
        await quiet(instance)
        before = await settled_rss(instance.child)
        samples: list[list[float]] = []
        started = time.monotonic()
        load = asyncio.create_task(
            h.generator.call(
                {**command, "seconds": h.settings.soak_seconds, "users": h.users("soak")}
            )
        )
        while not load.done():
            samples.append([time.monotonic() - started, instance.child.rss()])
            await asyncio.wait({load}, timeout=5)
        tally = load.result()
        await quiet(instance)
        await asyncio.sleep(30)
        after = await settled_rss(instance.child)
    finally:
        await h.stop_instance(instance)
    steady = [s for s in samples if s[0] >= 60] or samples
    growth = slope([s[0] / 60 for s in steady], [s[1] / 2**20 for s in steady])
    return {
        "source": source.label,
        "seconds": h.settings.soak_seconds,
        "streams": streams,
        "replies": tally["replies"],
        "failed": tally["failed"],
        "lost_tokens": tally["lost"],
        "errors": tally["error_samples"],
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "rss_peak_mib": max((s[1] for s in samples), default=math.nan) / 2**20,
        "growth_mib_per_min": growth,
        "after_vs_before_pct": 100 * (after - before) / before,
        "samples": samples,
    }
