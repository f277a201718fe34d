"""Knowledge collections and the documents uploaded to them."""

from __future__ import annotations

from functools import partial

from parley.transport.bodies.knowledge import Collections, Documents, Uploaded
from parley.transport.openapi.registry import Access, Answer, Operation, answer, nothing, ok

# Only admins see and change what the agents search.
knowledge = partial(Operation, tag="knowledge", access=Access.ADMIN)

DOCUMENTS = "/v1/admin/knowledge/{collection}/documents"

KNOWLEDGE = (
    knowledge(
        "GET",
        "/v1/admin/knowledge",
        "Knowledge collections",
        ok(Collections, "Each collection, its size and the agents that search it."),
        errors=(404,),
    ),
    knowledge(
        "GET",
        DOCUMENTS,
        "The documents of a collection",
        ok(Documents, "The documents."),
        errors=(404,),
    ),
    knowledge(
        "PUT",
        f"{DOCUMENTS}/{{name}}",
        "Upload a document; it is searchable when this returns",
        {
            200: answer(Uploaded, "Replaced."),
            201: answer(Uploaded, "Added."),
        },
        raw_body=Answer(
            "The document's bytes (Markdown, text, HTML or PDF, by the name's extension).",
            media_type="application/octet-stream",
            schema={"type": "string", "format": "binary"},
        ),
        errors=(404, 413, 422),
    ),
    knowledge(
        "DELETE",
        f"{DOCUMENTS}/{{name}}",
        "Delete an uploaded document",
        {204: nothing("Deleted.")},
        errors=(404, 422),
    ),
)
