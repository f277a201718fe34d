"""Every Redis key Parley uses, named in one place.

All of them start with ``PARLEY_REDIS_PREFIX``, so deployments can share a
Redis. The rate limiters' keys are named by their library; their namespaces are
:attr:`Keys.rate_limits` and :attr:`Keys.guest_rate_limits`.

Keys of a conversation and of its replies carry a hash tag, ``{<shard>}``
after the prefix, so that on a Redis Cluster every key one script or
transaction touches lands in one hash slot. The shard is one of
:data:`SHARDS`, read off an id's last bits: a conversation's from its id,
and a reply's from its own id, which is minted (:func:`new_reply_id`) with
its conversation's shard in those bits. So a reply's keys can be named from
its id alone (a ``resume`` or ``cancel`` names nothing else) and still share
a slot with its conversation's. Sets that used to be global and are touched by
scripts are kept per shard (the active replies) or per conversation (held
flags). The same layout is used on a single Redis: one code path.
"""

from __future__ import annotations

import binascii
import uuid
from dataclasses import dataclass

# A power of two, fixed: a reply id's low bits say its shard, so changing it
# would part running replies from their conversations. 1024 spreads evenly
# over a cluster's slots; the sweeper reads one set per shard in one pipeline.
SHARDS = 1024
_SHARD_MASK = SHARDS - 1


def shard_of(entity_id: str) -> int:
    """The shard of a conversation or reply id: a UUID's low bits (last hex digits).

    Any other string gets a stable shard of its own (used only by tests).
    """
    try:
        return int(entity_id[-3:], 16) & _SHARD_MASK
    except ValueError:
        return binascii.crc_hqx(entity_id.encode(), 0) & _SHARD_MASK


def new_reply_id(conversation_id: str | uuid.UUID) -> str:
    """A random (version 4) UUID for a reply, in its conversation's shard."""
    shard = shard_of(str(conversation_id))
    return str(uuid.UUID(int=(uuid.uuid4().int & ~_SHARD_MASK) | shard))


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "parley"

    def tagged(self, shard: int) -> str:
        """The start of every key in a shard: the prefix and the shard's hash tag."""
        return f"{self.prefix}:{{{shard}}}"

    def _of(self, entity_id: str) -> str:
        return self.tagged(shard_of(entity_id))

    # -- a reply's keys: named from its id, in its conversation's shard --------

    def events(self, reply_id: str) -> str:
        """The reply's frames, in order (a Redis Stream)."""
        return f"{self._of(reply_id)}:reply:{reply_id}:events"

    def state(self, reply_id: str) -> str:
        """Owner, conversation and status of a reply (a hash)."""
        return f"{self._of(reply_id)}:reply:{reply_id}:state"

    def lease(self, reply_id: str) -> str:
        """Held by the instance generating the reply while it is alive."""
        return f"{self._of(reply_id)}:reply:{reply_id}:lease"

    def cancel(self, reply_id: str) -> str:
        return f"{self._of(reply_id)}:reply:{reply_id}:cancel"

    def confirmation(self, reply_id: str, call_id: str) -> str:
        """A tool call waiting for the user's approval, then the answer."""
        return f"{self._of(reply_id)}:reply:{reply_id}:confirm:{call_id}"

    def reaping(self, reply_id: str) -> str:
        return f"{self._of(reply_id)}:reply:{reply_id}:reaping"

    def active_replies(self, shard: int) -> str:
        """The replies running in a shard (a set): the sweeper walks every shard's."""
        return f"{self.tagged(shard)}:replies:active"

    def active_replies_of(self, reply_id: str) -> str:
        """The active-replies set the reply is in."""
        return self.active_replies(shard_of(reply_id))

    # -- a conversation's keys --------------------------------------------------

    def conversation_reply(self, conversation_id: str) -> str:
        """The reply running in a conversation; its existence means "busy"."""
        return f"{self._of(conversation_id)}:conversation:{conversation_id}:reply"

    def client_message(self, conversation_id: str, client_id: str) -> str:
        """Set when a message is accepted: a resend is known without Postgres."""
        return f"{self._of(conversation_id)}:conversation:{conversation_id}:client:{client_id}"

    def history(self, conversation_id: str) -> str:
        """The recent messages the model sees (a list: parley/replies/memory.py)."""
        return f"{self._of(conversation_id)}:conversation:{conversation_id}:history"

    def held(self, conversation_id: str) -> str:
        """Exists while a person has taken the conversation over: no agent reply may open."""
        return f"{self._of(conversation_id)}:conversation:{conversation_id}:held"

    # -- what each script touches together (one slot each: tests/test_redis_cluster.py) --

    def opening(
        self, reply_id: str, conversation_id: str, client_id: str, *, held: bool = True
    ) -> list[str]:
        """The keys of the script that opens a reply (:mod:`parley.replies.log`),
        with the conversation's held flag last unless ``held`` is false."""
        keys = [
            self.conversation_reply(conversation_id),
            self.state(reply_id),
            self.lease(reply_id),
            self.active_replies_of(reply_id),
            self.client_message(conversation_id, client_id),
            self.history(conversation_id),
        ]
        if held:
            keys.append(self.held(conversation_id))
        return keys

    def closing(self, reply_id: str, conversation_id: str) -> list[str]:
        """The keys of the script that closes a reply."""
        return [
            self.events(reply_id),
            self.state(reply_id),
            self.lease(reply_id),
            self.cancel(reply_id),
            self.active_replies_of(reply_id),
            self.conversation_reply(conversation_id),
            self.history(conversation_id),
        ]

    # -- keys of their own (one key per command or script) ---------------------

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    def budget(self, domain: str, day: str, user_id: str) -> str:
        """Tokens a user has used (or holds) of a domain's budget on a UTC day."""
        return f"{self.prefix}:budget:{domain}:{day}:{user_id}"

    @property
    def rate_limits(self) -> str:
        """The namespace of the REST rate limiter's moving windows."""
        return f"{self.prefix}:rest"

    @property
    def guest_rate_limits(self) -> str:
        """The namespace of the guest-token limiter's windows (per address, per site)."""
        return f"{self.prefix}:guest"

    @property
    def guest_secret(self) -> str:
        """The secret behind guest ids and tokens when none is configured."""
        return f"{self.prefix}:guest-secret"

    @property
    def held_conversations(self) -> str:
        """Which conversations have a held flag (a set): read only when the flags are
        reconciled with Postgres; no script reads it."""
        return f"{self.prefix}:conversations:held"

    # -- pub/sub channels (classic pub/sub: a cluster delivers them everywhere) --

    @property
    def control_channel(self) -> str:
        return f"{self.prefix}:control"

    @property
    def operations_channel(self) -> str:
        """Conversations' handoff state, operator replies and titles, for sockets and consoles."""
        return f"{self.prefix}:operations"
