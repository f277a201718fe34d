"""Cutting a document into chunks that follow its structure.

A chunk never spans two sections (so its heading path and page are exact)
and prefers whole paragraphs: paragraphs of one section are packed together
up to ``target`` characters; a paragraph longer than ``limit`` is cut at
sentence ends, and a sentence longer than that at spaces. Chunks of a few
hundred tokens are what retrieval wants: big enough to carry an answer,
small enough that several fit in a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from parley.knowledge.documents import ParsedDocument, Section, normalise
from parley.llm.tokens import estimate_tokens

TARGET_CHARS = 900
LIMIT_CHARS = 1500
HEADING_SEPARATOR = " \u203a "  # a single right-pointing angle quotation mark

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    ordinal: int  # position in the document, from 0
    heading_path: tuple[str, ...]
    page: int | None
    heading: str  # the document's title and heading path as one line
    body: str

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.body)


def chunk_document(
    document: ParsedDocument, *, target: int = TARGET_CHARS, limit: int = LIMIT_CHARS
) -> list[Chunk]:
    chunks: list[Chunk] = []
    title = " ".join(normalise(document.title).split())
    for section in document.sections:
        path = tuple(" ".join(normalise(h).split()) for h in section.heading_path)
        heading = heading_line(title, path)
        for body in _pack(_pieces(section, limit), target):
            chunks.append(Chunk(len(chunks), path, section.page, heading, body))
    return chunks


def heading_line(title: str, path: tuple[str, ...]) -> str:
    """``Title > Section > Subsection`` (joined by HEADING_SEPARATOR); a path that starts
    with the title does not repeat it."""
    parts = list(path)
    if not parts or parts[0] != title:
        parts.insert(0, title)
    return HEADING_SEPARATOR.join(parts)


def _pieces(section: Section, limit: int) -> Iterator[str]:
    """The section's paragraphs, each at most ``limit`` characters."""
    for paragraph in section.text.split("\n\n"):
        if len(paragraph) <= limit:
            yield paragraph
        else:
            yield from _split_long(paragraph, limit)


def _split_long(paragraph: str, limit: int) -> Iterator[str]:
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        for part in _hard_wrap(sentence, limit):
            if current and len(current) + 1 + len(part) > limit:
                yield current
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        yield current


def _hard_wrap(text: str, limit: int) -> Iterator[str]:
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        yield text[:cut].rstrip()
        text = text[cut:].lstrip()
    if text:
        yield text


def _pack(pieces: Iterator[str], target: int) -> Iterator[str]:
    """Consecutive paragraphs joined while the chunk stays within ``target``."""
    current: list[str] = []
    size = 0
    for piece in pieces:
        if current and size + 2 + len(piece) > target:
            yield "\n\n".join(current)
            current, size = [], 0
        current.append(piece)
        size += len(piece) + (2 if size else 0)
    if current:
        yield "\n\n".join(current)
