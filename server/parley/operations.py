"""Operating Parley: people taking over from agents, the handoff webhook, feedback,
review and titles, built once at start-up beside the chat services.

:class:`Operations` owns their background work (the operations channel, the
webhook worker, the takeover reconciler, title tasks) and hooks itself into
every stored reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from parley.config import Settings
from parley.feedback import FeedbackStore
from parley.llm.router import LLMRouter
from parley.operators.deliveries import RetryPolicy, WebhookDeliveries
from parley.operators.desk import TakeoverDesk
from parley.operators.events import OperationsBus
from parley.operators.store import HandoffStore
from parley.operators.webhook import WebhookTarget
from parley.replies.job import ReplyJob
from parley.replies.service import ReplyService
from parley.review import ReviewStore
from parley.storage.budget import TokenBudget
from parley.storage.conversations import ConversationStore
from parley.storage.ledger import FinishedReply
from parley.titles import TitleWriter

CONSOLE_PATH = "/console"


@dataclass
class Operations:
    bus: OperationsBus
    desk: TakeoverDesk
    deliveries: WebhookDeliveries
    titles: TitleWriter
    feedback: FeedbackStore
    review: ReviewStore

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        pool: asyncpg.Pool,
        conversations: ConversationStore,
        replies: ReplyService,
        router: LLMRouter,
        budget: TokenBudget,
    ) -> Operations:
        bus = OperationsBus(replies.redis, replies.keys.operations_channel)
        await bus.start()
        deliveries = WebhookDeliveries(
            pool,
            _webhook_target(settings),
            RetryPolicy(settings.handoff_webhook_attempts, settings.handoff_webhook_retry_seconds),
        )
        desk = TakeoverDesk(
            store=HandoffStore(pool),
            conversations=conversations,
            replies=replies,
            deliveries=deliveries,
            bus=bus,
        )
        titles = TitleWriter(
            pool=pool, router=router, budget=budget, bus=bus, enabled=settings.generate_titles
        )
        operations = cls(
            bus=bus,
            desk=desk,
            deliveries=deliveries,
            titles=titles,
            feedback=FeedbackStore(pool),
            review=ReviewStore(pool, conversations),
        )
        await desk.start()
        deliveries.start()
        replies.deps.hooks.after_reply(operations.after_reply)
        return operations

    async def after_reply(self, job: ReplyJob, reply: FinishedReply, message_id: UUID) -> None:
        self.titles.after_reply(job, reply)
        await self.desk.after_reply(reply, message_id)

    async def close(self) -> None:
        await self.titles.close()
        await self.deliveries.close()
        await self.desk.close()
        await self.bus.close()


def _webhook_target(settings: Settings) -> WebhookTarget | None:
    if not settings.handoff_webhook_url or not settings.handoff_webhook_secret:
        return None
    return WebhookTarget(
        url=settings.handoff_webhook_url,
        secret=settings.handoff_webhook_secret,
        console_url=settings.public_base_url + CONSOLE_PATH,
    )
