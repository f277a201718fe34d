"""A source file as text: its title and sections, whatever its format.

Each format has a reader of its own (Markdown and plain text here, HTML in
:mod:`.html`, PDF in :mod:`.pdf`); all of them produce the same
:class:`ParsedDocument`, which is all chunking and storage ever see. No
format's markup survives: an HTML document becomes text, never HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

Kind = Literal["markdown", "text", "html", "pdf"]

KINDS: dict[str, Kind] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class UnreadableDocument(ValueError):
    """The file is not a supported kind, or cannot be read as one."""


@dataclass(frozen=True, slots=True)
class Section:
    """Text under one heading path (and, in a PDF, starting on one page)."""

    heading_path: tuple[str, ...]
    text: str  # paragraphs separated by blank lines
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    title: str
    kind: Kind
    sections: tuple[Section, ...]


def kind_of(name: str) -> Kind | None:
    """The kind a file name's extension says, or None when it is not a supported one."""
    return KINDS.get(PurePosixPath(name).suffix.lower())


def parse(name: str, data: bytes) -> ParsedDocument:
    """Read a file's bytes as the kind its name says; UnreadableDocument when it cannot be."""
    kind = kind_of(name)
    fallback_title = title_from_name(name)
    if kind == "pdf":
        from parley.knowledge.pdf import read_pdf  # pypdf is only imported for PDFs

        return read_pdf(data, fallback_title)
    if kind is None:
        raise UnreadableDocument(f"{name}: not a supported kind ({', '.join(sorted(KINDS))})")
    text = decode(data, name)
    if kind == "html":
        from parley.knowledge.html import read_html

        return read_html(text, fallback_title)
    if kind == "markdown":
        return read_markdown(text, fallback_title)
    return ParsedDocument(fallback_title, "text", (Section((), normalise(text)),))


def decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableDocument(f"{name}: not UTF-8 text") from None


def title_from_name(name: str) -> str:
    """``password-reset.md`` → ``Password reset``."""
    stem = PurePosixPath(name).stem.replace("_", " ").replace("-", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else name


def read_markdown(text: str, fallback_title: str) -> ParsedDocument:
    """Sections by ATX headings (``#`` to ``######``); a ``#`` inside a code fence is code.

    The first level-1 heading is the title. Markdown markup stays in the text:
    models read it well, and the source viewer shows it as plain text.
    """
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    title: str | None = None
    fence: str | None = None

    def flush() -> None:
        body = normalise("\n".join(lines))
        if body:
            sections.append(Section(tuple(heading for _, heading in path), body))
        lines.clear()

    for line in text.splitlines():
        opened = _FENCE.match(line)
        if opened and (fence is None or opened[1].startswith(fence)):
            fence = opened[1][:3] if fence is None else None
        heading = _ATX_HEADING.match(line) if fence is None else None
        if heading is None:
            lines.append(line)
            continue
        flush()
        level, words = len(heading[1]), heading[2].strip()
        if level == 1 and title is None:
            title = words
        path = [(lvl, h) for lvl, h in path if lvl < level]
        path.append((level, words))
    flush()
    return ParsedDocument(title or fallback_title, "markdown", tuple(sections))


_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
# Control characters other than tab and newline: nothing a reader needs, and
# some (e.g. U+2028/U+2029, bidi overrides) would let a document disguise text.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def normalise(text: str) -> str:
    """Paragraphs separated by one blank line, runs of spaces as one, no control characters."""
    text = _CONTROLS.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
