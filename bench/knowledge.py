"""``python -m bench.knowledge``: what knowledge bases cost.

Measures, on a database of its own (created and dropped here):

- ingest rate: Markdown files through the whole path (hash, parse, chunk,
  one transaction per document), in files and chunks per second;
- retrieval latency p50/p99 of a full-text search (``KnowledgeStore.search_text``
  via ``Knowledge.search``) in one collection of 10k and 100k chunks;
- with ``--vector URL`` (a Postgres with pgvector, e.g. the pgserver wheel's):
  the HNSW search of random vectors at the same sizes;
- the time retrieval adds before the upstream request (so to the time to first
  token): ``Knowledge.retrieve`` on the shipped collections, as ``ChatService``
  runs it, passage budget and token counting included.

The corpus is synthetic and deterministic: sections of sentences drawn from a
fixed vocabulary with a Zipf-like word frequency, so common words are common
(the hard case for full-text ranking) and rare ones rare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from parley.config import load_settings
from parley.knowledge.ingest import Ingestor
from parley.knowledge.service import Asker, Knowledge
from parley.knowledge.store import KnowledgeStore
from parley.knowledge.vectors import VectorIndex
from parley.llm.base import ModelRef
from parley.llm.tokens import TokenCounter
from parley.storage.database import create_pool, migrate

REPO = Path(__file__).resolve().parents[1]
SECTIONS_PER_FILE = 10  # each about one chunk
QUERIES = 300
VOCABULARY = 5000


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Corpus:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        syllables = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "de", "po", "an", "el"]
        words: set[str] = set()
        while len(words) < VOCABULARY:
            words.add("".join(self.rng.choices(syllables, k=self.rng.randint(2, 4))))
        self.words = sorted(words)
        # Zipf-like: the word at rank r is drawn with weight 1 / (r + 1).
        self.weights = [1 / (rank + 1) for rank in range(VOCABULARY)]

    def sentence(self) -> str:
        words = self.rng.choices(self.words, self.weights, k=self.rng.randint(8, 18))
        return " ".join(words).capitalize() + "."

    def file(self, number: int) -> str:
        parts = [f"# Document {number}\n"]
        for section in range(SECTIONS_PER_FILE):
            parts.append(f"## Section {section} {self.rng.choice(self.words)}\n")
            parts.append(" ".join(self.sentence() for _ in range(self.rng.randint(5, 9))) + "\n")
        return "\n".join(parts)

    def question(self) -> str:
        return " ".join(self.rng.choices(self.words, self.weights, k=self.rng.randint(3, 8)))


async def timed(action: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
    }


async def _search(knowledge: Knowledge, questions: Iterator[str]) -> None:
    await knowledge.search(["bench"], next(questions), 10, Asker())


async def fresh_database(base: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    name = f"parley_bench_kb_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()

    async def drop() -> None:
        connection = await asyncpg.connect(base)
        await connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await connection.close()

    return urlunsplit(urlsplit(base)._replace(path=f"/{name}")), drop


async def full_text(base: str, sizes: Sequence[int], corpus: Corpus) -> dict[str, object]:
    url, drop = await fresh_database(base)
    pool = await create_pool(url, max_size=4)
    results: dict[str, object] = {}
    try:
        await migrate(pool)
        knowledge = Knowledge(KnowledgeStore(pool), REPO)
        ingestor = Ingestor(knowledge.store)
        folder = Path(tempfile.mkdtemp(prefix="bench-kb-"))
        written = 0
        try:
            for size in sizes:
                files = size // SECTIONS_PER_FILE
                for number in range(written, files):
                    (folder / f"doc{number:06d}.md").write_text(corpus.file(number))
                new = files - written
                written = files
                started = time.perf_counter()
                report = await ingestor.sync_folder("bench", folder)
                seconds = time.perf_counter() - started
                chunks = await pool.fetchval("SELECT count(*) FROM knowledge_chunks")
                await pool.execute("VACUUM ANALYZE knowledge_chunks")
                questions = iter([corpus.question() for _ in range(QUERIES)])
                samples = await timed(partial(_search, knowledge, questions), QUERIES)
                results[f"{size}"] = {
                    "chunks": chunks,
                    "ingest": {
                        "files": new,
                        "chunks": report.chunks,
                        "seconds": round(seconds, 2),
                        "files_per_s": round(new / seconds, 1),
                        "chunks_per_s": round(report.chunks / seconds, 1),
                        "unchanged_skipped": report.unchanged,
                    },
                    "search": summary(samples),
                }
                print(f"full text, {chunks} chunks: {results[f'{size}']}", file=sys.stderr)
            started = time.perf_counter()
            unchanged = await ingestor.sync_folder("bench", folder)
            results["resync_unchanged_s"] = round(time.perf_counter() - started, 2)
            results["resync_unchanged_files"] = unchanged.unchanged
        finally:
            shutil.rmtree(folder)
    finally:
        await pool.close()
        await drop()
    return results


async def vectors(url: str, sizes: Sequence[int], dimensions: int) -> dict[str, object]:
    """HNSW search in a collection of ``size`` chunks with random unit vectors."""
    database, drop = await fresh_database(url)
    pool = await create_pool(database, max_size=4)
    results: dict[str, object] = {}
    rng = random.Random(11)

    def vector() -> list[float]:
        values = [rng.gauss(0, 1) for _ in range(dimensions)]
        norm = sum(x * x for x in values) ** 0.5
        return [x / norm for x in values]

    try:
        await migrate(pool)
        index = await VectorIndex.enable(pool, f"bench:random/{dimensions}", dimensions)
        assert not isinstance(index, str), index
        document = await pool.fetchval(
            "INSERT INTO knowledge_documents (collection, name, origin, kind, title,"
            " content_hash, bytes) VALUES ('bench', 'random', 'upload', 'text', 'r', '', 0)"
            " RETURNING id"
        )
        have = 0
        for size in sizes:
            started = time.perf_counter()
            while have < size:
                batch = min(2000, size - have)
                ids = await pool.fetch(
                    "INSERT INTO knowledge_chunks (document_id, collection, ordinal, heading,"
                    " body, tokens) SELECT $1, 'bench', n, 'h', 'b', 1"
                    " FROM generate_series($2::int, $3::int) n RETURNING id",
                    document,
                    have,
                    have + batch - 1,
                )
                await index.store([row["id"] for row in ids], [vector() for _ in ids])
                have += batch
            build = time.perf_counter() - started
            await pool.execute("VACUUM ANALYZE knowledge_embeddings")
            samples = await timed(lambda: index.search(["bench"], vector(), 20), QUERIES)
            results[f"{size}"] = {"insert_and_index_s": round(build, 1), "search": summary(samples)}
            print(f"vectors, {size} chunks: {results[f'{size}']}", file=sys.stderr)
    finally:
        await pool.close()
        await drop()
    return results


async def added_before_first_token(base: str) -> dict[str, float]:
    """``Knowledge.retrieve`` on the shipped collections, as a reply runs it."""
    url, drop = await fresh_database(base)
    pool = await create_pool(url, max_size=4)
    try:
        await migrate(pool)
        knowledge = await Knowledge.start(pool, load_settings(catalog=REPO), lambda *_: 0.0)
        await knowledge.sync()
        counter = TokenCounter()
        counter.preload()
        tokens = counter.for_model(ModelRef("openai", "gpt-4o-mini"))
        questions = [
            ("support_articles", "I forgot my password, how do I reset it?"),
            ("personal_finance", "How big should my emergency fund be?"),
            ("brand_guide", "Which words should our copy avoid?"),
        ]
        queue = iter(questions * QUERIES)

        async def retrieve() -> None:
            collection, question = next(queue)
            await knowledge.retrieve(
                collections=[collection],
                history=[],
                newest=question,
                budget_tokens=knowledge.budget(128_000, 1000),
                count=tokens.count,
                conversation_id="bench",
                asker=Asker(),
            )

        return summary(await timed(retrieve, QUERIES))
    finally:
        await pool.close()
        await drop()


async def run(args: argparse.Namespace) -> dict[str, object]:
    corpus = Corpus()
    figures: dict[str, object] = {"queries": QUERIES}
    figures["added_before_first_token"] = await added_before_first_token(args.database)
    print(
        f"retrieval before the first token: {figures['added_before_first_token']}", file=sys.stderr
    )
    figures["full_text"] = await full_text(args.database, args.sizes, corpus)
    if args.vector:
        figures["vector"] = await vectors(args.vector, args.sizes, args.dimensions)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.knowledge", description=__doc__)
    parser.add_argument(
        "--database",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a Postgres to create the bench's databases on",
    )
    parser.add_argument("--vector", help="a Postgres with pgvector, for the vector figures")
    parser.add_argument("--dimensions", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
