"""The objects a running Parley holds, built once at start-up.

Everything that does I/O is created here and passed in explicitly; request
handlers find this container on ``app.state.services``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

import asyncpg

from parley.auth.tokens import TokenVerifier
from parley.catalog import Catalog, CatalogStore, load_catalog
from parley.chat import ChatService
from parley.config import Settings
from parley.guests import ChatVerifier, Guests
from parley.knowledge.service import Knowledge
from parley.lane import Lane
from parley.llm.moderation import ModerationClient
from parley.llm.router import LLMRouter
from parley.message_limits import MessageLimits
from parley.observability.tracing import NO_TRACING, Tracing
from parley.operations import Operations
from parley.replies.appender import Appender
from parley.replies.confirmations import Confirmations
from parley.replies.feed import LocalFeeds
from parley.replies.job import ReplyDeps
from parley.replies.log import ReplyLog
from parley.replies.memory import ConversationMemory
from parley.replies.screening import Classifiers
from parley.replies.service import ReplyService
from parley.replies.tool_runner import ToolDeps
from parley.sessions import SessionStore
from parley.storage.budget import TokenBudget
from parley.storage.conversations import ConversationStore
from parley.storage.database import create_pool, migrate
from parley.storage.keys import Keys
from parley.storage.ledger import Ledger
from parley.storage.redis import RedisClient
from parley.storage.redis import connect as connect_redis
from parley.storage.tool_calls import ToolCallStore
from parley.tools.registry import ToolRegistry

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    pool: asyncpg.Pool
    redis: RedisClient
    catalog: CatalogStore
    router: LLMRouter
    tools: ToolRegistry
    conversations: ConversationStore
    ledger: Ledger
    replies: ReplyService
    chat: ChatService
    instance_id: str
    operations: Operations
    guests: Guests
    chat_verifier: ChatVerifier  # the chat WebSocket's: users' tokens and guests'
    tracing: Tracing = NO_TRACING
    knowledge: Knowledge | None = None

    @classmethod
    async def start(
        cls, settings: Settings, verifier: TokenVerifier, tracing: Tracing = NO_TRACING
    ) -> Services:
        assert settings.database_url and settings.redis_url, "storage URLs are resolved first"
        catalog = CatalogStore(settings.catalog, load_catalog(settings.catalog))
        pool = await create_pool(settings.database_url)
        await migrate(pool)
        redis = connect_redis(settings.redis_url)
        await redis.ping()
        guests = await Guests.start(settings, redis)
        router = LLMRouter.from_settings(settings, tracing=tracing)
        await router.warm_up()
        knowledge = await Knowledge.start(pool, settings, router.cost_usd)
        (log.warning if knowledge.degraded else log.info)("%s", knowledge.describe())
        await sync_knowledge(knowledge)
        tools = ToolRegistry(knowledge=knowledge)
        await tools.start(settings.catalog)
        keys = Keys(prefix=settings.redis_prefix)
        instance_id = secrets.token_hex(6)
        conversations = ConversationStore(pool)
        ledger = Ledger(pool)
        reply_log = ReplyLog(
            redis,
            keys,
            Appender(redis, interval=settings.stream_write_interval_ms / 1000),
            retention_seconds=settings.reply_retention_seconds,
        )
        memory = ConversationMemory(redis, keys, conversations, size=settings.history_cache_size)
        budget = TokenBudget(redis, keys)
        deps = ReplyDeps(
            log=reply_log,
            ledger=ledger,
            router=router,
            budget=budget,
            memory=memory,
            feeds=LocalFeeds(),
            tools=ToolDeps(
                store=ToolCallStore(pool),
                confirmations=Confirmations(redis, keys),
                confirm_timeout=settings.tool_confirm_timeout_seconds,
            ),
            owner=instance_id,
            lease_ms=int(settings.lease_ttl_seconds * 1000),
            classifiers=Classifiers(
                router, ModerationClient(connect_timeout=settings.connect_timeout)
            ),
            tracing=tracing,
        )
        replies = ReplyService(redis=redis, keys=keys, deps=deps, conversations=conversations)
        operations = await Operations.start(
            settings,
            pool=pool,
            conversations=conversations,
            replies=replies,
            router=router,
            budget=budget,
        )
        chat = ChatService(
            catalog=catalog,
            conversations=conversations,
            sessions=SessionStore(redis, keys, ttl_seconds=settings.session_ttl_seconds),
            memory=memory,
            replies=replies,
            router=router,
            budget=budget,
            tools=tools,
            default_model=settings.default_model,
            limits=MessageLimits(settings.max_message_chars),
            tracing=tracing,
            held=operations.desk,
            knowledge=knowledge,
            admission=Lane(settings.accept_concurrency),
        )
        replies.run_background(sweep_interval=settings.lease_ttl_seconds / 2)
        log.info(
            "instance %s ready: catalog %s, default model %s",
            instance_id,
            catalog.current.version,
            settings.default_model,
        )
        return cls(
            settings=settings,
            verifier=verifier,
            pool=pool,
            redis=redis,
            catalog=catalog,
            router=router,
            tools=tools,
            conversations=conversations,
            ledger=ledger,
            replies=replies,
            chat=chat,
            instance_id=instance_id,
            operations=operations,
            guests=guests,
            chat_verifier=ChatVerifier(verifier, guests.tokens),
            tracing=tracing,
            knowledge=knowledge,
        )

    async def reload(self) -> Catalog:
        """Read the catalog and the tools again; each swaps only if it loads whole.

        The catalog goes first: it checks that every tool a rule set names is
        declared, so a bad reference leaves both as they were.
        """
        catalog = self.catalog.reload()
        await self.tools.reload()
        if self.knowledge is not None:
            await sync_knowledge(self.knowledge)
        return catalog

    async def close(self, *, stop_now: asyncio.Event | None = None) -> None:
        """Stop, letting running replies finish first unless ``stop_now`` is set."""
        await self.replies.shutdown(self.settings.shutdown_grace_seconds, stop_now=stop_now)
        await self.operations.close()  # after the replies: their hooks may still queue handoffs
        await self.tools.aclose()
        if self.knowledge is not None:
            await self.knowledge.aclose()
        await self.router.aclose()
        await self.replies.deps.classifiers.aclose()
        await self.replies.log.appender.aclose()
        await self.redis.aclose()
        await self.pool.close()
        self.tracing.shutdown()  # sends the spans still buffered


async def sync_knowledge(knowledge: Knowledge) -> None:
    """Ingest what changed in the catalog's collections (unchanged files cost a hash each).

    A failure leaves the stored chunks as they were: chats go on with them,
    and the next start or reload tries again.
    """
    try:
        reports = await knowledge.sync()
    except Exception:
        log.exception("ingesting the knowledge collections failed; the stored chunks stay")
        return
    for report in reports:
        if report.changed or report.failed or report.embedding_error:
            log.info("knowledge %s", report.summary())
