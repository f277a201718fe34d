"""A conversation with tool calls and results, as each vendor's documented request format.

Checked on what the fake vendor received over HTTP, i.e. what the vendor would.
"""

from __future__ import annotations

from types import MappingProxyType

from parley.llm.anthropic import TRIMMED_PLACEHOLDER, to_anthropic
from parley.llm.base import ChatMessage, ChatRequest, Provider, ToolCall, ToolSpec
from parley.llm.openai import TOOL_ERROR_PREFIX
from support.fake_llm import FakeLLM

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}
TICKET_SCHEMA = {
    "type": "object",
    "properties": {"subject": {"type": "string"}, "description": {"type": "string"}},
}
TOOLS = (
    ToolSpec("lookup_order", "Look an order up by its number.", ORDER_SCHEMA),
    # A read-only schema, as a catalog may hold: it must still go out as JSON.
    ToolSpec("create_ticket", "Open a support ticket.", MappingProxyType(TICKET_SCHEMA)),
)
LOOKUP = ToolCall("call_1", "lookup_order", '{"order_id": "1042"}')
TICKET = ToolCall("call_2", "create_ticket", '{"subject": "Late order"}')
HANDOFF = ToolCall("call_3", "handoff_to_human", "")  # a call without arguments
CONVERSATION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Where is order 1042? Open a ticket too."),
    ChatMessage("assistant", "Let me look.", tool_calls=(LOOKUP, TICKET)),
    ChatMessage("tool", '{"status": "shipped"}', tool_call_id="call_1"),
    ChatMessage("tool", "ticket service unavailable", tool_call_id="call_2", is_error=True),
    ChatMessage("assistant", "", tool_calls=(HANDOFF,)),
    ChatMessage("tool", "A person will take over.", tool_call_id="call_3"),
    ChatMessage("user", "Thanks."),
)


async def send(provider: Provider, request: ChatRequest) -> None:
    async for _ in provider.stream(request):
        pass


async def test_openai_request_with_tools(vendors: dict[str, Provider], fake: FakeLLM) -> None:
    await send(vendors["openai"], ChatRequest("gpt-4o", CONVERSATION, 100, tools=TOOLS))
    body = fake.requests[-1].body

    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Look an order up by its number.",
                "parameters": ORDER_SCHEMA,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "create_ticket",
                "description": "Open a support ticket.",
                "parameters": TICKET_SCHEMA,
            },
        },
    ]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 1042? Open a ticket too."},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": "1042"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "create_ticket", "arguments": '{"subject": "Late order"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        # The wire has no error flag for results: the text says it.
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": TOOL_ERROR_PREFIX + "ticket service unavailable",
        },
        {
            "role": "assistant",
            "content": None,  # no text before the calls
            "tool_calls": [
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "handoff_to_human", "arguments": ""},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_3", "content": "A person will take over."},
        {"role": "user", "content": "Thanks."},
    ]


async def test_anthropic_request_with_tools(vendors: dict[str, Provider], fake: FakeLLM) -> None:
    request = ChatRequest("claude-haiku-4-5", CONVERSATION, 100, temperature=0.5, tools=TOOLS)
    await send(vendors["anthropic"], request)
    body = fake.requests[-1].body

    assert body["tools"] == [
        {
            "name": "lookup_order",
            "description": "Look an order up by its number.",
            "input_schema": ORDER_SCHEMA,
        },
        {
            "name": "create_ticket",
            "description": "Open a support ticket.",
            "input_schema": TICKET_SCHEMA,
        },
    ]
    assert (body["system"], body["temperature"]) == ("Be brief.", 0.5)
    assert body["messages"] == [
        {"role": "user", "content": "Where is order 1042? Open a ticket too."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "lookup_order",
                    "input": {"order_id": "1042"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "create_ticket",
                    "input": {"subject": "Late order"},
                },
            ],
        },
        # Both results of one assistant turn in the one user turn that follows it.
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": '{"status": "shipped"}',
                    "is_error": False,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": "ticket service unavailable",
                    "is_error": True,
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_3", "name": "handoff_to_human", "input": {}}
            ],
        },
        # The user's next words join the result in one user turn, after it.
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_3",
                    "content": "A person will take over.",
                    "is_error": False,
                },
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]


async def test_no_tools_no_tools_field(vendors: dict[str, Provider], fake: FakeLLM) -> None:
    plain = (ChatMessage("user", "hi"),)
    for vendor in ("openai", "anthropic"):
        await send(vendors[vendor], ChatRequest("m", plain, 10))
        assert "tools" not in fake.requests[-1].body


def test_anthropic_results_come_before_text_in_a_merged_user_turn() -> None:
    call = ToolCall("t1", "lookup_order", "not json")
    prompt = to_anthropic(
        [
            ChatMessage("assistant", "", tool_calls=(call,)),  # history trimmed to a call
            ChatMessage("user", "Any news?"),
            ChatMessage("tool", "shipped", tool_call_id="t1"),
        ]
    )
    assert prompt.messages == (
        ("user", TRIMMED_PLACEHOLDER),
        # Arguments that are not a JSON object (already answered with an error) go as {}.
        ("assistant", ({"type": "tool_use", "id": "t1", "name": "lookup_order", "input": {}},)),
        (
            "user",
            (
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": "shipped",
                    "is_error": False,
                },
                {"type": "text", "text": "Any news?"},
            ),
        ),
    )
