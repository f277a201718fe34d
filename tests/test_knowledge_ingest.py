"""Reading, chunking and ingesting documents: every format, incremental syncs, uploads.

Ingestion runs against a database of its own (each test's), so the shared
servers' collections are never touched.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from parley.config import load_settings
from parley.knowledge.chunking import LIMIT_CHARS, chunk_document
from parley.knowledge.documents import ParsedDocument, Section, UnreadableDocument, parse
from parley.knowledge.ingest import Ingestor
from parley.knowledge.progress import ProgressBar
from parley.knowledge.service import Asker, Knowledge
from parley.knowledge.store import KnowledgeStore
from support.knowledge import migrated_database
from support.pdf import pdf_bytes
from support.storage import StorageURLs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def pool(storage: StorageURLs) -> AsyncIterator[asyncpg.Pool]:
    """A migrated database of the test's own."""
    async with migrated_database(storage.database_url) as pool:
        yield pool


# -- reading ---------------------------------------------------------------------


def test_markdown_sections_follow_headings_but_not_code() -> None:
    text = "# Guide\n\nIntro.\n\n## Setup\n\nStep one.\n\n```\n# a comment, not a heading\n```\n"
    text += "\n### Details\n\nDeep.\n\n## Use\n\nUse it."
    parsed = parse("guide.md", text.encode())
    assert parsed.title == "Guide"
    assert [s.heading_path for s in parsed.sections] == [
        ("Guide",),
        ("Guide", "Setup"),
        ("Guide", "Setup", "Details"),
        ("Guide", "Use"),
    ]
    assert "# a comment, not a heading" in parsed.sections[1].text


def test_html_becomes_text_without_scripts_styles_or_markup() -> None:
    page = (
        "<html><head><title>Help &amp; tips</title><style>p{color:red}</style>"
        "<script>alert('x')</script></head><body><h1>Help</h1><p>First\nline <b>bold</b>"
        "<script>document.cookie</script>.</p><noscript>enable js</noscript>"
        "<h2>More</h2><ul><li>one</li><li>two</li></ul><svg><text>drawn</text></svg>"
        "<p>&lt;img src=x onerror=alert(1)&gt;</p></body></html>"
    )
    parsed = parse("help.html", page.encode())
    assert parsed.title == "Help & tips"
    joined = "\n".join(s.text for s in parsed.sections)
    assert "First line bold." in joined
    for hidden in ("alert('x')", "document.cookie", "color:red", "enable js", "drawn"):
        assert hidden not in joined
    # Escaped markup in the page is text, and stays text (never parsed as HTML again).
    assert "<img src=x onerror=alert(1)>" in joined
    assert [s.heading_path for s in parsed.sections] == [("Help",), ("Help", "More")]


def test_pdf_pages_are_kept() -> None:
    data = pdf_bytes([["Page one text."], ["Page (two) text."]], title="Manual")
    parsed = parse("manual.pdf", data)
    assert parsed.title == "Manual"
    assert [(s.page, s.text) for s in parsed.sections] == [
        (1, "Page one text."),
        (2, "Page (two) text."),
    ]


def test_unreadable_files_are_refused() -> None:
    with pytest.raises(UnreadableDocument):
        parse("broken.pdf", b"%PDF-1.4 not really")
    with pytest.raises(UnreadableDocument):
        parse("notes.docx", b"...")
    with pytest.raises(UnreadableDocument):
        parse("latin1.txt", "caf\u00e9".encode("latin-1"))


def test_control_characters_are_dropped() -> None:
    parsed = parse("a.txt", "one\u202etwo\x00three\u2028four".encode())
    assert parsed.sections[0].text == "one two three four"


# -- chunking ----------------------------------------------------------------------


def test_chunks_pack_paragraphs_within_a_section_and_split_long_ones() -> None:
    long_paragraph = " ".join(f"Sentence number {n} is here." for n in range(200))
    document = ParsedDocument(
        "Title",
        "markdown",
        (
            Section(("Title", "A"), "Short one.\n\nShort two."),
            Section(("Title", "B"), long_paragraph, page=3),
        ),
    )
    chunks = chunk_document(document)
    assert chunks[0].body == "Short one.\n\nShort two."
    assert chunks[0].heading == "Title \u203a A"
    rest = chunks[1:]
    assert len(rest) > 3
    assert all(len(c.body) <= LIMIT_CHARS for c in rest)
    assert all(c.page == 3 and c.heading_path == ("Title", "B") for c in rest)
    assert all(c.body.endswith(".") for c in rest)  # cut at sentence ends
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


# -- ingestion ---------------------------------------------------------------------


async def test_sync_is_incremental_and_removes_deleted_files(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha text about gardening.")
    (folder / "b.txt").write_text("Bravo text about sailing.")
    (folder / "nested").mkdir()
    (folder / "nested" / "c.html").write_text("<h1>C</h1><p>Charlie about cooking.</p>")
    (folder / ".hidden.md").write_text("# Hidden")
    (folder / "image.png").write_bytes(b"\x89PNG")
    (folder / "bad.pdf").write_bytes(b"not a pdf")
    ingestor = Ingestor(KnowledgeStore(pool))

    first = await ingestor.sync_folder("docs", folder)
    assert sorted(first.added) == ["a.md", "b.txt", "nested/c.html"]
    assert first.failed and first.failed[0].startswith("bad.pdf: ")
    ids = await chunk_ids(pool)

    second = await ingestor.sync_folder("docs", folder)
    assert (second.added, second.updated, second.removed, second.unchanged) == ([], [], [], 3)
    assert await chunk_ids(pool) == ids  # unchanged files keep their chunks (and ids)

    (folder / "a.md").write_text("# A\n\nAlpha text about beekeeping now.")
    (folder / "b.txt").unlink()
    third = await ingestor.sync_folder("docs", folder)
    assert (third.updated, third.removed, third.unchanged) == (["a.md"], ["b.txt"], 1)
    store = KnowledgeStore(pool)
    assert [d.name for d in await store.documents("docs")] == ["a.md", "nested/c.html"]
    assert await store.search_text(["docs"], "gardening", 5) == []
    [hit] = await store.search_text(["docs"], "beekeeping", 5)
    assert (hit.document, hit.heading_path) == ("a.md", ("A",))
    assert await statistics(pool) == await recounted(pool)
    await ingestor.delete("docs", ["a.md"])
    assert await statistics(pool) == await recounted(pool)


async def test_uploads_survive_syncs_and_catalog_folders_win_names(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    ingestor = Ingestor(KnowledgeStore(pool))
    document, report = await ingestor.put_upload("docs", "notes.md", b"# Notes\n\nUploaded tulips.")
    assert (document.origin, document.chunks, report.added) == ("upload", 1, ["notes.md"])
    await ingestor.sync_folder("docs", folder)  # the upload is not a file of the folder
    assert [d.name for d in await KnowledgeStore(pool).documents("docs")] == ["notes.md"]
    with pytest.raises(UnreadableDocument):
        await ingestor.put_upload("docs", "scan.pdf", b"garbage")


async def test_sync_covers_every_collection_folder_and_prunes_on_request(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    for collection in ("one", "two"):
        (tmp_path / "knowledge" / collection).mkdir(parents=True)
        (tmp_path / "knowledge" / collection / "doc.md").write_text(f"# {collection}\n\nText.")
    knowledge = await Knowledge.start(pool, load_settings(catalog=tmp_path), lambda *_: 0.0)
    assert knowledge.mode == "full-text"
    assert "full-text search only (no PARLEY_EMBEDDINGS_MODEL)" in knowledge.describe()
    assert [r.collection for r in await knowledge.sync()] == ["one", "two"]
    shutil.rmtree(tmp_path / "knowledge" / "two")
    await knowledge.sync()  # what serve does: a folder it lacks may be another instance's
    assert {d.collection for d in await knowledge.store.documents()} == {"one", "two"}
    await knowledge.sync(prune=True)  # what parley ingest does
    assert {d.collection for d in await knowledge.store.documents()} == {"one"}
    assert await knowledge.search(["two"], "text", 5, Asker()) == []


async def test_a_collection_is_synced_by_one_instance_at_a_time(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(5):
        (folder / f"doc{n}.md").write_text(f"# Doc {n}\n\nBody {n}.")
    store = KnowledgeStore(pool)
    reports = await asyncio.gather(
        Ingestor(store).sync_folder("docs", folder), Ingestor(store).sync_folder("docs", folder)
    )
    assert sorted(len(r.added) for r in reports) == [0, 5]
    assert len(await store.documents("docs")) == 5


def test_the_progress_bar_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("parley.knowledge.progress.SHOW_AFTER_SECONDS", 0.0)
    piped = io.StringIO()
    bar = ProgressBar("ingest docs", 3, piped)
    for _ in range(3):
        bar.advance(note="file")
    bar.close()
    assert piped.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = ProgressBar("ingest docs", 3, terminal)
    for _ in range(3):
        bar.advance(note="file")
    bar.close()
    assert "ingest docs [" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")


async def chunk_ids(pool: asyncpg.Pool) -> list[int]:
    return [row["id"] for row in await pool.fetch("SELECT id FROM knowledge_chunks ORDER BY id")]


async def statistics(pool: asyncpg.Pool) -> tuple[list[tuple[object, ...]], ...]:
    """What ingestion keeps: chunks per collection, chunks per lexeme."""
    collections = await pool.fetch("SELECT * FROM knowledge_collections ORDER BY 1")
    terms = await pool.fetch("SELECT * FROM knowledge_terms WHERE df > 0 ORDER BY 1, 2")
    return [tuple(r) for r in collections if r["chunks"]], [tuple(r) for r in terms]


async def recounted(pool: asyncpg.Pool) -> tuple[list[tuple[object, ...]], ...]:
    """The same, counted from the chunks."""
    collections = await pool.fetch(
        "SELECT collection, count(*)::int FROM knowledge_chunks GROUP BY 1 ORDER BY 1"
    )
    terms = await pool.fetch(
        "SELECT collection, lexeme, count(*)::int FROM knowledge_chunks,"
        " unnest(tsvector_to_array(tsv)) lexeme GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [tuple(r) for r in collections], [tuple(r) for r in terms]
