"""Vectors in Postgres, where the pgvector extension exists.

Not a migration: ``CREATE EXTENSION vector`` fails on a Postgres without
pgvector, and Parley must run there too (full-text search only). So start-up
tries it in a step of its own and, when it works, creates the embeddings
table and an HNSW index for the configured embedding space.

One table holds every space's vectors (``space`` is model and dimensions);
the column is an untyped ``vector``, and each space gets a partial index on
the vectors cast to its dimensions, which is what its searches use.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from parley.knowledge.embeddings import Embedder
from parley.knowledge.store import HIT_COLUMNS, Hit

log = logging.getLogger(__name__)

# pgvector's HNSW index takes vectors of up to 2,000 dimensions; wider ones are
# searched exactly (fine for a few thousand chunks; configure fewer dimensions beyond).
HNSW_MAX_DIMENSIONS = 2000
# How many candidates an HNSW scan keeps. The collection filter applies after
# the index scan (pgvector 0.6 has no iterative scans), so keep plenty.
EF_SEARCH = 200
_LOCK = 0x5041524B  # serialises the DDL between instances starting together
_SAFE_SPACE = re.compile(r"^[A-Za-z0-9._:/@+-]{1,200}$")


class VectorIndex:
    """The embeddings of one space: stored, looked up by chunk, searched."""

    def __init__(self, pool: asyncpg.Pool, space: str, dimensions: int) -> None:
        if not _SAFE_SPACE.match(space):  # it is written into DDL below
            raise ValueError(f"unsupported embedding space name {space!r}")
        self.pool = pool
        self.space = space
        self.dimensions = dimensions
        self._type = f"vector({int(dimensions)})"

    @classmethod
    async def enable(cls, pool: asyncpg.Pool, space: str, dimensions: int) -> VectorIndex | str:
        """The index, ready; or why vectors are unavailable (no pgvector, no permission)."""
        index = cls(pool, space, dimensions)
        async with pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", _LOCK)
            try:
                try:
                    async with connection.transaction():
                        await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except asyncpg.PostgresError as error:
                    return f"CREATE EXTENSION vector failed: {error}"
                async with connection.transaction():
                    await connection.execute(index._ddl())
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK)
        return index

    def _ddl(self) -> str:
        table = (
            "CREATE TABLE IF NOT EXISTS knowledge_embeddings ("
            " chunk_id bigint NOT NULL REFERENCES knowledge_chunks (id) ON DELETE CASCADE,"
            " space text NOT NULL, embedding vector NOT NULL, PRIMARY KEY (space, chunk_id));"
        )
        if self.dimensions > HNSW_MAX_DIMENSIONS:
            log.warning(
                "embeddings of %d dimensions cannot have an HNSW index (at most %d):"
                " vector searches scan every vector",
                self.dimensions,
                HNSW_MAX_DIMENSIONS,
            )
            return table
        name = "knowledge_embeddings_hnsw_" + hashlib.sha256(self.space.encode()).hexdigest()[:12]
        literal = self.space.replace("'", "''")
        return (
            f"{table} CREATE INDEX IF NOT EXISTS {name} ON knowledge_embeddings"
            f" USING hnsw ((embedding::{self._type}) vector_cosine_ops) WHERE space = '{literal}'"
        )

    async def missing(self, collection: str, limit: int) -> list[tuple[int, str]]:
        """Chunks of the collection without a vector in this space: ``(id, text to embed)``."""
        rows = await self.pool.fetch(
            "SELECT c.id, c.heading, c.body FROM knowledge_chunks c WHERE c.collection = $1"
            " AND NOT EXISTS (SELECT FROM knowledge_embeddings e"
            "  WHERE e.space = $2 AND e.chunk_id = c.id) ORDER BY c.id LIMIT $3",
            collection,
            self.space,
            limit,
        )
        return [(row["id"], embedding_text(row["heading"], row["body"])) for row in rows]

    async def store(self, chunk_ids: Sequence[int], vectors: Sequence[Sequence[float]]) -> None:
        await self.pool.execute(
            "INSERT INTO knowledge_embeddings (chunk_id, space, embedding)"
            " SELECT v.chunk_id, $1, v.embedding::vector"
            " FROM unnest($2::bigint[], $3::text[]) AS v (chunk_id, embedding)"
            " WHERE EXISTS (SELECT FROM knowledge_chunks c WHERE c.id = v.chunk_id)"
            " ON CONFLICT (space, chunk_id) DO UPDATE SET embedding = EXCLUDED.embedding",
            self.space,
            list(chunk_ids),
            [vector_literal(vector) for vector in vectors],
        )

    async def search(
        self, collections: Sequence[str], vector: Sequence[float], limit: int
    ) -> list[Hit]:
        """The nearest chunks by cosine distance; ``score`` is the cosine similarity."""
        if not collections:
            return []
        cast = f"::{self._type}"
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}")
            rows = await connection.fetch(
                f"SELECT {HIT_COLUMNS}, 1 - (e.embedding{cast} <=> $3::text{cast}) AS score"
                " FROM knowledge_embeddings e JOIN knowledge_chunks c ON c.id = e.chunk_id"
                " JOIN knowledge_documents d ON d.id = c.document_id"
                " WHERE e.space = $2 AND c.collection = ANY($1::text[])"
                f" ORDER BY e.embedding{cast} <=> $3::text{cast} LIMIT $4",
                list(collections),
                self.space,
                vector_literal(vector),
                limit,
            )
        return [Hit.from_row(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Embedding:
    """Vector search: the model that embeds and the index that keeps its vectors.

    Ingestion and retrieval take both or neither (then full text alone): the
    index cannot be searched without the model to embed a question, nor the
    model's vectors kept without the index.
    """

    embedder: Embedder
    index: VectorIndex


def embedding_text(heading: str, body: str) -> str:
    """What a chunk is embedded as: its heading line gives the body its topic."""
    return f"{heading}\n\n{body}"


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form; asyncpg has no codec for the type."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"
