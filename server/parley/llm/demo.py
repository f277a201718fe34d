"""An offline stand-in model, so Parley runs before any API key is configured.

It also calls tools, deterministically, so a newcomer sees the feature work
without a model: offered ``lookup_order``, ``create_ticket`` or
``handoff_to_human`` and asked for what they do, it calls them; and
``/tool <name> <json>`` (several joined with ``;``) calls any offered tool.
Once the results are back it answers by quoting them.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from parley.knowledge.prompt import first_passage
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
from parley.llm.tokens import ModelTokens, TokenCounter

LABEL = "[Demo model — offline]"
SUMMARY_CHARS = 80
RESULT_CHARS = 300  # of each tool result quoted back
# A ticket's description is the user's message, within what ticket systems take.
DESCRIPTION_CHARS = (10, 2000)

# Words with their trailing whitespace, so the pieces concatenate to the exact reply.
_PIECES = re.compile(r"\s*\S+\s*")

# "/tool name {json}"; several are joined with ";" and called in parallel.
_EXPLICIT = re.compile(r"/tool\s+([A-Za-z0-9_-]{1,64})\s*(.*)", re.DOTALL)
_NEXT_EXPLICIT = re.compile(r"\s*;\s*(?=/tool\b)")
_ORDER = re.compile(r"\border\b[^0-9]{0,24}?([0-9]+)", re.IGNORECASE)
_TICKET = re.compile(r"\bticket\b", re.IGNORECASE)
_PERSON = re.compile(r"\b(human|person|agent|representative|operator)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def demo_reply(messages: Sequence[ChatMessage]) -> str:
    """The deterministic text reply: a summary of tool results just received, else an
    echo with setup help (in Markdown: bold, a list, a table, a code block, a link)."""
    results = _trailing_results(messages)
    if results:
        return f"{LABEL} " + " ".join(_result_sentence(messages, r) for r in results)
    cited = _cited_answer(messages)
    if cited is not None:
        return cited
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    echo = f"You said: “{summarise(last_user)}”." if last_user.strip() else "You said nothing."
    return f"{LABEL} {echo}\n\n{SETUP_HELP}"


# The canned reply's help, in the Markdown the chat UI renders (bold, a list,
# a table, a code block, a link), so a first run shows what real replies look like.
SETUP_HELP = (
    "This is a **canned reply**, so you can try Parley without a language model. "
    "To talk to a real one:\n\n"
    "1. Set one of these:\n\n"
    "   | Variable | Talks to |\n"
    "   | --- | --- |\n"
    "   | `OPENAI_API_KEY` | OpenAI |\n"
    "   | `ANTHROPIC_API_KEY` | Anthropic |\n"
    "   | `OPENAI_BASE_URL` | an OpenAI-compatible server: [Ollama](https://ollama.com), "
    "vLLM, LM Studio |\n\n"
    "2. Restart Parley:\n\n"
    "   ```sh\n"
    "   parley serve\n"
    "   ```"
)


def _cited_answer(messages: Sequence[ChatMessage]) -> str | None:
    """With knowledge passages in the system prompt: the first one, quoted and cited."""
    system = next((m.content for m in messages if m.role == "system"), "")
    passage = first_passage(system)
    if passage is None:
        return None
    return (
        f"{LABEL} From {passage.source}: “{summarise(passage.text, RESULT_CHARS)}” [1]. "
        "This is the best-matching passage of the knowledge base, quoted; set OPENAI_API_KEY "
        "or ANTHROPIC_API_KEY for answers written from it."
    )


def demo_tool_calls(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> list[ToolCall]:
    """The calls the demo makes for the user's last message (none unless it is the last turn)."""
    if not tools or not messages or messages[-1].role != "user":
        return []
    offered = {spec.name: spec for spec in tools}
    text = messages[-1].content
    explicit = text.lstrip().startswith("/tool")
    wanted = _explicit_calls(text) if explicit else _implied_calls(text, offered)
    chosen = [(name, arguments) for name, arguments in wanted if name in offered]
    if not explicit:
        chosen = chosen[:1]  # the most specific thing asked for, among the offered tools
    first = 1 + sum(len(m.tool_calls) for m in messages)  # ids stay unique across rounds
    return [
        ToolCall(f"demo_call_{n}", name, _arguments(offered[name], arguments))
        for n, (name, arguments) in enumerate(chosen, first)
    ]


def summarise(text: str, limit: int = SUMMARY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class DemoProvider:
    name = "demo"
    family = "demo"

    def __init__(self, delay_seconds: float = 0.0, *, counter: TokenCounter | None = None) -> None:
        self._delay = delay_seconds
        self._counter = counter or TokenCounter()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        tokens = self._counter.for_model(ModelRef(self.name, request.model))
        offered = request.tools if request.may_call_tools else ()
        calls = demo_tool_calls(request.messages, offered)
        if calls:
            for call in calls:
                await self._pause()
                yield call
            finish, completion = "tool_calls", tokens.count_calls(calls)
        else:
            sent = ""
            finish = "stop"
            for piece in _PIECES.findall(demo_reply(request.messages)):
                if tokens.count(sent + piece) > request.max_tokens:
                    finish = "length"
                    break
                if sent:
                    await self._pause()
                sent += piece
                yield TextDelta(piece)
            completion = tokens.count(sent)
        # Without the encoding files the counts are a guess; reporting them as the
        # "vendor's" would hide that, so the router estimates (and says so) instead.
        if not tokens.estimated:
            yield Usage(_prompt_tokens(tokens, request), completion)
        yield Finish(finish)

    async def aclose(self) -> None:
        return None

    async def _pause(self) -> None:
        if self._delay:
            await asyncio.sleep(self._delay)  # pacing that looks like a real model


def _prompt_tokens(tokens: ModelTokens, request: ChatRequest) -> int:
    return tokens.count_messages(request.messages) + tokens.count_tools(request.tools)


def _explicit_calls(text: str) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    for part in _NEXT_EXPLICIT.split(text.strip()):
        match = _EXPLICIT.fullmatch(part.strip())
        if match:
            # Passed on as written, even when it is not valid JSON: that is what
            # lets a demo (or a test) show how bad arguments are handled.
            calls.append((match[1], match[2].strip() or "{}"))
    return calls


def _implied_calls(text: str, offered: Mapping[str, ToolSpec]) -> list[tuple[str, Any]]:
    """The calls the text asks for, the most specific first: a person, a ticket, an order."""
    flat = " ".join(text.split())
    order = _ORDER.search(flat)
    calls: list[tuple[str, Any]] = []
    if _PERSON.search(flat):
        reason = f"The user asked for a person: “{summarise(flat)}”"
        calls.append(("handoff_to_human", {"reason": reason}))
    if _TICKET.search(flat):
        shortest, longest = DESCRIPTION_CHARS
        description = summarise(flat, longest)
        if len(description) < shortest:
            description = f"Reported in the chat: {description}"
        ticket = {
            "subject": summarise(_SENTENCE_END.split(flat, maxsplit=1)[0]),
            "description": description,
        }
        if order and "order_id" in _properties(offered.get("create_ticket")):
            ticket["order_id"] = order[1]
        calls.append(("create_ticket", ticket))
    if order:
        calls.append(("lookup_order", {"order_id": order[1]}))
    return calls


def _properties(spec: ToolSpec | None) -> Mapping[str, Any]:
    properties = spec.parameters.get("properties") if spec is not None else None
    return properties if isinstance(properties, Mapping) else {}


# What the demo calls each argument, and the other names a tool's schema may use for it.
_SYNONYMS = {
    "order_id": ("order_number", "order", "id"),
    "subject": ("title", "summary"),
    "description": ("body", "details"),
    "reason": ("summary", "message"),
}


def _arguments(spec: ToolSpec, arguments: Any) -> str:
    """JSON text of ``arguments``, renamed to the names the tool's schema uses."""
    if isinstance(arguments, str):
        return arguments
    properties = _properties(spec)
    if not properties:
        return json.dumps(arguments, ensure_ascii=False)
    renamed: dict[str, Any] = {}
    for key, value in arguments.items():
        names = (key, *_SYNONYMS.get(key, ()))
        renamed[next((n for n in names if n in properties), key)] = value
    return json.dumps(renamed, ensure_ascii=False)


def _trailing_results(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    return results[::-1]


def _result_sentence(messages: Sequence[ChatMessage], result: ChatMessage) -> str:
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    name = names.get(result.tool_call_id or "", "requested")
    verb = "failed" if result.is_error else "returned"
    content = summarise(result.content, RESULT_CHARS) or "nothing"
    return f"The {name} tool {verb}: “{content}”."
