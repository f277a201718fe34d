"""A minimal PDF writer for tests and the shipped example: pages of plain text lines.

Only what a text extractor needs: one Helvetica font, one content stream per
page (a line per ``Tj``), an info dictionary with the title, and a correct
cross-reference table. ``python -m support.pdf OUT.pdf < text`` writes a file
whose pages are separated by form feeds.
"""

from __future__ import annotations

from collections.abc import Sequence

LINE_HEIGHT = 15
TOP = 760


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: Sequence[Sequence[str]], *, title: str | None = None) -> bytes:
    """A PDF with one page per item of ``pages``, each a list of lines (Latin-1 text)."""
    objects: list[bytes] = []
    count = len(pages)
    first_page = 4  # 1 catalog, 2 pages, 3 font, then page and content pairs, then info
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, lines in enumerate(pages):
        content = [f"BT /F1 11 Tf {LINE_HEIGHT} TL 72 {TOP} Td"]
        content += [f"({_escape(line)}) Tj T*" for line in lines]
        content.append("ET")
        stream = "\n".join(content).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources"
            f" << /Font << /F1 3 0 R >> >> /Contents {first_page + 2 * index + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info = len(objects) + 1
    objects.append(f"<< /Title ({_escape(title or '')}) /Producer (parley tests) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info,
        xref,
    )
    return bytes(out)
