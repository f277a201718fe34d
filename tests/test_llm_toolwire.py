"""Assembling streamed tool calls: any chunking of the pieces gives the same calls."""

from __future__ import annotations

import json
from itertools import pairwise
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    Provider,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from parley.llm.toolwire import (
    AnthropicToolUse,
    OpenAIToolCalls,
    arguments_object,
    json_value,
    spec_json,
)
from support.fake_llm import FakeLLM, Script

# -- strategies ----------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
json_objects = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=4,
)
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,20}", fullmatch=True)


@st.composite
def tool_calls(draw: st.DrawFn) -> list[ToolCall]:
    count = draw(st.integers(min_value=1, max_value=4))
    return [
        ToolCall(
            f"call_{n}_{draw(st.integers(0, 999))}", draw(names), json.dumps(draw(json_objects))
        )
        for n in range(count)
    ]


def split(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at ``cuts`` (positions, any order, repeats allowed: empty fragments)."""
    points = sorted(min(c, len(text)) for c in cuts)
    edges = [0, *points, len(text)]
    return [text[a:b] for a, b in pairwise(edges)]


@st.composite
def openai_pieces(draw: st.DrawFn, calls: list[ToolCall]) -> list[list[dict[str, Any]]]:
    """How some server could stream ``calls``: as the deltas' ``tool_calls`` lists."""
    repeat_id = draw(st.booleans())  # some servers repeat id and name in every piece
    per_call: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        cuts = draw(st.lists(st.integers(0, len(call.arguments)), max_size=8))
        fragments = split(call.arguments, cuts)
        pieces: list[dict[str, Any]] = []
        for n, fragment in enumerate(fragments):
            piece: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
            if n == 0 or repeat_id:
                piece.update(id=call.id, type="function")
                piece["function"]["name"] = call.name
            pieces.append(piece)
        per_call.append(pieces)
    # Any interleaving of the calls that keeps each call's own pieces in order.
    labels = draw(st.permutations([i for i, pieces in enumerate(per_call) for _ in pieces]))
    queues = [iter(pieces) for pieces in per_call]
    ordered = [next(queues[label]) for label in labels]
    # Grouped into chunks of one or more pieces.
    sizes = draw(st.lists(st.integers(1, 3), min_size=len(ordered), max_size=len(ordered)))
    chunks, at = [], 0
    for size in sizes:
        if at < len(ordered):
            chunks.append(ordered[at : at + size])
            at += size
    return chunks


# -- OpenAI ----------------------------------------------------------------------


@given(st.data())
def test_any_openai_chunking_assembles_the_same_calls(data: st.DataObject) -> None:
    calls = data.draw(tool_calls())
    assembler = OpenAIToolCalls()
    for chunk in data.draw(openai_pieces(calls)):
        assembler.add(chunk)
    assert assembler.calls() == calls


def test_openai_calls_come_in_index_order() -> None:
    assembler = OpenAIToolCalls()
    assembler.add([{"index": 1, "id": "b", "function": {"name": "second", "arguments": "{}"}}])
    assembler.add([{"index": 0, "id": "a", "function": {"name": "first", "arguments": "{}"}}])
    assert [c.name for c in assembler.calls()] == ["first", "second"]


def test_openai_pieces_without_index_follow_the_ids() -> None:
    assembler = OpenAIToolCalls()
    assembler.add([{"id": "a", "function": {"name": "one", "arguments": '{"x"'}}])
    assembler.add([{"id": "a", "function": {"arguments": ": 1}"}}])  # the id repeated
    assembler.add([{"id": "b", "function": {"name": "two", "arguments": "{}"}}])
    assert assembler.calls() == [ToolCall("a", "one", '{"x": 1}'), ToolCall("b", "two", "{}")]


def test_openai_pieces_without_index_or_id_start_a_call_at_each_name() -> None:
    assembler = OpenAIToolCalls()
    assembler.add([{"function": {"name": "one", "arguments": "{"}}])
    assembler.add([{"function": {"arguments": "}"}}])
    assembler.add([{"function": {"name": "two"}}])
    [one, two] = assembler.calls()
    assert (one.name, one.arguments, two.name, two.arguments) == ("one", "{}", "two", "{}")
    assert one.id.startswith("call_") and two.id.startswith("call_") and one.id != two.id


def test_openai_odd_arguments_are_normalised() -> None:
    assembler = OpenAIToolCalls()
    assembler.add([{"index": 0, "id": "a", "function": {"name": "empty", "arguments": ""}}])
    assembler.add([{"index": 1, "id": "b", "function": {"name": "obj", "arguments": {"k": 1}}}])
    assembler.add([{"index": 2, "id": "c", "function": {"name": "bad", "arguments": "{oops"}}])
    assembler.add(None)  # "tool_calls": null
    assembler.add([None, "junk"])
    assert assembler.calls() == [
        ToolCall("a", "empty", "{}"),  # no arguments is an empty object, as on Anthropic
        ToolCall("b", "obj", '{"k": 1}'),  # some servers send the object itself
        ToolCall("c", "bad", "{oops"),  # untrusted text is passed on for the caller to reject
    ]


# -- Anthropic -------------------------------------------------------------------


@given(st.data())
def test_any_anthropic_chunking_assembles_the_same_calls(data: st.DataObject) -> None:
    calls = data.draw(tool_calls())
    assembler = AnthropicToolUse()
    got: list[ToolCall] = []
    index = 0
    for call in calls:
        if data.draw(st.booleans()):  # a text block in between
            assembler.start(index, {"type": "text", "text": ""})
            assert assembler.stop(index) is None
            index += 1
        use = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        assembler.start(index, use)
        cuts = data.draw(st.lists(st.integers(0, len(call.arguments)), max_size=8))
        for fragment in ["", *split(call.arguments, cuts)]:
            assembler.extend(index, fragment)
        stopped = assembler.stop(index)
        assert stopped is not None
        got.append(stopped)
        index += 1
    assert got == calls


def test_anthropic_block_with_whole_input_and_no_deltas() -> None:
    assembler = AnthropicToolUse()
    assembler.start(0, {"type": "tool_use", "id": "t", "name": "n", "input": {"a": [1]}})
    assert assembler.stop(0) == ToolCall("t", "n", '{"a": [1]}')


def test_anthropic_server_tools_and_strays_are_not_our_calls() -> None:
    assembler = AnthropicToolUse()
    assembler.start(0, {"type": "server_tool_use", "id": "s", "name": "web_search"})
    assembler.extend(0, '{"query": "x"}')
    assembler.extend(5, "{}")  # no such block
    assert assembler.stop(0) is None
    assert assembler.stop(5) is None


# -- helpers ---------------------------------------------------------------------


def test_read_only_schemas_become_json() -> None:
    schema = MappingProxyType(
        {"type": "object", "properties": MappingProxyType({"id": {"type": "string"}})}
    )
    assert json_value(schema) == {"type": "object", "properties": {"id": {"type": "string"}}}
    assert json.loads(spec_json(ToolSpec("t", "d", schema)))["parameters"]["type"] == "object"
    assert json_value(("a", ["b"])) == ["a", ["b"]]


@pytest.mark.parametrize(
    ("arguments", "parsed"),
    [('{"a": 1}', {"a": 1}), ("", {}), ("{oops", {}), ("[1, 2]", {}), ('"text"', {})],
)
def test_arguments_object_is_always_an_object(arguments: str, parsed: dict[str, Any]) -> None:
    assert arguments_object(arguments) == parsed


# -- over HTTP, as each fake vendor streams them -----------------------------------

CALLS = [
    ("lookup_order", '{"order_id": "1042", "verbose": true}', "call_one"),
    ("create_ticket", '{"subject": "Broken ✓ — naïve", "description": "a\\nb"}', "call_two"),
]
HELLO = ChatRequest("gpt-4o-mini", (ChatMessage("user", "hi"),), max_tokens=100)


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
@pytest.mark.parametrize(("piece", "interleave"), [(1, False), (1, True), (7, True), (1000, False)])
async def test_scripted_calls_arrive_whole_after_the_text(
    vendors: dict[str, Provider], fake: FakeLLM, vendor: str, piece: int, interleave: bool
) -> None:
    fake.enqueue(
        Script(
            chunks=["Let me ", "check."],
            tool_calls=list(CALLS),
            argument_piece=piece,
            interleave_tool_calls=interleave,
        )
    )
    events = [event async for event in vendors[vendor].stream(HELLO)]
    outputs = [e for e in events if isinstance(e, TextDelta | ToolCall)]
    assert outputs == [
        TextDelta("Let me "),
        TextDelta("check."),
        *(ToolCall(ident, name, arguments) for name, arguments, ident in CALLS),
    ]
    assert events[-1] == Finish("tool_calls" if vendor == "openai" else "tool_use")


async def test_scripted_call_ids_are_unique_across_replies(
    vendors: dict[str, Provider], fake: FakeLLM
) -> None:
    fake.enqueue(*[Script(tool_calls=[("a", "{}"), ("b", "{}")]) for _ in range(2)])
    ids = []
    for _ in range(2):
        ids += [e.id async for e in vendors["openai"].stream(HELLO) if isinstance(e, ToolCall)]
    assert len(ids) == len(set(ids)) == 4
