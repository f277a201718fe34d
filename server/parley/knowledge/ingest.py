"""Ingestion: keeping a collection's chunks in step with its documents.

A folder sync is incremental. Every file's bytes are hashed; a file whose
hash is stored already is skipped, a new or changed one is parsed, chunked
and replaced whole (in one transaction), and a catalog document whose file
is gone is removed. Uploaded documents are never removed by a sync. When an
embedding space is configured, chunks without a vector in it are embedded
afterwards, so a sync also catches up after a failed embedding call or a
change of model.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from parley.knowledge.chunking import chunk_document
from parley.knowledge.documents import UnreadableDocument, kind_of, parse
from parley.knowledge.embeddings import EmbeddingCall, EmbeddingError
from parley.knowledge.progress import ProgressBar
from parley.knowledge.store import KnowledgeStore, StoredDocument, UsageRow
from parley.knowledge.vectors import Embedding

log = logging.getLogger(__name__)

EMBED_PAGE = 256  # chunks read and embedded per step
_LOCK = 0x5041524E  # with the collection's hash: one sync of a collection at a time


@dataclass(slots=True)
class IngestReport:
    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)  # "name: reason"
    chunks: int = 0  # chunks written
    embedded: int = 0  # chunks given a vector
    embedding_error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.embedded)

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.updated)} updated",
            f"{len(self.removed)} removed",
            f"{self.unchanged} unchanged",
        ]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        line = f"{self.collection}: {', '.join(parts)} ({self.chunks} chunks written"
        line += f", {self.embedded} embedded)" if self.embedded else ")"
        if self.embedding_error:
            line += f"; embedding failed: {self.embedding_error}"
        return line


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str  # the path inside the collection's folder, with "/"
    path: Path


def source_files(folder: Path) -> Iterator[SourceFile]:
    """The supported files under ``folder``, by name; hidden files and folders skipped."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if kind_of(path.name) is not None:
            yield SourceFile(relative.as_posix(), path)


def _listed(folder: Path) -> list[SourceFile]:
    return list(source_files(folder)) if folder.is_dir() else []


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ingestor:
    def __init__(self, store: KnowledgeStore, embedding: Embedding | None = None) -> None:
        self.store = store
        self.embedding = embedding

    async def sync_folder(
        self, collection: str, folder: Path, *, progress: bool = False
    ) -> IngestReport:
        """Bring the collection's catalog documents in line with the folder's files."""
        report = IngestReport(collection)
        async with self._locked(collection):
            stored = {d.name: d for d in await self.store.documents(collection)}
            files = await asyncio.to_thread(_listed, folder)
            bar = ProgressBar(f"ingest {collection}", len(files)) if progress else None
            for source in files:
                data = await asyncio.to_thread(source.path.read_bytes)
                await self._put(report, collection, source.name, data, "catalog", stored)
                if bar is not None:
                    bar.advance(note=source.name)
            if bar is not None:
                bar.close()
            present = {source.name for source in files}
            gone = [n for n, d in stored.items() if d.origin == "catalog" and n not in present]
            if gone:
                await self.store.delete_documents(collection, gone)
                report.removed = sorted(gone)
            await self._embed_missing(report, progress=progress)
        return report

    async def put_upload(
        self, collection: str, name: str, data: bytes
    ) -> tuple[StoredDocument, IngestReport]:
        """Store one uploaded document (replacing an upload of that name)."""
        report = IngestReport(collection)
        async with self._locked(collection):
            existing = await self.store.document(collection, name)
            stored = {name: existing} if existing is not None else {}
            await self._put(report, collection, name, data, "upload", stored)
            if report.failed:
                raise UnreadableDocument(report.failed[0])
            await self._embed_missing(report)
        document = await self.store.document(collection, name)
        assert document is not None
        return document, report

    async def delete(self, collection: str, names: Sequence[str]) -> int:
        """Remove documents (under the collection's lock, like every change to it)."""
        async with self._locked(collection):
            return await self.store.delete_documents(collection, names)

    async def _put(
        self,
        report: IngestReport,
        collection: str,
        name: str,
        data: bytes,
        origin: str,
        stored: dict[str, StoredDocument],
    ) -> None:
        digest = content_hash(data)
        previous = stored.get(name)
        if previous is not None and (previous.content_hash, previous.origin) == (digest, origin):
            report.unchanged += 1
            return
        try:
            parsed = await asyncio.to_thread(parse, name, data)
        except UnreadableDocument as error:
            log.warning("knowledge %s/%s skipped: %s", collection, name, error)
            report.failed.append(f"{name}: {error}")
            return
        chunks = await asyncio.to_thread(chunk_document, parsed)
        await self.store.put_document(
            collection=collection,
            name=name,
            origin=origin,
            parsed=parsed,
            content_hash=digest,
            size=len(data),
            chunks=chunks,
        )
        report.chunks += len(chunks)
        (report.added if previous is None else report.updated).append(name)

    async def _embed_missing(self, report: IngestReport, *, progress: bool = False) -> None:
        if self.embedding is None:
            return
        while batch := await self.embedding.index.missing(report.collection, EMBED_PAGE):
            ids = [chunk_id for chunk_id, _ in batch]
            try:
                embedded = await self.embedding.embedder.embed([text for _, text in batch])
            except EmbeddingError as error:
                # The chunks stay searchable by full text; the next sync tries again.
                log.warning("embedding %s failed: %s", report.collection, error)
                report.embedding_error = str(error)
                await self.store.record_usage(
                    [ingest_usage(call, report.collection) for call in error.calls]
                )
                return
            await self.embedding.index.store(ids, embedded.vectors)
            await self.store.record_usage(
                [ingest_usage(call, report.collection) for call in embedded.calls]
            )
            report.embedded += len(ids)
            if progress:
                log.info("%s: %d chunks embedded", report.collection, report.embedded)

    @asynccontextmanager
    async def _locked(self, collection: str) -> AsyncIterator[None]:
        async with self.store.pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1, hashtext($2))", _LOCK, collection)
            try:
                yield
            finally:
                await connection.execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK, collection
                )


def ingest_usage(call: EmbeddingCall, collection: str) -> UsageRow:
    return usage_row(call, "ingest", collection=collection)


def usage_row(
    call: EmbeddingCall,
    purpose: str,
    *,
    collection: str | None = None,
    user_id: str | None = None,
    conversation_id: UUID | None = None,
    reply_id: UUID | None = None,
) -> UsageRow:
    return UsageRow(
        purpose=purpose,
        provider=call.model.provider,
        model=call.model.name,
        input_tokens=call.input_tokens,
        cost_usd=call.cost_usd,
        estimated=call.estimated,
        latency_ms=call.latency_ms,
        status="error" if call.error else "ok",
        error=call.error,
        collection=collection,
        user_id=user_id,
        conversation_id=conversation_id,
        reply_id=reply_id,
    )
