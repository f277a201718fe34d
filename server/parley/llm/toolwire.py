"""Tool calls on the wire: assembling streamed pieces into :class:`ToolCall`, and specs as JSON.

Both vendors stream a call's arguments as fragments of JSON text. OpenAI and
the servers copying it tag every piece of ``delta.tool_calls`` with the
call's ``index`` (the id and name come in the first piece); Anthropic opens a
``tool_use`` content block, streams ``input_json_delta`` pieces and closes it.
The arguments stay raw text: the caller validates them, and a call whose JSON
does not even parse still has to be answered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.llm.base import ToolCall, ToolSpec

# What a call without arguments gets, whichever way the vendor said "none".
EMPTY_ARGUMENTS = "{}"


def new_call_id(prefix: str = "call") -> str:
    """An id for a call the server sent without one (some local servers do).

    Random rather than numbered: ids key the idempotency of tool runs, so they
    must not repeat in a later round of the same reply.
    """
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def json_value(value: Any) -> Any:
    """``value`` with every mapping a dict and every sequence a list, for ``json.dumps``.

    A spec's schema may be a read-only mapping, which ``json`` refuses.
    """
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [json_value(item) for item in value]
    return value


# Every upstream request describes the agent's tools again, and the router
# counts them again: about 90 µs for four tools on the way to the first token.
# A tool's schema is one object for as long as its catalog is loaded (tools
# are frozen, their schemas copied once), so its plain-JSON form and its text
# are kept per schema object. The entry holds the schema, so its id cannot be
# reused by another object while cached; a reloaded catalog's tools miss.
_WIRE_CACHE_SIZE = 1024
_schemas: dict[int, tuple[Mapping[str, Any], Any]] = {}
_texts: dict[tuple[str, str, int], tuple[Mapping[str, Any], str]] = {}


def spec_schema(spec: ToolSpec) -> Any:
    """``json_value(spec.parameters)``, computed once per schema object. Shared:
    callers put it in request bodies and must not change it."""
    key = id(spec.parameters)
    cached = _schemas.get(key)
    if cached is not None and cached[0] is spec.parameters:
        return cached[1]
    schema = json_value(spec.parameters)
    if len(_schemas) >= _WIRE_CACHE_SIZE:
        _schemas.clear()
    _schemas[key] = (spec.parameters, schema)
    return schema


def spec_json(spec: ToolSpec) -> str:
    """The spec as the model reads it, for counting its tokens (cached, see above)."""
    key = (spec.name, spec.description, id(spec.parameters))
    cached = _texts.get(key)
    if cached is not None and cached[0] is spec.parameters:
        return cached[1]
    schema = spec_schema(spec)
    text = json.dumps({"name": spec.name, "description": spec.description, "parameters": schema})
    if len(_texts) >= _WIRE_CACHE_SIZE:
        _texts.clear()
    _texts[key] = (spec.parameters, text)
    return text


def arguments_object(arguments: str) -> dict[str, Any]:
    """A call's raw arguments as the JSON object Anthropic wants back in the history.

    Arguments that are not an object were already answered with an error
    result, which tells the model what was wrong; the history shows ``{}``.
    """
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(slots=True)
class _Pending:
    """One call being assembled."""

    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)
    initial: str = ""  # arguments given whole up front (Anthropic's block start), if any

    def done(self, id_prefix: str) -> ToolCall:
        arguments = "".join(self.parts) or self.initial
        return ToolCall(
            self.id or new_call_id(id_prefix),
            self.name,
            arguments if arguments.strip() else EMPTY_ARGUMENTS,
        )


class OpenAIToolCalls:
    """Assembles the pieces of ``delta.tool_calls`` from one OpenAI-style stream.

    Pieces are keyed by ``index``: parallel calls may interleave, and some
    servers repeat the id (or the name) in every piece or send a whole call
    in one. Servers that leave out ``index`` send calls one after another, so
    a piece with a new id (or a second name) starts the next call.
    """

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, _Pending] = {}

    def add(self, pieces: object) -> None:
        if not isinstance(pieces, list):
            return
        for piece in pieces:
            if isinstance(piece, dict):
                self._take(piece)

    def calls(self) -> list[ToolCall]:
        """The assembled calls in index order (call once the stream has ended)."""
        return [self._calls[index].done("call") for index in sorted(self._calls)]

    def _take(self, piece: dict[str, Any]) -> None:
        index = piece.get("index")
        if not isinstance(index, int):
            index = self._index_of(piece)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = _Pending()
        ident = piece.get("id")
        if ident and not call.id:
            call.id = str(ident)
        function = piece.get("function")
        if isinstance(function, dict):
            name = function.get("name")
            if name and not call.name:
                call.name = str(name)
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                if arguments:
                    call.parts.append(arguments)
            elif arguments is not None:  # a few servers send the object itself
                call.parts.append(json.dumps(arguments))

    def _index_of(self, piece: dict[str, Any]) -> int:
        if not self._calls:
            return 0
        last = max(self._calls)
        return last + 1 if _starts_another(self._calls[last], piece) else last


def _starts_another(current: _Pending, piece: dict[str, Any]) -> bool:
    """Whether an index-less piece begins a new call rather than continuing ``current``."""
    ident = piece.get("id")
    if ident:
        return bool(current.id) and ident != current.id
    function = piece.get("function")
    return isinstance(function, dict) and bool(function.get("name")) and bool(current.name)


class AnthropicToolUse:
    """Assembles ``tool_use`` content blocks from one Anthropic Messages stream."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[int, _Pending] = {}

    def start(self, index: object, block: object) -> None:
        # Only our tools: "server_tool_use" blocks are run by Anthropic itself.
        if not isinstance(index, int) or not isinstance(block, dict):
            return
        if block.get("type") != "tool_use":
            return
        given = block.get("input")
        self._open[index] = _Pending(
            id=str(block.get("id") or ""),
            name=str(block.get("name") or ""),
            # The API sends {} here and the arguments as deltas; a proxy may send them whole.
            initial=json.dumps(given) if given else "",
        )

    def extend(self, index: object, partial_json: object) -> None:
        if isinstance(index, int) and isinstance(partial_json, str) and partial_json:
            pending = self._open.get(index)
            if pending is not None:
                pending.parts.append(partial_json)

    def stop(self, index: object) -> ToolCall | None:
        """The call whose block just closed, if that block was a tool call."""
        pending = self._open.pop(index, None) if isinstance(index, int) else None
        return None if pending is None else pending.done("toolu")
