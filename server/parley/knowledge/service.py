"""The knowledge bases of a running Parley: ingestion, retrieval, and their mode.

Built once at start-up (:meth:`Knowledge.start`), which also decides the
mode: ``hybrid`` when an embeddings model is configured and Postgres has
pgvector, ``full-text`` otherwise, and says which (and why) in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from parley.config import Settings
from parley.knowledge.citations import passage, source_entry, within_budget
from parley.knowledge.embeddings import Embedder, EmbeddingCall
from parley.knowledge.folders import KNOWLEDGE_DIR, declared_collections
from parley.knowledge.ingest import Ingestor, IngestReport, usage_row
from parley.knowledge.prompt import Passage
from parley.knowledge.retrieval import Retriever, first_query, search_queries
from parley.knowledge.store import Hit, KnowledgeStore
from parley.knowledge.vectors import Embedding, VectorIndex
from parley.llm.base import ChatMessage, ModelRef

log = logging.getLogger("parley.knowledge")


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What a reply was given: passages for the prompt, sources for the client."""

    passages: tuple[Passage, ...]
    sources: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Asker:
    """Who a search is for, so its embedding call is accounted to them."""

    user_id: str | None = None
    conversation_id: UUID | None = None
    reply_id: UUID | None = None


class Knowledge:
    def __init__(
        self,
        store: KnowledgeStore,
        root: Path,
        *,
        embedding: Embedding | None = None,
        mode_note: str = "",
        top_k: int = 5,
        context_share: float = 0.25,
    ) -> None:
        self.store = store
        self.root = root
        self.embedding = embedding
        self.retriever = Retriever(store, embedding)
        self.ingestor = Ingestor(store, embedding)
        self.top_k = top_k
        self.context_share = context_share
        self._mode_note = mode_note
        # Embeddings configured but unusable (no pgvector): worth a warning at start.
        self.degraded = False

    @classmethod
    async def start(
        cls,
        pool: asyncpg.Pool,
        settings: Settings,
        cost: Callable[[ModelRef, int, int], float],
    ) -> Knowledge:
        """Ready the store and, when configured and possible, vectors."""
        store = KnowledgeStore(pool)

        def knowledge(note: str, embedding: Embedding | None = None) -> Knowledge:
            return cls(
                store,
                settings.catalog,
                embedding=embedding,
                mode_note=note,
                top_k=settings.knowledge_top_k,
                context_share=settings.knowledge_context_share,
            )

        dimensions = settings.embeddings_space_dimensions
        if settings.embeddings_model is None or dimensions is None:
            return knowledge("no PARLEY_EMBEDDINGS_MODEL")
        embedder = Embedder(
            ModelRef.parse(settings.embeddings_model),
            dimensions=dimensions,
            send_dimensions=settings.embeddings_dimensions is not None,
            base_url=settings.embeddings_base_url or settings.openai_base_url,
            api_key=settings.embeddings_api_key or settings.openai_api_key,
            cost=lambda model, tokens: cost(model, tokens, 0),
        )
        vectors = await VectorIndex.enable(pool, embedder.space, dimensions)
        if isinstance(vectors, str):
            await embedder.aclose()
            model = settings.embeddings_model
            degraded = knowledge(f"{model} is set but Postgres has no pgvector: {vectors}")
            degraded.degraded = True
            return degraded
        return knowledge(embedder.space, Embedding(embedder, vectors))

    @property
    def mode(self) -> str:
        return "hybrid" if self.retriever.hybrid else "full-text"

    def describe(self) -> str:
        """The start-up line saying how questions are searched."""
        if self.retriever.hybrid:
            return f"KNOWLEDGE: hybrid search (Postgres full text + pgvector, {self._mode_note})"
        return f"KNOWLEDGE: full-text search only ({self._mode_note})"

    def collections(self) -> list[str]:
        return sorted(declared_collections(self.root))

    async def sync(
        self, only: str | None = None, *, prune: bool = False, progress: bool = False
    ) -> list[IngestReport]:
        """Ingest the catalog's collections (or one), incrementally.

        ``prune`` also removes the catalog documents of collections whose folder
        is gone. Only ``parley ingest`` does: instances share the database, and one
        started with an older catalog (mid-deploy) must not delete a newer one's.
        """
        names = self.collections()
        if prune and only is None:
            await self.store.delete_catalog_collections(names)
        folder = self.root / KNOWLEDGE_DIR
        return [
            await self.ingestor.sync_folder(name, folder / name, progress=progress)
            for name in names
            if only is None or name == only
        ]

    async def search(
        self, collections: Sequence[str], query: str, limit: int, asker: Asker
    ) -> list[Hit]:
        found = await self.retriever.search(collections, query, limit)
        await self._account(found.calls, asker)
        return found.hits

    async def retrieve(
        self,
        *,
        collections: Sequence[str],
        history: Sequence[ChatMessage],
        newest: str,
        budget_tokens: int,
        count: Callable[[str], int],
        conversation_id: str,
        asker: Asker,
        early: tuple[str, Awaitable[list[Hit]]] | None = None,
    ) -> Retrieval:
        """The passages for the newest message, within the prompt's token share.

        ``early`` is a search already under way (:meth:`search_early`) and its
        query: used if that query is one to search, else left alone.
        A failed search costs the reply its passages, not the user their answer.
        """
        hits: list[Hit] = []
        try:
            for query in search_queries(history, newest):
                if early is not None and query == early[0]:
                    hits = await early[1]
                else:
                    hits = await self.search(collections, query, self.top_k * 2, asker)
                if hits:
                    break
        except Exception:
            log.warning("knowledge search failed; replying without passages", exc_info=True)
            return Retrieval((), ())
        chosen = within_budget(hits, budget_tokens, count, self.top_k)
        return Retrieval(
            passages=tuple(passage(n, hit) for n, hit in enumerate(chosen, 1)),
            sources=tuple(source_entry(n, hit, conversation_id) for n, hit in enumerate(chosen, 1)),
        )

    def search_early(
        self, collections: Sequence[str], newest: str, asker: Asker
    ) -> tuple[str, asyncio.Task[list[Hit]]] | None:
        """Start the search :meth:`retrieve` will make first, before the history it
        needs is read (None when the query depends on the history).

        The search was one more round trip to Postgres after the history's on the
        way to the first token; started with the reply's other reads, it hides
        behind them. Whoever does not pass it to :meth:`retrieve` cancels it.
        """
        query = first_query(newest)
        if query is None or not query.strip():
            return None
        task = asyncio.create_task(self.search(collections, query, self.top_k * 2, asker))
        task.add_done_callback(_retrieved)
        return query, task

    def budget(self, context_window: int, reply_tokens: int) -> int:
        return int(max(context_window - reply_tokens, 0) * self.context_share)

    async def aclose(self) -> None:
        if self.embedding is not None:
            await self.embedding.embedder.aclose()

    async def _account(self, calls: Sequence[EmbeddingCall], asker: Asker) -> None:
        if not calls:
            return
        try:
            await self.store.record_usage(
                [
                    usage_row(
                        call,
                        "query",
                        user_id=asker.user_id,
                        conversation_id=asker.conversation_id,
                        reply_id=asker.reply_id,
                    )
                    for call in calls
                ]
            )
        except Exception as error:  # accounting must not cost the user their answer
            log.warning("could not store the usage of a question's embedding: %s", error)


def _retrieved(task: asyncio.Task[list[Hit]]) -> None:
    """An early search nobody awaited (cancelled, or its reply never opened) must not
    be logged as a forgotten exception; retrieve logs the failures it uses."""
    if not task.cancelled():
        task.exception()
