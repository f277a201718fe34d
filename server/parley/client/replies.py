"""The replies one client follows, and which of them a frame from the server is for.

A message is pending, by ``client_id``, from its send until its ``accepted``;
its reply is then followed, by ``reply_id``, until it ends. The ids of ended
replies are kept a while, so that their late frames are dropped rather than
starting a reply nobody follows.
"""

from __future__ import annotations

from typing import Any

from parley.client.errors import ParleyError
from parley.client.reply import Reply
from parley.protocol import ErrorFrame, ServerFrame

ENDED_KEPT = 1000  # ids of ended replies remembered, to drop their late frames


class Replies:
    """A client's messages waiting for their ``accepted``, and the replies it follows."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[Reply, dict[str, Any]]] = {}  # client_id: not accepted yet
        self._followed: dict[str, Reply] = {}  # reply_id: until it ends
        self._ended: dict[str, None] = {}  # ids of ended replies, oldest first

    # -- messages -------------------------------------------------------------------

    def of_message(self, client_id: str) -> Reply | None:
        """The reply to the message sent with ``client_id``, while it waits or runs."""
        pending = self._pending.get(client_id)
        if pending is not None:
            return pending[0]
        return next((r for r in self._followed.values() if r.client_id == client_id), None)

    def expect(self, client_id: str, reply: Reply, message: dict[str, Any]) -> None:
        """``reply`` waits for the ``accepted`` of ``message`` (kept to send it again)."""
        self._pending[client_id] = (reply, message)

    def unsent(self) -> list[dict[str, Any]]:
        """The messages not accepted yet: a new connection sends them again."""
        return [message for _, message in self._pending.values()]

    def accepted(self, client_id: str) -> Reply | None:
        """The reply that waited for this ``accepted`` (None: another client's, or seen)."""
        pending = self._pending.pop(client_id, None)
        return None if pending is None else pending[0]

    def fail_pending(self, error: ParleyError) -> None:
        """Fail every message not accepted yet: the session they were sent to is gone."""
        for reply, _ in self._pending.values():
            reply.fail(error)
        self._pending.clear()

    # -- replies ----------------------------------------------------------------------

    def followed(self, reply_id: str) -> Reply | None:
        return self._followed.get(reply_id)

    def running(self) -> list[Reply]:
        """The replies followed: a new connection resumes them."""
        return list(self._followed.values())

    def follow(self, reply_id: str, after_seq: int) -> Reply:
        """Follow a reply this client did not send, from after ``after_seq``."""
        reply = self._followed[reply_id] = Reply(reply_id=reply_id, after_seq=after_seq)
        self._ended.pop(reply_id, None)
        return reply

    def follow_as(self, reply_id: str, reply: Reply) -> bool:
        """Follow an accepted message's ``reply`` by its id; True if it replaces a
        reply followed by that id, which fails (its frames start over in ``reply``)."""
        followed = self._followed.get(reply_id)
        self._ended.pop(reply_id, None)
        self._followed[reply_id] = reply
        if followed is None:
            return False
        followed.fail(ParleyError("superseded", "Followed by a resent message."))
        return True

    def to_reply(self, reply_id: str, frame: ServerFrame) -> bool:
        """Hand ``frame`` to its reply; False if it repeats one or the reply had ended."""
        if reply_id in self._ended:
            return False  # e.g. a cancel's ``done`` for a reply that had ended
        reply = self._followed.get(reply_id)
        if reply is None:  # a reply this client did not send: an operator's, or a cancelled one
            reply = self._followed[reply_id] = Reply(reply_id=reply_id)
        return self.take(reply, frame)

    def take(self, reply: Reply, frame: ServerFrame) -> bool:
        """``reply.take(frame)``, forgetting the reply once that ends it."""
        fresh = reply.take(frame)
        self._forget_if_ended(reply)
        return fresh

    def refuse(self, frame: ErrorFrame, error: ParleyError) -> bool:
        """Fail the message or the reply a refusal is about; False if it is about neither."""
        pending = self._pending.pop(frame.client_id, None) if frame.client_id else None
        # not_found for a reply (not for one of its tool calls): it cannot be resumed.
        lost = frame.reply_id is not None and frame.call_id is None and frame.code == "not_found"
        reply = self._followed.get(frame.reply_id) if lost and frame.reply_id else None
        if pending is not None:
            pending[0].fail(error)
        elif reply is not None:
            reply.fail(error)
            self._forget_if_ended(reply)
        return pending is not None or reply is not None

    def fail_all(self, error: ParleyError) -> None:
        """Fail every message and reply: the client is done for."""
        self.fail_pending(error)
        for reply in self._followed.values():
            reply.fail(error)
        self._followed.clear()

    def _forget_if_ended(self, reply: Reply) -> None:
        if not reply.ended or reply.reply_id is None:
            return
        if self._followed.get(reply.reply_id) is reply:
            del self._followed[reply.reply_id]
            self._ended[reply.reply_id] = None
            if len(self._ended) > ENDED_KEPT:
                del self._ended[next(iter(self._ended))]
