"""Which paths each phase of the benchmark measures (bench/phases/): the peers sit
beside Parley wherever the baseline does, and a burst round splits in two. No server
is started: the instances are stand-ins."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from bench.common import StreamResult
from bench.figures import Round, Usage
from bench.peer import Peer
from bench.phases.burst import split_round
from bench.phases.first_token import probe_paths
from bench.phases.harness import Route
from bench.phases.ladder import ladder_paths
from bench.servers import Instance


def instance(label: str) -> Instance:
    return cast(Instance, SimpleNamespace(source=SimpleNamespace(label=label)))


PEER = Peer("litellm", cast(Any, None), 4000, "sk-key")
FLOOR = Peer("floor", cast(Any, None), 4001, "a.jwt.token")


def kinds(routes: list[Route]) -> list[tuple[str, str, str | None]]:
    return [(route.label, route.protocol, route.source) for route in routes]


def test_the_ladder_measures_the_peers_beside_parley_on_the_openai_stub() -> None:
    routes = ladder_paths("openai", [instance("a")], ("ws", "sse"), [PEER, FLOOR])
    assert kinds(routes) == [
        ("baseline", "openai", None),
        ("ws", "ws", "a"),
        ("sse", "sse", "a"),
        ("litellm", "openai", "litellm"),
        ("floor", "openai", "floor"),
    ]
    anthropic = ladder_paths("anthropic", [instance("a")], ("ws", "sse"), [PEER])
    assert [route.label for route in anthropic] == ["baseline", "ws"]  # no peer there


def test_first_token_probes_time_a_new_conversation_too() -> None:
    routes = probe_paths([instance("a"), instance("b")], ("ws", "sse"), [])
    assert [route.label for route in routes] == [
        "baseline",
        "ws@a",
        "ws-new@a",
        "sse@a",
        "ws@b",
        "ws-new@b",
        "sse@b",
    ]
    assert routes[2].protocol == "ws-new"
    assert probe_paths([instance("a")], ("sse",), [PEER])[-1].peer is PEER


def test_a_burst_round_splits_into_the_running_streams_and_the_burst() -> None:
    results = [StreamResult(ttft=float(i)) for i in range(6)]
    usage = Usage(wall=1.0, parley=0.5)
    running, burst = split_round(Round(results, usage, [1.0], "u"), 3)
    assert [r.ttft for r in running.results] == [0.0, 1.0, 2.0]
    assert [r.ttft for r in burst.results] == [3.0, 4.0, 5.0]
    assert running.usage is usage  # the round's CPU is counted once
    assert burst.usage.parley == 0.0
