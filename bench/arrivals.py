"""When each stream of a round starts: all at once, or as a Poisson process.

``burst``: every stream at offset 0 (the worst case for an accept path).
``poisson``: arrivals at ``rate`` per second on average, each inter-arrival
time drawn from an exponential distribution (independent arrivals, as users
are). A round's offsets are drawn from a seeded generator, so the baseline and
every Parley path of the same round see the same arrival times.
Nothing here does I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MODES = ("burst", "poisson")


@dataclass(frozen=True)
class Arrivals:
    mode: str = "burst"
    rate: float = 0.0  # streams per second (poisson)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"arrivals: choose from {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "poisson" and not self.rate > 0:
            raise ValueError("poisson arrivals need a rate above 0 (--rate N, streams/s)")

    def offsets(self, count: int, seed: int) -> list[float]:
        """Seconds after the round's start at which each of ``count`` streams begins."""
        if self.mode == "burst":
            return [0.0] * count
        return poisson_offsets(count, self.rate, random.Random(seed))

    def describe(self) -> str:
        if self.mode == "burst":
            return "all streams of a round at once"
        return f"Poisson arrivals, {self.rate:g} streams/s on average"


def poisson_offsets(count: int, rate: float, rng: random.Random) -> list[float]:
    """Arrival times of a Poisson process of ``rate`` per second: exponential gaps."""
    offsets: list[float] = []
    now = 0.0
    for _ in range(count):
        now += rng.expovariate(rate)
        offsets.append(now)
    return offsets
