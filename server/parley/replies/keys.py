"""Every Redis key Parley uses, named in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "parley"

    def events(self, reply_id: str) -> str:
        """The reply's frames, in order (a Redis Stream)."""
        return f"{self.prefix}:reply:{reply_id}:events"

    def state(self, reply_id: str) -> str:
        """Owner, conversation and status of a reply (a hash)."""
        return f"{self.prefix}:reply:{reply_id}:state"

    def lease(self, reply_id: str) -> str:
        """Held by the instance generating the reply while it is alive."""
        return f"{self.prefix}:reply:{reply_id}:lease"

    def cancel(self, reply_id: str) -> str:
        return f"{self.prefix}:reply:{reply_id}:cancel"

    def confirmation(self, reply_id: str, call_id: str) -> str:
        """A tool call waiting for the user's approval, then the answer."""
        return f"{self.prefix}:reply:{reply_id}:confirm:{call_id}"

    def reaping(self, reply_id: str) -> str:
        return f"{self.prefix}:reply:{reply_id}:reaping"

    def conversation_reply(self, conversation_id: str) -> str:
        """The reply running in a conversation; its existence means "busy"."""
        return f"{self.prefix}:conversation:{conversation_id}:reply"

    def client_message(self, conversation_id: str, client_id: str) -> str:
        """Set when a message is accepted: a resend is known without Postgres."""
        return f"{self.prefix}:conversation:{conversation_id}:client:{client_id}"

    def history(self, conversation_id: str) -> str:
        return f"{self.prefix}:conversation:{conversation_id}:history"

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    @property
    def active_replies(self) -> str:
        return f"{self.prefix}:replies:active"

    @property
    def control_channel(self) -> str:
        return f"{self.prefix}:control"

    @property
    def held_conversations(self) -> str:
        """Conversations a person has taken over (a set): no agent reply may open in them."""
        return f"{self.prefix}:conversations:held"

    @property
    def operations_channel(self) -> str:
        """Conversations' handoff state, operator replies and titles, for sockets and consoles."""
        return f"{self.prefix}:operations"
