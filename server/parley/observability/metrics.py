"""Every Prometheus metric Parley exports, and the functions the rest of the code calls.

The metric objects live at module level because that is how prometheus-client
works: in multiprocess mode (``parley serve --workers N``) each one writes to
per-process files that any worker's scrape adds up (see
:mod:`parley.observability.exposition`). Nothing else in Parley touches them:
callers use the small functions below, named after what happened.

Labels are bounded. Agent, rule-set, rule and tool names come from the
catalog (a tool the model invents is counted as :data:`UNKNOWN_TOOL`), models
from the catalog or the settings, statuses and reasons from fixed sets;
nothing a user or a model writes becomes a label value.

None of this runs per token: replies, upstream calls and tool calls are
counted when they end.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError

from parley.llm.base import CallRecord, ModelRef

if TYPE_CHECKING:
    from parley.llm.call import Outcome
    from parley.storage.ledger import FinishedReply

# ``*_created`` series double every counter for little use, and multiprocess
# mode cannot produce them: leave them out everywhere, so one server exports
# the same names whatever its number of workers.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Parley's own registry: in a single process /metrics shows exactly these
# (multiprocess scrapes read the workers' files instead).
REGISTRY = CollectorRegistry(auto_describe=True)

NO_MODEL = "none"  # a reply no model worked on (blocked by a rule)
UNKNOWN_TOOL = "_unknown"  # a tool name the model made up

StorageBackend = Literal["postgres", "redis", "unknown"]
CostFunction = Callable[[ModelRef, int, int], float]

# Seconds. Replies stream for tens of seconds; their first token should come
# within one or two.
_FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)
_DURATION_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300)
_TOOL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
# A pause over 40 ms (twice a fast vendor's token interval) is a visible stall.
_PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.04, 0.075, 0.1, 0.25, 0.5, 1)

REPLIES = Counter(
    "parley_replies",
    "Replies stored, by agent, the model that answered last and how the reply ended.",
    ["agent", "model", "status"],
    registry=REGISTRY,
)
FIRST_TOKEN_SECONDS = Histogram(
    "parley_reply_first_token_seconds",
    "From the start of a reply to its first text reaching the reply log.",
    ["agent"],
    buckets=_FIRST_TOKEN_BUCKETS,
    registry=REGISTRY,
)
REPLY_SECONDS = Histogram(
    "parley_reply_duration_seconds",
    "From the start of a reply to its end (all rounds and tool calls).",
    ["agent"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "parley_tokens",
    "Tokens of upstream calls (kind: prompt or completion), as stored in llm_usage.",
    ["agent", "model", "kind"],
    registry=REGISTRY,
)
COST = Counter(
    "parley_cost_usd",
    "Cost of upstream calls in US dollars at the configured prices (kind: prompt or completion).",
    ["agent", "model", "kind"],
    registry=REGISTRY,
)
ACTIVE_REPLIES = Gauge(
    "parley_active_replies",
    "Reply tasks running on this server.",
    registry=REGISTRY,
    multiprocess_mode="livesum",  # a worker that died runs nothing
)
OPEN_WEBSOCKETS = Gauge(
    "parley_open_websockets",
    "Chat WebSockets open on this server.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
UPSTREAM_CALLS = Counter(
    "parley_upstream_calls",
    "Calls to LLM providers, by how they ended (complete, failed, cancelled).",
    ["provider", "status"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "parley_upstream_errors",
    "Failed calls to LLM providers (kind: transient, worth a retry, or permanent).",
    ["provider", "kind"],
    registry=REGISTRY,
)
UPSTREAM_RETRIES = Counter(
    "parley_upstream_retries",
    "Retries of a provider's model after a transient failure.",
    ["provider"],
    registry=REGISTRY,
)
UPSTREAM_FALLBACKS = Counter(
    "parley_upstream_fallbacks",
    "Times a provider's model was given up for the agent's next model.",
    ["provider"],
    registry=REGISTRY,
)
RULE_ACTIONS = Counter(
    "parley_rule_actions",
    "Business rules that acted on stored replies (redacted, blocked, replaced, handoff, ...).",
    ["rule", "action"],
    registry=REGISTRY,
)
BUDGET_REFUSALS = Counter(
    "parley_budget_refusals",
    "Turns refused by the daily token budget "
    "(reason: exhausted, too_large for any budget, unavailable when Redis failed).",
    ["domain", "reason"],
    registry=REGISTRY,
)
RATE_LIMIT_REFUSALS = Counter(
    "parley_rate_limit_refusals",
    "Requests (rest) and frames (websocket) refused by rate limits "
    "(reason: limited, or unchecked while Redis is unreachable).",
    ["transport", "reason"],
    registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "parley_tool_calls",
    "Tool calls the model asked for, by outcome (ok, error, refused, declined).",
    ["tool", "status"],
    registry=REGISTRY,
)
TOOL_SECONDS = Histogram(
    "parley_tool_call_duration_seconds",
    "How long tool calls took, confirmation included.",
    ["tool"],
    buckets=_TOOL_BUCKETS,
    registry=REGISTRY,
)
FEEDBACK = Counter(
    "parley_feedback",
    "Ratings users gave replies (a changed rating counts again), by agent.",
    ["agent", "rating"],
    registry=REGISTRY,
)
GC_PAUSE_SECONDS = Histogram(
    "parley_gc_pause_seconds",
    "How long each garbage collection stopped the process (and every stream on it),"
    " by generation (2: a full collection).",
    ["generation"],
    buckets=_PAUSE_BUCKETS,
    registry=REGISTRY,
)
STORAGE_ERRORS = Counter(
    "parley_storage_errors",
    "Postgres and Redis failures caught (and logged) by Parley, by what it was doing.",
    ["backend", "operation"],
    registry=REGISTRY,
)


# -- replies ---------------------------------------------------------------------


def reply_started() -> None:
    ACTIVE_REPLIES.inc()


def reply_ended() -> None:
    ACTIVE_REPLIES.dec()


def reply_stored(
    reply: FinishedReply,
    cost: CostFunction,
    *,
    first_text_seconds: float | None = None,
    duration_seconds: float | None = None,
) -> None:
    """A reply's final state is in Postgres: count it, its usage and its rule actions.

    Called once per reply, by whoever stored it (its task, or the sweeper for
    a reply whose instance died), so the counts match the ledger.
    """
    agent = reply.agent_id
    model = str(reply.calls[-1].model) if reply.calls else NO_MODEL
    REPLIES.labels(agent, model, reply.status).inc()
    if first_text_seconds is not None:
        FIRST_TOKEN_SECONDS.labels(agent).observe(first_text_seconds)
    if duration_seconds is not None:
        REPLY_SECONDS.labels(agent).observe(duration_seconds)
    _usage(agent, reply.calls, cost)
    for event in reply.events:
        RULE_ACTIONS.labels(event.rule, event.action).inc()


def _usage(agent: str, calls: Iterable[CallRecord], cost: CostFunction) -> None:
    for call in calls:
        model = str(call.model)
        if call.prompt_tokens:
            TOKENS.labels(agent, model, "prompt").inc(call.prompt_tokens)
            COST.labels(agent, model, "prompt").inc(cost(call.model, call.prompt_tokens, 0))
        if call.completion_tokens:
            TOKENS.labels(agent, model, "completion").inc(call.completion_tokens)
            COST.labels(agent, model, "completion").inc(cost(call.model, 0, call.completion_tokens))


# -- connections and limits ------------------------------------------------------------


def websocket_opened() -> None:
    OPEN_WEBSOCKETS.inc()


def websocket_closed() -> None:
    OPEN_WEBSOCKETS.dec()


def rate_limited(transport: Literal["rest", "websocket"], reason: str = "limited") -> None:
    RATE_LIMIT_REFUSALS.labels(transport, reason).inc()


def budget_refused(domain: str, reason: Literal["exhausted", "too_large", "unavailable"]) -> None:
    BUDGET_REFUSALS.labels(domain, reason).inc()


# -- upstream calls and tools --------------------------------------------------------


def upstream_call(provider: str, outcome: Outcome) -> None:
    UPSTREAM_CALLS.labels(provider, outcome.status).inc()
    if outcome.status == "failed":
        UPSTREAM_ERRORS.labels(provider, "transient" if outcome.transient else "permanent").inc()


def upstream_retry(provider: str) -> None:
    UPSTREAM_RETRIES.labels(provider).inc()


def upstream_fallback(provider: str) -> None:
    UPSTREAM_FALLBACKS.labels(provider).inc()


def tool_call(tool: str, status: str, seconds: float) -> None:
    """``tool`` must be a catalog name (or :data:`UNKNOWN_TOOL`), never the model's text."""
    TOOL_CALLS.labels(tool, status).inc()
    TOOL_SECONDS.labels(tool).observe(seconds)


def feedback_given(agent: str, rating: str) -> None:
    """``rating`` is ``up`` or ``down`` (validated before it is stored)."""
    FEEDBACK.labels(agent, rating).inc()


# -- the process --------------------------------------------------------------------


class _CollectionTimer:
    """A ``gc.callbacks`` entry timing each collection (they never overlap: the
    collector holds the GIL from start to stop).

    It only notes each pause; :func:`record_collection_pauses` puts them in the
    histogram. Observing from here deadlocked a worker: under several workers,
    prometheus_client's values share one lock, held while it allocates (the
    JSON key of a new labelled child), so a collection started in there called
    back into ``observe``, which waited for that lock forever.
    """

    def __init__(self) -> None:
        self._started = 0.0
        # Bounded: pauses nobody records (no loop running) must not pile up.
        self.pauses: deque[tuple[int, float]] = deque(maxlen=10_000)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))


_COLLECTION_TIMER = _CollectionTimer()
COLLECTIONS_RECORDED_EVERY_SECONDS = 1.0


def time_garbage_collections() -> None:
    """Time every collection's pause from now on (once per process)."""
    if _COLLECTION_TIMER not in gc.callbacks:
        gc.callbacks.append(_COLLECTION_TIMER)


def record_collection_pauses() -> None:
    """Put the pauses timed so far in ``parley_gc_pause_seconds``."""
    pauses = _COLLECTION_TIMER.pauses
    while pauses:  # a collection during this loop only appends: no lock is held there
        generation, pause = pauses.popleft()
        GC_PAUSE_SECONDS.labels(str(generation)).observe(pause)


async def keep_recording_collection_pauses() -> None:
    """:func:`record_collection_pauses`, every second, until cancelled."""
    while True:
        await asyncio.sleep(COLLECTIONS_RECORDED_EVERY_SECONDS)
        record_collection_pauses()


# -- storage ---------------------------------------------------------------------------


def storage_error(backend: StorageBackend, operation: str) -> None:
    """``operation`` is a fixed name for the code path, e.g. ``"store_reply"``."""
    STORAGE_ERRORS.labels(backend, operation).inc()


def backend_of(error: BaseException) -> StorageBackend | None:
    """Which store failed, for code that talks to both; ``None`` if it is no storage error.

    A bare ``OSError`` (a refused connection) can come from either client.
    """
    if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
        return "postgres"
    if isinstance(error, RedisError):
        return "redis"
    if isinstance(error, OSError):
        return "unknown"
    return None
