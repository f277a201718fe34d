"""What the stub, the load generator and the harness agree on.

The stub's tokens, the upstream profiles, the result of one timed stream and
the percentile used everywhere. Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The stub's tokens: " qab", " qac", ... Lowercase letters only: the output rules
# hold back text after digits (a possible card number) and after capitals (a
# possible IBAN), which would change the cadence being measured.
TOKEN_PREFIX = " q"
PROMPT = "Please explain briefly how a keyboard sends a keystroke to the computer."
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
PROMPT_TOKENS = 11  # what the stub reports as the prompt's usage


def token(index: int) -> str:
    """The stub's ``index``-th token (two or more letters after the prefix)."""
    letters = string.ascii_lowercase
    digits = ""
    value = index
    while True:
        value, rest = divmod(value, 26)
        digits = letters[rest] + digits
        if value == 0:
            break
    return TOKEN_PREFIX + digits.rjust(2, "a")


def reply_tokens(count: int) -> list[str]:
    return [token(i) for i in range(count)]


@dataclass(frozen=True)
class Profile:
    """How the stub answers: ``tokens`` tokens, ``interval_ms`` apart, the first at once."""

    tokens: int
    interval_ms: float

    @property
    def name(self) -> str:
        return f"{self.tokens}x{self.interval_ms:g}ms"

    @property
    def stall_ms(self) -> float:
        """A gap longer than this is a stall (twice the interval)."""
        return 2 * self.interval_ms


@dataclass
class StreamResult:
    """One timed stream, as the load generator saw it (times in ms)."""

    ttft: float | None = None  # request sent -> first token complete
    gaps: list[float] = field(default_factory=list)  # between consecutive tokens
    accepted: float | None = None  # Parley: request sent -> ``accepted``
    done_lag: float | None = None  # last token -> ``done`` (Parley stores, then sends done)
    tokens: int = 0  # tokens that arrived intact and in order
    expected: int = 0
    frames: int = 0  # text-carrying frames (fewer than tokens when text was held back)
    status: str = ""
    error: str | None = None

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.tokens)

    @property
    def ok(self) -> bool:
        return self.error is None and self.lost == 0 and self.status in ("complete", "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StreamResult:
        return cls(**raw)


class TokenClock:
    """Turns text as it arrives into per-token arrival times.

    A token counts as arrived when its last character has; text the server
    held back and sent later in one frame gives a zero gap, then a long one.
    """

    def __init__(self, expected: Sequence[str], started: float) -> None:
        self.expected = list(expected)
        self.started = started
        self.text: list[str] = []
        self.length = 0
        self.ends: list[int] = []
        end = 0
        for piece in self.expected:
            end += len(piece)
            self.ends.append(end)
        self.arrivals: list[float] = []
        self.frames = 0

    def feed(self, text: str, now: float) -> None:
        if not text:
            return
        self.frames += 1
        self.text.append(text)
        self.length += len(text)
        while len(self.arrivals) < len(self.ends) and self.ends[len(self.arrivals)] <= self.length:
            self.arrivals.append(now)

    def result(self, **extra: Any) -> StreamResult:
        received = "".join(self.text)
        intact = 0
        position = 0
        for piece in self.expected:
            if received.startswith(piece, position):
                intact += 1
                position += len(piece)
            else:
                break
        if position != len(received):  # text beyond what was sent: count it as damage
            intact = min(intact, len(self.expected) - 1)
        arrivals = self.arrivals[:intact]
        ttft = 1000 * (arrivals[0] - self.started) if arrivals else None
        gaps = [round(1000 * (b - a), 3) for a, b in itertools.pairwise(arrivals)]
        return StreamResult(
            ttft=None if ttft is None else round(ttft, 3),
            gaps=gaps,
            tokens=intact,
            expected=len(self.expected),
            frames=self.frames,
            **extra,
        )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``; NaN with fewer than two points."""
    if len(xs) < 2:
        return math.nan
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return math.nan
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
