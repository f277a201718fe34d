"""Documents, chunks and their searches in Postgres.

Every search takes the collections it may look in: the caller (retrieval,
the ``knowledge_search`` tool, the source viewer) passes the agent's own,
so no query here can reach another agent's documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from parley.knowledge.chunking import Chunk
from parley.knowledge.documents import ParsedDocument

# A chat question rarely has every word of its answer's passage, so a chunk
# sharing any of the question's lexemes is a candidate, scored by
#   the share of the question's weight it covers, each lexeme weighted by its
#     rarity in the searched collections (idf = ln(1 + N / df), from the
#     statistics ingestion keeps): "wireless" tells more than "use", and a
#     chunk with two rare words beats one repeating a common one;
#   + 1 if it matches websearch_to_tsquery (every word, quoted phrases, -words);
#   + ts_rank (term frequency, headings weighted over the body), to break ties.
# In a large collection only the rarer lexemes (in at most COMMON_SHARE of the
# chunks, and always the two rarest) choose the candidates: a word in many
# chunks would make them all candidates, and scoring them costs more than the
# rest of the search (docs/performance.md, "Knowledge bases").
COMMON_SHARE = 0.02
COMMON_MIN_CHUNKS = 50  # below this a lexeme is never "common"
_QUERIES = (
    "WITH q AS (SELECT websearch_to_tsquery('english', $2) AS strict,"
    "  tsvector_to_array(to_tsvector('english', $2)) AS lexemes),"
    " total AS (SELECT greatest(coalesce(sum(chunks), 0), 1)::float8 AS n"
    "  FROM knowledge_collections WHERE collection = ANY($1::text[])),"
    " counted AS (SELECT quote_literal(l)::tsquery AS term, sum(t.df) AS df"
    "  FROM q, unnest(q.lexemes) l JOIN knowledge_terms t"
    "  ON t.lexeme = l AND t.collection = ANY($1::text[]) GROUP BY l HAVING sum(t.df) > 0),"
    " terms AS (SELECT term, ln(1 + total.n / df) AS idf,"
    f"  df <= greatest(total.n * {COMMON_SHARE}, {COMMON_MIN_CHUNKS}) AS rare,"
    "  row_number() OVER (ORDER BY df) AS rarity FROM counted, total),"
    " loose AS (SELECT coalesce(string_agg(term::text, ' | ')"
    "  FILTER (WHERE rare OR rarity <= 2), '')::tsquery AS query,"
    "  greatest(sum(idf), 1e-9) AS weight FROM terms)"
)
HIT_COLUMNS = (
    "c.id, c.collection, d.name, d.title, c.heading_path, c.page, c.heading, c.body, c.tokens"
)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    id: int
    collection: str
    name: str
    origin: str
    kind: str
    title: str
    content_hash: str
    bytes: int
    chunks: int
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "name": self.name,
            "origin": self.origin,
            "kind": self.kind,
            "title": self.title,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "sha256": self.content_hash,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk found by a search, with its rank's score in that search."""

    chunk_id: int
    collection: str
    document: str  # the document's name in its collection
    title: str  # the document's title
    heading_path: tuple[str, ...]
    page: int | None
    heading: str
    body: str
    tokens: int
    score: float

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Hit:
        return cls(
            chunk_id=row["id"],
            collection=row["collection"],
            document=row["name"],
            title=row["title"],
            heading_path=tuple(row["heading_path"]),
            page=row["page"],
            heading=row["heading"],
            body=row["body"],
            tokens=row["tokens"],
            score=float(row.get("score") or 0.0),
        )


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One embedding call, for ``knowledge_usage``."""

    purpose: str  # ingest or query
    provider: str
    model: str
    input_tokens: int
    cost_usd: float
    estimated: bool
    latency_ms: int
    status: str  # ok or error
    error: str | None = None
    collection: str | None = None
    user_id: str | None = None
    conversation_id: Any = None  # UUID
    reply_id: Any = None  # UUID


class KnowledgeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- documents -----------------------------------------------------------------

    async def documents(self, collection: str | None = None) -> list[StoredDocument]:
        """Documents with their chunk counts, by collection and name."""
        rows = await self.pool.fetch(
            "SELECT d.*, (SELECT count(*) FROM knowledge_chunks c WHERE c.document_id = d.id)"
            " AS chunks FROM knowledge_documents d"
            " WHERE $1::text IS NULL OR d.collection = $1 ORDER BY d.collection, d.name",
            collection,
        )
        return [_document(row) for row in rows]

    async def document(self, collection: str, name: str) -> StoredDocument | None:
        rows = await self.pool.fetch(
            "SELECT d.*, (SELECT count(*) FROM knowledge_chunks c WHERE c.document_id = d.id)"
            " AS chunks FROM knowledge_documents d WHERE d.collection = $1 AND d.name = $2",
            collection,
            name,
        )
        return _document(rows[0]) if rows else None

    async def put_document(
        self,
        *,
        collection: str,
        name: str,
        origin: str,
        parsed: ParsedDocument,
        content_hash: str,
        size: int,
        chunks: Sequence[Chunk],
    ) -> int:
        """Insert or replace a document and all its chunks, in one transaction."""
        async with self.pool.acquire() as connection, connection.transaction():
            document_id: int = await connection.fetchval(
                "INSERT INTO knowledge_documents (collection, name, origin, kind, title,"
                " content_hash, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (collection, name) DO UPDATE SET origin = EXCLUDED.origin,"
                " kind = EXCLUDED.kind, title = EXCLUDED.title,"
                " content_hash = EXCLUDED.content_hash, bytes = EXCLUDED.bytes,"
                " updated_at = now() RETURNING id",
                collection,
                name,
                origin,
                parsed.kind,
                parsed.title,
                content_hash,
                size,
            )
            await _forget_statistics(connection, [document_id])
            await connection.execute(
                "DELETE FROM knowledge_chunks WHERE document_id = $1", document_id
            )
            await connection.execute(
                "INSERT INTO knowledge_chunks (document_id, collection, ordinal, heading_path,"
                " page, heading, body, tokens) SELECT $1, $2, c.ordinal,"
                " CASE WHEN c.path = '' THEN '{}'::text[] ELSE string_to_array(c.path, chr(31))"
                " END, c.page, c.heading, c.body, c.tokens FROM unnest($3::int[], $4::text[],"
                " $5::int[], $6::text[], $7::text[], $8::int[])"
                " AS c (ordinal, path, page, heading, body, tokens)",
                document_id,
                collection,
                [chunk.ordinal for chunk in chunks],
                # unnest cannot take a text[] per chunk: each path goes as one text,
                # joined by U+001F, which normalised text never contains.
                ["\x1f".join(chunk.heading_path) for chunk in chunks],
                [chunk.page for chunk in chunks],
                [chunk.heading for chunk in chunks],
                [chunk.body for chunk in chunks],
                [chunk.tokens for chunk in chunks],
            )
            await _count_statistics(connection, document_id)
        return document_id

    async def delete_documents(self, collection: str, names: Sequence[str]) -> int:
        return await self._delete(
            "SELECT id FROM knowledge_documents WHERE collection = $1 AND name = ANY($2::text[])",
            collection,
            list(names),
        )

    async def delete_catalog_collections(self, keep: Sequence[str]) -> int:
        """Remove catalog documents of collections whose folder is gone (uploads stay)."""
        return await self._delete(
            "SELECT id FROM knowledge_documents WHERE origin = 'catalog'"
            " AND NOT collection = ANY($1::text[])",
            list(keep),
        )

    async def _delete(self, select_ids: str, *args: Any) -> int:
        """Delete the documents a query selects (their chunks go with them), and their
        chunks' share of the statistics, in one transaction."""
        async with self.pool.acquire() as connection, connection.transaction():
            ids = [row["id"] for row in await connection.fetch(select_ids, *args)]
            await _forget_statistics(connection, ids)
            await connection.execute(
                "DELETE FROM knowledge_documents WHERE id = ANY($1::bigint[])", ids
            )
        return len(ids)

    async def chunk(self, chunk_id: int) -> Hit | None:
        row = await self.pool.fetchrow(
            f"SELECT {HIT_COLUMNS} FROM knowledge_chunks c"
            " JOIN knowledge_documents d ON d.id = c.document_id WHERE c.id = $1",
            chunk_id,
        )
        return Hit.from_row(row) if row is not None else None

    # -- searching -------------------------------------------------------------------

    async def search_text(self, collections: Sequence[str], query: str, limit: int) -> list[Hit]:
        """Chunks sharing words with the query, best first (see _QUERIES for the score)."""
        if not collections:
            return []
        rows = await self.pool.fetch(
            f"{_QUERIES} SELECT {HIT_COLUMNS},"
            " (SELECT coalesce(sum(t.idf), 0) FROM terms t WHERE c.tsv @@ t.term) / loose.weight"
            " + (c.tsv @@ q.strict)::int + ts_rank(c.tsv, loose.query, 1) AS score"
            " FROM q, loose, knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
            " WHERE c.collection = ANY($1::text[]) AND c.tsv @@ loose.query"
            " ORDER BY score DESC, c.id LIMIT $3",
            list(collections),
            query,
            limit,
        )
        return [Hit.from_row(row) for row in rows]

    # -- usage -----------------------------------------------------------------------

    async def record_usage(self, rows: Sequence[UsageRow]) -> None:
        if not rows:
            return
        await self.pool.executemany(
            "INSERT INTO knowledge_usage (purpose, collection, user_id, conversation_id,"
            " reply_id, provider, model, input_tokens, cost_usd, estimated, latency_ms, status,"
            " error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            [
                (
                    row.purpose,
                    row.collection,
                    row.user_id,
                    row.conversation_id,
                    row.reply_id,
                    row.provider,
                    row.model,
                    row.input_tokens,
                    Decimal(str(round(row.cost_usd, 10))),
                    row.estimated,
                    row.latency_ms,
                    row.status,
                    row.error,
                )
                for row in rows
            ],
        )


async def _count_statistics(connection: asyncpg.Connection, document_id: int) -> None:
    """Add a document's chunks to its collection's statistics."""
    await connection.execute(
        "WITH counted AS (SELECT collection, lexeme, count(*) AS df"
        "  FROM knowledge_chunks, unnest(tsvector_to_array(tsv)) lexeme"
        "  WHERE document_id = $1 GROUP BY collection, lexeme ORDER BY lexeme)"
        " INSERT INTO knowledge_terms (collection, lexeme, df) SELECT * FROM counted"
        " ON CONFLICT (collection, lexeme) DO UPDATE SET df = knowledge_terms.df + EXCLUDED.df",
        document_id,
    )
    await connection.execute(
        "INSERT INTO knowledge_collections (collection, chunks)"
        " SELECT collection, count(*) FROM knowledge_chunks WHERE document_id = $1"
        " GROUP BY collection ON CONFLICT (collection)"
        " DO UPDATE SET chunks = knowledge_collections.chunks + EXCLUDED.chunks",
        document_id,
    )


async def _forget_statistics(connection: asyncpg.Connection, document_ids: Sequence[int]) -> None:
    """Take the documents' current chunks out of their collections' statistics."""
    emptied = await connection.fetch(
        "WITH counted AS (SELECT collection, lexeme, count(*) AS df"
        "  FROM knowledge_chunks, unnest(tsvector_to_array(tsv)) lexeme"
        "  WHERE document_id = ANY($1::bigint[]) GROUP BY collection, lexeme),"
        " lowered AS (UPDATE knowledge_terms t SET df = t.df - counted.df FROM counted"
        "  WHERE t.collection = counted.collection AND t.lexeme = counted.lexeme"
        "  RETURNING t.collection, t.lexeme, t.df)"
        " SELECT collection, lexeme FROM lowered WHERE df <= 0",
        list(document_ids),
    )
    # A statement of its own: the parts of one statement all see the rows as they were.
    await connection.execute(
        "DELETE FROM knowledge_terms t USING unnest($1::text[], $2::text[]) AS e (c, l)"
        " WHERE t.collection = e.c AND t.lexeme = e.l",
        [row["collection"] for row in emptied],
        [row["lexeme"] for row in emptied],
    )
    await connection.execute(
        "UPDATE knowledge_collections k SET chunks = k.chunks - gone.chunks"
        " FROM (SELECT collection, count(*) AS chunks FROM knowledge_chunks"
        "  WHERE document_id = ANY($1::bigint[]) GROUP BY collection) gone"
        " WHERE k.collection = gone.collection",
        list(document_ids),
    )


def _document(row: asyncpg.Record) -> StoredDocument:
    return StoredDocument(
        id=row["id"],
        collection=row["collection"],
        name=row["name"],
        origin=row["origin"],
        kind=row["kind"],
        title=row["title"],
        content_hash=row["content_hash"],
        bytes=row["bytes"],
        chunks=row["chunks"],
        updated_at=row["updated_at"],
    )
