"""Finding the passages for a question: full text, vectors, and their fusion.

With an embedding space, the full-text and the vector rankings are fused by
reciprocal rank fusion (each list adds ``1 / (K + rank)`` to a chunk's
score), which needs no calibration between their very different scores.
Without one, or when embedding the question fails, full text alone decides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from parley.knowledge.embeddings import EmbeddingCall, EmbeddingError
from parley.knowledge.store import Hit, KnowledgeStore
from parley.knowledge.vectors import Embedding
from parley.llm.base import ChatMessage

log = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al.; damps the weight of the very first ranks
CANDIDATES = 20  # per ranking, before fusion
QUERY_CHARS = 1000
# A follow-up that points back ("how do I reset it?") is searched together
# with the user's previous turn, which names what it means.
_REFERRING = re.compile(
    r"\b(?:it|its|that|this|those|these|they|them|there|one|ones|same|above|previous)\b",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Found:
    """A search's chunks, best first, and the embedding calls it made."""

    hits: list[Hit]
    calls: list[EmbeddingCall] = field(default_factory=list)
    hybrid: bool = False


def search_queries(history: Sequence[ChatMessage], newest: str) -> list[str]:
    """What to search for, in turn until one finds something: the newest message
    (with the previous user turn when it refers back to it), then the two together.

    A follow-up such as "what about the price?" names nothing to search for on its
    own; searched alone first, a follow-up that does ("and printers?") is not
    pulled back to the previous topic.
    """
    alone = " ".join(newest.split())
    previous = next((m.content for m in reversed(history) if m.role == "user"), None)
    if not previous:
        return [alone[-QUERY_CHARS:]]
    together = f"{' '.join(previous.split())} {alone}"[-QUERY_CHARS:]
    if _REFERRING.search(alone):
        return [together]
    return [alone[-QUERY_CHARS:], together]


def first_query(newest: str) -> str | None:
    """The query :func:`search_queries` puts first whatever the history holds, if
    there is one: the newest message alone, unless it refers back.

    Known before the history is read, so its search can run alongside that read.
    """
    alone = " ".join(newest.split())
    return None if _REFERRING.search(alone) else alone[-QUERY_CHARS:]


def fuse(rankings: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """Reciprocal rank fusion of several rankings of chunks; ``score`` becomes the fused one."""
    scores: dict[int, float] = {}
    first: dict[int, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, 1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit.chunk_id, hit)
    ordered = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:limit]
    return [_rescored(first[chunk_id], scores[chunk_id]) for chunk_id in ordered]


def _rescored(hit: Hit, score: float) -> Hit:
    return replace(hit, score=score)


class Retriever:
    def __init__(self, store: KnowledgeStore, embedding: Embedding | None = None) -> None:
        self.store = store
        self.embedding = embedding

    @property
    def hybrid(self) -> bool:
        return self.embedding is not None

    async def search(self, collections: Sequence[str], query: str, limit: int) -> Found:
        """The best ``limit`` chunks of ``collections`` for ``query``."""
        if not collections or not query.strip():
            return Found([])
        text_hits = await self.store.search_text(collections, query, max(limit, CANDIDATES))
        if self.embedding is None:
            return Found(text_hits[:limit])
        try:
            embedded = await self.embedding.embedder.embed([query])
        except EmbeddingError as error:
            log.warning("embedding the question failed; full-text results only: %s", error)
            return Found(text_hits[:limit], error.calls)
        vector_hits = await self.embedding.index.search(
            collections, embedded.vectors[0], max(limit, CANDIDATES)
        )
        return Found(fuse([text_hits, vector_hits], limit), embedded.calls, hybrid=True)
