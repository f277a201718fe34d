"""One turn of a conversation the caller keeps itself, run like any other Parley turn.

OpenAI's and Anthropic's APIs are stateless: each request carries the whole
conversation and its last message is the new turn. Such a turn goes through
:meth:`ChatService.send <parley.chat.ChatService.send>` like a ``/v1/chat``
message (input rules, busy check, budget, storage, the reply task, the reply
log), with the caller's earlier messages as the history the model sees, and
is read back through ``ReplyService.follow``.

The turn is stored in a conversation of the caller's: the one the
``Parley-Conversation-Id`` header names, else a new one, whose id comes back
in the same header. Nobody can approve a tool call in these APIs, so tools
that need approval are not offered on such turns (``can_confirm=False``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TypedDict

from starlette.requests import Request
from starlette.responses import StreamingResponse

from parley.auth.tokens import Principal
from parley.errors import BudgetExceeded, Internal, ParleyError, UpstreamUnavailable
from parley.llm.base import ChatMessage
from parley.replies.events import Event
from parley.services import Services
from parley.storage.records import Conversation
from parley.transport.collect import CollectedReply, collect
from parley.transport.compat.errors import InvalidParam
from parley.transport.compat.shapes import Notice, ParleyInfo, ToolStep
from parley.transport.compat.transcript import Transcript
from parley.transport.http import current_user
from parley.transport.rest import services_of
from parley.views import Accepted

CONVERSATION_HEADER = "Parley-Conversation-Id"
REPLY_HEADER = "Parley-Reply-Id"
# Proxies must pass events on as they come (nginx buffers unless told not to).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A person has taken the conversation over: the message is theirs to answer, later.
HELD = "held"
# Reply statuses that are answers; the others (failed, interrupted) are errors.
ANSWERED = frozenset({"complete", "blocked", "cancelled"})


@dataclass(frozen=True, slots=True)
class StartedTurn:
    conversation: Conversation
    accepted: Accepted
    events: AsyncIterator[Event]  # the reply's frames, until ``done``

    @property
    def held(self) -> bool:
        return self.accepted.reply_id is None

    @property
    def headers(self) -> dict[str, str]:
        headers = {CONVERSATION_HEADER: str(self.conversation.id)}
        if self.accepted.reply_id is not None:
            headers[REPLY_HEADER] = self.accepted.reply_id
        return headers

    @property
    def id(self) -> str:
        """An id for the vendor's response: the reply's (or, held, the message's)."""
        return self.accepted.reply_id or str(self.accepted.message_id)

    def info(self, collected: CollectedReply) -> ParleyInfo:
        """What Parley did with the turn, for the response's ``parley`` extension."""
        usage = collected.usage or {}
        return ParleyInfo(
            status=HELD if self.held else collected.status or "failed",
            conversation_id=str(self.conversation.id),
            reply_id=self.accepted.reply_id,
            notices=[Notice(**notice) for notice in collected.notices],
            tool_calls=[ToolStep(**call) for call in collected.tool_calls.values()],
            cost_usd=usage.get("cost_usd", 0.0),
        )


class _Message(TypedDict):
    """The new turn, as both ``ChatService.send_first`` and ``ChatService.send`` take it."""

    client_id: str  # the vendors' APIs have none: each request is a turn of its own
    text: str
    history: tuple[ChatMessage, ...]
    can_confirm: bool  # False: nobody can approve a tool call in these APIs


async def start_turn(request: Request, model: str, transcript: Transcript) -> StartedTurn:
    """Accept the caller's new message for agent ``model`` and start its reply."""
    user = current_user(request)
    services = services_of(request)
    message = _Message(
        client_id=str(uuid.uuid4()),
        text=transcript.text,
        history=transcript.history,
        can_confirm=False,
    )
    named = request.headers.get(CONVERSATION_HEADER)
    if named is None:
        # Stored with its first turn, so a refused message (rules, budget) leaves
        # no empty conversation behind.
        conversation, accepted = await services.chat.send_first(user, model, **message)
    else:
        conversation = await _conversation(services, user, model, named)
        accepted = await services.chat.send(user, conversation, **message)
    if accepted.reply_id is None:
        events: AsyncIterator[Event] = _no_events()
    else:
        events = services.replies.follow(accepted.reply_id, user.user_id)
    return StartedTurn(conversation, accepted, events)


async def _conversation(
    services: Services, user: Principal, model: str, named: str
) -> Conversation:
    conversation = await services.conversations.get(user.user_id, named)
    if conversation.agent_id != model:
        raise InvalidParam(
            f"Conversation {named} is with {conversation.agent_id!r}, not {model!r}.",
            param="model",
        )
    return conversation


async def _no_events() -> AsyncIterator[Event]:
    return
    yield  # an async generator that ends at once


async def under_way(turn: StartedTurn) -> AsyncIterator[Event] | ParleyError:
    """For a streamed answer: the reply's events, once it is under way (its first
    text or tool step), or the error it failed with before either.

    Nothing is sent before that, so a reply that fails at once (every model
    unavailable, the budget spent) is an error with its HTTP status, which the
    vendors' SDKs raise as their typed exceptions, rather than a stream that
    says 200 and then only carries an error.
    """
    first: list[Event] = []
    async for event in turn.events:
        first.append(event)
        if event.numbered or event.ends_reply:
            break
    collected = CollectedReply()
    for event in first:
        collected.take(event)
    if first and first[-1].ends_reply and (failure := failure_of(turn, collected)):
        return failure
    return _replay(first, turn.events)


async def _replay(first: Sequence[Event], rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    for event in first:
        yield event
    async for event in rest:
        yield event


def event_stream(turn: StartedTurn, body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body, media_type="text/event-stream", headers={**STREAM_HEADERS, **turn.headers}
    )


async def finished(turn: StartedTurn) -> CollectedReply | ParleyError:
    """For a whole answer: the reply once it ends (or waits), or the error it ended with."""
    collected = await collect(turn.events)
    failure = failure_of(turn, collected)
    return collected if failure is None else failure


class StreamedText:
    """For a streamed answer: the reply's text as it comes, then how the reply ended.

    :meth:`pieces` yields each piece of text the reply adds, until it ends (or
    waits for an approval nobody can give here). Meanwhile ``sent`` counts the
    characters yielded before the current piece, so a vendor can open its text
    block with the first; ``collected`` is the reply so far.
    """

    def __init__(self, turn: StartedTurn, events: AsyncIterator[Event]) -> None:
        self.collected = CollectedReply()
        self.sent = 0
        self._turn = turn
        self._events = events

    async def pieces(self) -> AsyncIterator[str]:
        async for event in self._events:
            ended = self.collected.take(event)
            if text := self._new_text(event):
                yield text
                # Counted once handed on: while the caller handles a piece, ``sent``
                # is what came before it.
                self.sent += len(text)
            if ended:
                break

    def failure(self) -> ParleyError | None:
        """The error the reply ended with, once :meth:`pieces` is done; ``None`` for an answer."""
        return failure_of(self._turn, self.collected)

    def _new_text(self, event: Event) -> str:
        """The text ``event`` adds to what was sent (``collected`` has taken it in)."""
        if event.kind == "delta":
            return self.collected.parts[-1]
        if event.kind == "resync":  # the reply's log was lost: the stored text, past what was sent
            return self.collected.text[self.sent :]
        return ""


def failure_of(turn: StartedTurn, collected: CollectedReply) -> ParleyError | None:
    """The error a reply that did not answer ends with; ``None`` for an answer.

    A reply that failed after some text is an error too: the vendors' APIs
    have no way to say "this is half an answer" that a client would notice.
    """
    if turn.held or collected.status in ANSWERED:
        return None
    if collected.error is not None:
        code, message = collected.error["code"], collected.error["message"]
        if code == "upstream_unavailable":
            return UpstreamUnavailable(message)
        if code == "budget_exceeded":
            return BudgetExceeded(message)
        return Internal(message)
    if collected.status == "interrupted":
        return Internal("The reply was interrupted before it finished; ask again.")
    return Internal("The reply ended without an answer.")


@dataclass(frozen=True, slots=True)
class Tokens:
    prompt: int = 0
    completion: int = 0

    @classmethod
    def of(cls, collected: CollectedReply) -> Tokens:
        usage = collected.usage or {}
        return cls(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
