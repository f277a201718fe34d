"""Knowledge collections and their documents."""

from __future__ import annotations

from typing import Literal

from parley.transport.bodies.base import Closed


class CollectionInfo(Closed):
    id: str
    documents: int
    chunks: int
    agents: list[str]


class Collections(Closed):
    mode: str
    collections: list[CollectionInfo]


class DocumentInfo(Closed):
    collection: str
    name: str
    origin: Literal["catalog", "upload"]
    kind: str
    title: str
    bytes: int
    chunks: int
    sha256: str
    updated_at: str


class Documents(Closed):
    collection: str
    documents: list[DocumentInfo]


class Uploaded(Closed):
    document: DocumentInfo
    changed: bool
    embedding_error: str | None = None
