"""The offline demo model calling tools, deterministically, and answering from their results."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

import jsonschema
import pytest
import yaml

from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ModelRef,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from parley.llm.demo import LABEL, DemoProvider, demo_reply
from parley.llm.models import PriceTable
from parley.llm.router import CallFinished, LLMRouter, RetryPolicy, Timeouts
from parley.llm.tokens import TokenCounter

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")


def spec(name: str, *properties: str) -> ToolSpec:
    schema = {"type": "object", "properties": {p: {"type": "string"} for p in properties}}
    return ToolSpec(name, f"The {name} tool.", schema)


LOOKUP = spec("lookup_order", "order_id")
TICKET = spec("create_ticket", "subject", "description")
HANDOFF = spec("handoff_to_human", "reason")
ALL = (LOOKUP, TICKET, HANDOFF)
COUNTER = TokenCounter()
TOKENS = COUNTER.for_model(ModelRef("demo", "echo"))


async def events_of(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ALL, max_tokens: int = 500
) -> list[StreamEvent]:
    request = ChatRequest("echo", tuple(messages), max_tokens, tools=tuple(tools))
    return [event async for event in DemoProvider(counter=COUNTER).stream(request)]


def calls_in(events: list[StreamEvent]) -> list[tuple[str, str, object]]:
    return [(e.id, e.name, json.loads(e.arguments)) for e in events if isinstance(e, ToolCall)]


def text_in(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_an_order_number_looks_the_order_up() -> None:
    messages = [ChatMessage("user", "Where is my order #1042? It is late.")]
    events = await events_of(messages)

    assert calls_in(events) == [("demo_call_1", "lookup_order", {"order_id": "1042"})]
    assert text_in(events) == ""
    [call] = [e for e in events if isinstance(e, ToolCall)]
    prompt = TOKENS.count_messages(messages) + TOKENS.count_tools(ALL)
    assert events[-2:] == [Usage(prompt, TOKENS.count_calls([call])), Finish("tool_calls")]


async def test_asking_for_a_ticket_opens_one_from_the_message() -> None:
    message = "Please open a ticket:  my printer is on fire. It also smokes."
    events = await events_of([ChatMessage("user", message)])
    assert calls_in(events) == [
        (
            "demo_call_1",
            "create_ticket",
            {
                "subject": "Please open a ticket: my printer is on fire.",
                "description": "Please open a ticket: my printer is on fire. It also smokes.",
            },
        )
    ]


async def test_a_ticket_about_an_order_says_which_when_the_tool_takes_it() -> None:
    ticket = spec("create_ticket", "subject", "description", "order_id")
    events = await events_of([ChatMessage("user", "ticket: order 77")], tools=[ticket])
    assert calls_in(events) == [
        (
            "demo_call_1",
            "create_ticket",
            {"subject": "ticket: order 77", "description": "ticket: order 77", "order_id": "77"},
        )
    ]


async def test_a_ticket_description_is_long_enough_for_a_ticket_system() -> None:
    [(_, _, arguments)] = calls_in(await events_of([ChatMessage("user", "ticket!")]))
    assert arguments == {"subject": "ticket!", "description": "Reported in the chat: ticket!"}


SHIPPED = Path(__file__).resolve().parents[1] / "tools"


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ("lookup_order", "Where is order 1042?"),
        ("create_ticket", "Open a ticket please, order 1042 arrived broken."),
        ("create_ticket", "ticket"),
    ],
)
async def test_demo_arguments_fit_the_shipped_tools(tool: str, message: str) -> None:
    path = SHIPPED / f"{tool}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped")
    schema = yaml.safe_load(path.read_text())["parameters"]
    events = await events_of([ChatMessage("user", message)], tools=[ToolSpec(tool, "", schema)])
    [call] = [e for e in events if isinstance(e, ToolCall)]
    jsonschema.validate(json.loads(call.arguments), schema)


async def test_asking_for_a_person_hands_off_even_about_an_order() -> None:
    events = await events_of([ChatMessage("user", "Let me talk to a human about order 1042")])
    [(_, name, arguments)] = calls_in(events)
    assert name == "handoff_to_human"
    assert arguments == {
        "reason": "The user asked for a person: “Let me talk to a human about order 1042”"
    }


async def test_only_offered_tools_are_called() -> None:
    asked = [ChatMessage("user", "Get me a person for order 1042")]
    assert calls_in(await events_of(asked, tools=[LOOKUP])) == [
        ("demo_call_1", "lookup_order", {"order_id": "1042"})
    ]
    events = await events_of(asked, tools=[TICKET])  # nothing asked for is offered
    assert calls_in(events) == [] and text_in(events) == demo_reply(asked)


async def test_without_tools_the_reply_is_the_canned_text() -> None:
    messages = [ChatMessage("user", "order 1042 please")]
    events = await events_of(messages, tools=())
    assert text_in(events) == demo_reply(messages) and events[-1] == Finish("stop")


async def test_explicit_tool_commands_call_in_parallel() -> None:
    text = '/tool lookup_order {"order_id": "7"} ; /tool create_ticket {"subject": "Hi; there"}'
    events = await events_of([ChatMessage("user", text)])
    assert calls_in(events) == [
        ("demo_call_1", "lookup_order", {"order_id": "7"}),
        ("demo_call_2", "create_ticket", {"subject": "Hi; there"}),
    ]


async def test_explicit_arguments_are_passed_as_written() -> None:
    # Even invalid JSON, so a demo (or a test) can show how bad arguments are handled.
    events = await events_of([ChatMessage("user", "/tool lookup_order {oops")])
    assert [(e.name, e.arguments) for e in events if isinstance(e, ToolCall)] == [
        ("lookup_order", "{oops")
    ]
    events = await events_of([ChatMessage("user", "/tool handoff_to_human")])
    assert [e.arguments for e in events if isinstance(e, ToolCall)] == ["{}"]


async def test_explicit_call_of_a_tool_not_offered_gets_text() -> None:
    events = await events_of([ChatMessage("user", "/tool delete_everything {}")])
    assert calls_in(events) == [] and text_in(events).startswith(LABEL)


async def test_argument_names_follow_the_tools_schema() -> None:
    ticket = spec("create_ticket", "title", "body")
    events = await events_of([ChatMessage("user", "Open a ticket. Now.")], tools=[ticket])
    assert calls_in(events) == [
        ("demo_call_1", "create_ticket", {"title": "Open a ticket.", "body": "Open a ticket. Now."})
    ]


ROUND_ONE = [
    ChatMessage("user", '/tool lookup_order {"order_id": "1"} ; /tool create_ticket {}'),
    ChatMessage(
        "assistant",
        "",
        tool_calls=(
            ToolCall("demo_call_1", "lookup_order", '{"order_id": "1"}'),
            ToolCall("demo_call_2", "create_ticket", "{}"),
        ),
    ),
    ChatMessage("tool", '{"status":\n  "shipped"}', tool_call_id="demo_call_1"),
    ChatMessage("tool", "ticket service down", tool_call_id="demo_call_2", is_error=True),
]


async def test_after_the_results_it_answers_with_them() -> None:
    events = await events_of(ROUND_ONE)
    assert text_in(events) == (
        f'{LABEL} The lookup_order tool returned: “{{"status": "shipped"}}”. '
        "The create_ticket tool failed: “ticket service down”."
    )
    assert calls_in(events) == [] and events[-1] == Finish("stop")


async def test_call_ids_stay_unique_in_later_rounds() -> None:
    messages = [*ROUND_ONE, ChatMessage("assistant", "Done."), ChatMessage("user", "order 9?")]
    assert calls_in(await events_of(messages)) == [
        ("demo_call_3", "lookup_order", {"order_id": "9"})
    ]


async def test_the_demo_calls_tools_through_the_router() -> None:
    counter = TokenCounter()
    router = LLMRouter(
        {"demo": DemoProvider(counter=counter)},
        PriceTable.defaults(),
        counter,
        RetryPolicy(attempts=1),
        Timeouts(),
    )
    events = [
        event
        async for event in router.stream(
            [ModelRef("demo", "echo")],
            [ChatMessage("user", "order 1042?")],
            max_tokens=100,
            temperature=None,
            cancel=asyncio.Event(),
            tools=[LOOKUP],
        )
    ]
    call = ToolCall("demo_call_1", "lookup_order", '{"order_id": "1042"}')
    assert events[0] == call
    assert isinstance(events[1], CallFinished)
    record = events[1].record
    assert (record.status, record.finish_reason, record.tool_calls) == (
        "complete",
        "tool_calls",
        (call,),
    )
    assert not record.estimated and record.completion_tokens == TOKENS.count_calls([call])


@pytest.mark.parametrize("delay", [0.0, 0.001])
async def test_calls_are_deterministic(delay: float) -> None:
    request = ChatRequest("echo", (ChatMessage("user", "ticket for order 5"),), 100, tools=ALL)
    runs = [
        [e async for e in DemoProvider(delay, counter=COUNTER).stream(request)] for _ in range(2)
    ]
    assert runs[0] == runs[1] and calls_in(runs[0])[0][1] == "create_ticket"


def test_the_canned_reply_shows_what_the_chat_ui_renders() -> None:
    text = demo_reply([ChatMessage("user", "Hello there")])
    assert text.startswith(f"{LABEL} You said: “Hello there”.")
    lines = text.splitlines()
    assert "**canned reply**" in text  # bold
    assert [line[:3] for line in lines if line[:1].isdigit()] == ["1. ", "2. "]  # a list
    assert "   | --- | --- |" in lines  # a table (in the list item)
    assert "   ```sh" in lines and "   parley serve" in lines  # a fenced code block
    assert "[Ollama](https://ollama.com)" in text  # a link
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
        assert f"`{variable}`" in text
