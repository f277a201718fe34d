"""Work that follows a stored reply: queueing a handoff, titling the conversation.

A reply task runs its hooks after ``done`` is published, so nothing they do
(or fail to do) delays or changes what the client sees. Hooks are added once
at start-up, by services built after the reply machinery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from parley.replies.job import ReplyJob
    from parley.storage.ledger import FinishedReply

log = logging.getLogger(__name__)

AfterReply = Callable[["ReplyJob", "FinishedReply", UUID], Awaitable[None]]


class ReplyHooks:
    def __init__(self) -> None:
        self._after: list[AfterReply] = []

    def after_reply(self, hook: AfterReply) -> None:
        self._after.append(hook)

    async def stored(self, job: ReplyJob, reply: FinishedReply, message_id: UUID) -> None:
        for hook in self._after:
            try:
                await hook(job, reply, message_id)
            except Exception:  # the reply is delivered and stored; only the follow-up failed
                log.exception("a hook after reply %s failed", job.reply_id)
