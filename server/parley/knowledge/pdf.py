"""PDF to text with pypdf (pure Python): one section per page, so chunks know their page.

PDFs carry no reliable heading structure, so a PDF's sections have the
document's title as their only heading; paragraphs are the text's own blank
lines. A PDF that is encrypted, damaged or only images yields an error or
no text, never a crash of the ingestion around it.
"""

from __future__ import annotations

import io
import logging

from parley.knowledge.documents import ParsedDocument, Section, UnreadableDocument, normalise

# pypdf logs every oddity of a real-world PDF as a warning; one line per file is enough.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def read_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("encrypted PDF")
        metadata = reader.metadata
        title = str(metadata.title).strip() if metadata is not None and metadata.title else ""
        sections = []
        for number, page in enumerate(reader.pages, 1):
            text = normalise(page.extract_text() or "")
            if text:
                sections.append(Section((), text, page=number))
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as error:
        if isinstance(error, UnreadableDocument):
            raise
        raise UnreadableDocument(f"unreadable PDF: {error}") from None
    return ParsedDocument(title or fallback_title, "pdf", tuple(sections))
