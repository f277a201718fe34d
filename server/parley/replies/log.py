"""The reply log: a Redis Stream of frames per reply, written by one task,
read by any number of sockets and SSE responses on any instance.

Replies' writers append frames through the instance's :class:`Appender`,
which batches them across replies; nothing else is written per token. The
text so far is the stream's deltas put together, which only the sweeper and
a reconnecting client ever need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from parley.replies.appender import Appender
from parley.replies.events import Event
from parley.replies.memory import HistoryUpdate
from parley.storage.keys import Keys, shard_of
from parley.storage.redis import RedisClient, as_text

# How long a reader blocks on XREAD before re-checking the reply's state.
READ_BLOCK_MS = 5_000
READ_BATCH = 256

# Marks the conversation busy and registers the reply, in one round trip.
# Changes nothing if the message was accepted before (a resend) or another
# reply holds the marker, and returns {2} if a person has taken the
# conversation over (its held flag KEYS[7], when given, exists): checked in
# the same script that sets the marker, so a takeover (which sets the flag,
# then stops the running reply) and an opening reply never both miss each other.
# An opened reply gets {1, <the conversation's cached history>} when ARGV[8]
# asks for it (KEYS[6]; nothing after the 1: not cached, see replies/memory.py).
# Every key is in the conversation's shard (Keys.opening): one hash slot.
_OPEN = """
if redis.call('EXISTS', KEYS[5]) == 1 then return {0} end
if KEYS[7] and redis.call('EXISTS', KEYS[7]) == 1 then return {2} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
redis.call('HSET', KEYS[2], 'user_id', ARGV[3], 'conversation_id', ARGV[4],
           'agent_id', ARGV[5], 'status', 'streaming')
redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[7])
if ARGV[8] == '1' then
  local opened = redis.call('LRANGE', KEYS[6], 0, -1)
  table.insert(opened, 1, 1)
  return opened
end
return {1}
"""

# Resends normally come within minutes (a reconnect); older ones are still
# caught by Postgres, only later on the accept path.
CLIENT_MESSAGE_TTL_SECONDS = 3600

# Appends ``done`` (ARGV[4..9]) and closes the reply; the conversation's busy
# marker goes only if it still names this reply. Then the conversation's cached
# history (KEYS[7], replies/memory.py's HistoryUpdate): dropped if ARGV[10] is
# '1', else ARGV[13..] appended if it exists, trimmed to ARGV[11] entries and
# kept ARGV[12] seconds. One slot (Keys.closing).
_CLOSE = """
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4, 9))
redis.call('HSET', KEYS[2], 'status', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('SREM', KEYS[5], ARGV[1])
if redis.call('GET', KEYS[6]) == ARGV[1] then redis.call('DEL', KEYS[6]) end
if ARGV[10] == '1' then
  redis.call('DEL', KEYS[7])
elseif #ARGV > 12 and redis.call('RPUSHX', KEYS[7], unpack(ARGV, 13)) > 0 then
  redis.call('LTRIM', KEYS[7], -tonumber(ARGV[11]), -1)
  redis.call('EXPIRE', KEYS[7], ARGV[12])
end
return 1
"""

# Deletes a key only if it still holds ARGV[1]: the conversation's "busy"
# marker if it still names this reply, a sweeper's claim if it is still its own.
_DELETE_IF_HOLDS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ConversationHeld(Exception):
    """A person has taken the conversation over: the agent may not reply in it."""


@dataclass(frozen=True, slots=True)
class Opening:
    """What opening a reply found."""

    opened: bool  # False: the conversation is busy, or this message was accepted before
    # The conversation's cached history, if asked for and the reply opened; empty
    # when nothing is cached (ConversationMemory.recent takes it as it is).
    cached_history: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReplyState:
    reply_id: str
    user_id: str
    conversation_id: str
    agent_id: str
    status: str

    @property
    def running(self) -> bool:
        return self.status == "streaming"


class ReplyLog:
    def __init__(
        self, redis: RedisClient, keys: Keys, appender: Appender, *, retention_seconds: int
    ) -> None:
        self.redis = redis
        self.appender = appender
        self.keys = keys
        self.retention_seconds = retention_seconds
        self._open = redis.register_script(_OPEN)
        self._close = redis.register_script(_CLOSE)

    async def open(
        self,
        *,
        reply_id: str,
        user_id: str,
        conversation_id: str,
        client_id: str,
        agent_id: str,
        owner: str,
        lease_ms: int,
        by_operator: bool = False,
        read_history: bool = False,
    ) -> Opening:
        """Register a new reply and mark its conversation busy.

        Not ``opened`` (and nothing changed) if another reply is running in
        the conversation or ``client_id`` was accepted there before. With
        ``read_history``, an opened reply brings the conversation's cached
        history in the same round trip. Raises
        :class:`ConversationHeld` if a person has taken the conversation over,
        unless the reply is that person's (``by_operator``). ``reply_id`` must
        be minted for the conversation (:func:`~parley.storage.keys.new_reply_id`).
        """
        if shard_of(reply_id) != shard_of(conversation_id):
            raise ValueError(f"reply {reply_id} was not minted for conversation {conversation_id}")
        status, *cached = await self._open(
            keys=self.keys.opening(reply_id, conversation_id, client_id, held=not by_operator),
            args=[
                reply_id,
                lease_ms,
                user_id,
                conversation_id,
                agent_id,
                owner,
                CLIENT_MESSAGE_TTL_SECONDS,
                int(read_history),
            ],
        )
        if status == 2:
            raise ConversationHeld()
        return Opening(status == 1, cached)

    async def abandon(self, reply_id: str, conversation_id: str, client_id: str) -> None:
        """Undo :meth:`open` for a reply that never started."""
        await self._release_marker(conversation_id, reply_id)
        await self.redis.delete(
            self.keys.state(reply_id),
            self.keys.lease(reply_id),
            self.keys.client_message(conversation_id, client_id),
        )
        await self.redis.srem(self.keys.active_replies_of(reply_id), reply_id)

    async def running_reply(self, conversation_id: str) -> str | None:
        value = await self.redis.get(self.keys.conversation_reply(conversation_id))
        return as_text(value) if value is not None else None

    async def state(self, reply_id: str) -> ReplyState | None:
        raw = await self.redis.hgetall(self.keys.state(reply_id))
        if not raw:
            return None
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        return ReplyState(
            reply_id=reply_id,
            user_id=fields["user_id"],
            conversation_id=fields["conversation_id"],
            agent_id=fields["agent_id"],
            status=fields["status"],
        )

    async def last_seq(self, reply_id: str) -> int:
        """The seq of the last numbered frame in the log (0 before the first)."""
        entries = await self.redis.xrevrange(self.keys.events(reply_id), count=1)
        return _event(entries[0][1]).at if entries else 0

    async def written(self, reply_id: str) -> tuple[str, int]:
        """The text of the deltas in the log, and the last numbered frame's seq."""
        parts, last_seq = [], 0
        cursor = "-"
        while entries := await self.redis.xrange(
            self.keys.events(reply_id), min=cursor, count=READ_BATCH
        ):
            for _, fields in entries:
                event = _event(fields)
                if event.kind == "delta":
                    parts.append(event.frame["text"])
                if event.numbered:
                    last_seq = event.at
            cursor = "(" + as_text(entries[-1][0])
        return "".join(parts), last_seq

    async def close(
        self, reply_id: str, conversation_id: str, done: Event, *, history: HistoryUpdate
    ) -> None:
        """Append ``done``, free the conversation, let the log expire after the
        resume window, and update the conversation's cached history: one round trip."""
        await self._close(
            keys=self.keys.closing(reply_id, conversation_id),
            args=[
                reply_id,
                done.frame["status"],
                self.retention_seconds,
                *_fields_args(done),
                int(history.forget),
                history.size,
                history.ttl_seconds,
                *history.entries,
            ],
        )

    async def append(self, reply_id: str, events: list[Event]) -> None:
        """Append frames directly (the sweeper's; a live reply writes through its writer)."""
        if not events:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for event in events:
                fields = {"f": event.json, "t": event.kind, "at": event.at}
                pipe.xadd(self.keys.events(reply_id), fields)  # type: ignore[arg-type]
            await pipe.execute()

    async def _release_marker(self, conversation_id: str, reply_id: str) -> None:
        await self.redis.eval(
            _DELETE_IF_HOLDS, 1, self.keys.conversation_reply(conversation_id), reply_id
        )

    async def claim(self, reply_id: str, owner: str) -> bool:
        """Claim the closing of a reply whose owner died, for a minute; ``False`` if
        another instance holds the claim (see the sweeper)."""
        return bool(await self.redis.set(self.keys.reaping(reply_id), owner, nx=True, ex=60))

    async def release_claim(self, reply_id: str, owner: str) -> None:
        """Drop ``owner``'s claim to close the reply, if it still holds it."""
        await self.redis.eval(_DELETE_IF_HOLDS, 1, self.keys.reaping(reply_id), owner)

    async def renew(self, reply_id: str, conversation_id: str, owner: str, lease_ms: int) -> bool:
        """Extend the lease; ``False`` if a cancel was requested."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.lease(reply_id), owner, px=lease_ms)
            pipe.pexpire(self.keys.conversation_reply(conversation_id), lease_ms)
            pipe.exists(self.keys.cancel(reply_id))
            *_, cancelled = await pipe.execute()
        return not cancelled

    async def follow(self, reply_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        """Events of a reply that follow ``after_seq``, live, until ``done``.

        Ends without ``done`` if the log has expired (the caller resyncs).
        """
        stream = self.keys.events(reply_id)
        cursor = "0-0"
        while True:
            response: Any = await self.redis.xread(
                {stream: cursor}, count=READ_BATCH, block=READ_BLOCK_MS
            )
            if not response:
                if not await self.redis.exists(stream, self.keys.state(reply_id)):
                    return
                continue
            for entry_id, fields in response[0][1]:
                cursor = entry_id
                event = _event(fields)
                if event.follows(after_seq):
                    yield event
                if event.ends_reply:
                    return

    async def exists(self, reply_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.events(reply_id), self.keys.state(reply_id)))


def _fields_args(event: Event) -> list[str | int]:
    """A stream entry's fields, as XADD takes them (see also the appender)."""
    return ["f", event.json, "t", event.kind, "at", event.at]


def _event(fields: Any) -> Event:
    return Event(as_text(fields[b"t"]), int(fields[b"at"]), as_text(fields[b"f"]))
