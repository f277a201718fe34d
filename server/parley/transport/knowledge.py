"""Knowledge over HTTP: the admin API for collections, and the source viewer.

The viewer serves one chunk as plain text, under a policy that lets the
browser run and load nothing, and only to the owner of a conversation whose
agent may search that chunk's collection: a citation link is no way into
another agent's documents.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from parley.auth.tokens import Principal
from parley.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from parley.knowledge.citations import source_title
from parley.knowledge.documents import KINDS, UnreadableDocument
from parley.knowledge.service import Knowledge
from parley.transport.bodies.base import respond
from parley.transport.bodies.knowledge import Collections, Documents, Uploaded
from parley.transport.http import current_user
from parley.transport.params import whole_number
from parley.transport.rest import services_of

# An uploaded document's name: one path segment with a supported extension.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,126}$")
_VIEWER_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}


def _admin(request: Request) -> Principal:
    user = current_user(request)
    if not user.admin:
        raise Forbidden("This needs the admin role.")
    return user


def _knowledge(request: Request) -> Knowledge:
    knowledge = services_of(request).knowledge
    if knowledge is None:
        raise NotFound("Knowledge bases are not enabled.")
    return knowledge


def _collection(request: Request, knowledge: Knowledge) -> str:
    collection: str = request.path_params["collection"]
    if collection not in knowledge.collections():
        raise NotFound(f"No collection {collection!r} (collections are folders of knowledge/).")
    return collection


def _document_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not _NAME.match(name) or ".." in name:
        raise BadRequest("name: one file name of letters, digits, '.', '_', '-' and spaces.")
    if not name.lower().endswith(tuple(KINDS)):
        raise BadRequest(f"name: the extension must be one of {', '.join(sorted(KINDS))}.")
    return name


async def list_collections(request: Request) -> Response:
    _admin(request)
    knowledge = _knowledge(request)
    documents = await knowledge.store.documents()
    agents = services_of(request).catalog.current.agents.values()
    collections = []
    for name in knowledge.collections():
        mine = [d for d in documents if d.collection == name]
        collections.append(
            {
                "id": name,
                "documents": len(mine),
                "chunks": sum(d.chunks for d in mine),
                "agents": sorted(a.id for a in agents if name in a.knowledge),
            }
        )
    return respond(Collections.model_validate({"mode": knowledge.mode, "collections": collections}))


async def list_documents(request: Request) -> Response:
    _admin(request)
    knowledge = _knowledge(request)
    collection = _collection(request, knowledge)
    documents = await knowledge.store.documents(collection)
    return respond(
        Documents.model_validate(
            {"collection": collection, "documents": [d.public() for d in documents]}
        )
    )


async def upload_document(request: Request) -> Response:
    """``PUT`` a document's bytes; it is searchable when this returns."""
    _admin(request)
    knowledge = _knowledge(request)
    collection = _collection(request, knowledge)
    name = _document_name(request)
    limit = services_of(request).settings.knowledge_max_upload_bytes
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > limit:
            raise TooLarge(f"Documents are limited to {limit} bytes.")
    existing = await knowledge.store.document(collection, name)
    if existing is not None and existing.origin == "catalog":
        raise Conflict(f"{name!r} is a file of knowledge/{collection}/: change it there.")
    try:
        document, report = await knowledge.ingestor.put_upload(collection, name, bytes(data))
    except UnreadableDocument as error:
        raise BadRequest(str(error)) from None
    body = {"document": document.public(), "changed": report.changed}
    if report.embedding_error:
        body["embedding_error"] = report.embedding_error
    return respond(Uploaded.model_validate(body), status_code=201 if existing is None else 200)


async def delete_document(request: Request) -> Response:
    _admin(request)
    knowledge = _knowledge(request)
    collection = _collection(request, knowledge)
    name = request.path_params["name"]
    # Postgres text holds no NUL: a name with one names no document.
    existing = await knowledge.store.document(collection, name) if "\x00" not in name else None
    if existing is None:
        raise NotFound(f"No document {name!r} in {collection!r}.")
    if existing.origin == "catalog":
        raise Conflict(f"{name!r} is a file of knowledge/{collection}/: delete it there.")
    await knowledge.ingestor.delete(collection, [name])
    return Response(status_code=204)


async def view_source(request: Request) -> Response:
    """A cited chunk as plain text, for the owner of a conversation allowed to see it."""
    user = current_user(request)
    services = services_of(request)
    knowledge = _knowledge(request)
    conversation = await services.conversations.get(
        user.user_id, request.path_params["conversation_id"]
    )
    chunk_id = whole_number(request.path_params["chunk_id"])
    chunk = await knowledge.store.chunk(chunk_id) if chunk_id is not None else None
    agent = services.chat.resolve_agent(conversation.agent_id)
    # The same answer for a missing chunk and a forbidden one: ids reveal nothing.
    if chunk is None or chunk.collection not in agent.knowledge:
        raise NotFound("No such source.")
    header = f"{source_title(chunk)}\n{chunk.collection}/{chunk.document}\n\n"
    return PlainTextResponse(header + chunk.body + "\n", headers=_VIEWER_HEADERS)


def knowledge_routes() -> list[BaseRoute]:
    documents = "/v1/admin/knowledge/{collection}/documents"
    return [
        Route("/v1/admin/knowledge", list_collections, methods=["GET"]),
        Route(documents, list_documents, methods=["GET"]),
        Route(documents + "/{name}", upload_document, methods=["PUT"]),
        Route(documents + "/{name}", delete_document, methods=["DELETE"]),
        Route(
            "/v1/conversations/{conversation_id}/sources/{chunk_id}", view_source, methods=["GET"]
        ),
    ]
