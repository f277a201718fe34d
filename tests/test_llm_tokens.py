"""Token counting: the encoding each model uses, message overhead, and the offline fallback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiktoken

from parley.llm.base import ChatMessage, ModelRef
from parley.llm.tokens import (
    CL100K,
    COUNT_CACHE_SIZE,
    O200K,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TokenCounter,
    encoding_for,
    estimate_tokens,
)

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

# Text on which the two encodings disagree, so a count proves which one ran.
SAMPLE = "Parley streams replies: naïve café — 東京 🚀 supercalifragilistic tokenisation!"


@pytest.mark.parametrize(
    ("model", "encoding", "estimated"),
    [
        ("openai:gpt-4o", O200K, False),
        ("openai:gpt-4o-mini-2024-07-18", O200K, False),
        ("openai:chatgpt-4o-latest", O200K, False),
        ("openai:gpt-4.1-nano", O200K, False),
        ("openai:gpt-4.5-preview", O200K, False),
        ("openai:gpt-5", O200K, False),
        ("openai:gpt-5-mini", O200K, False),
        ("openai:o1", O200K, False),
        ("openai:o3-mini", O200K, False),
        ("openai:o4-mini", O200K, False),
        ("openai:gpt-4", CL100K, False),
        ("openai:gpt-4-turbo", CL100K, False),
        ("openai:gpt-3.5-turbo", CL100K, False),
        ("openai:llama3.1:8b", CL100K, True),  # Ollama: its own tokenizer, so an estimate
        ("anthropic:claude-haiku-4-5", CL100K, True),
        ("demo:echo", CL100K, False),
    ],
)
def test_encoding_is_chosen_per_model(model: str, encoding: str, estimated: bool) -> None:
    assert encoding_for(ModelRef.parse(model)) == (encoding, estimated)


def test_counts_use_the_chosen_encoding() -> None:
    counter = TokenCounter()
    o200k = tiktoken.get_encoding(O200K).encode(SAMPLE)
    cl100k = tiktoken.get_encoding(CL100K).encode(SAMPLE)
    assert len(o200k) != len(cl100k)

    assert counter.for_model(ModelRef("openai", "gpt-4o")).count(SAMPLE) == len(o200k)
    assert counter.for_model(ModelRef("openai", "gpt-4")).count(SAMPLE) == len(cl100k)
    claude = counter.for_model(ModelRef("anthropic", "claude-haiku-4-5"))
    assert (claude.count(SAMPLE), claude.estimated) == (len(cl100k), True)


def test_message_counts_include_overhead() -> None:
    tokens = TokenCounter().for_model(ModelRef("openai", "gpt-4o-mini"))
    messages = [ChatMessage("system", "Be kind."), ChatMessage("user", "Hello there")]
    content = sum(tokens.count(m.content) for m in messages)
    assert tokens.count_messages(messages) == (
        REPLY_PRIMING_TOKENS + len(messages) * TOKENS_PER_MESSAGE + content
    )
    assert tokens.count_messages([]) == REPLY_PRIMING_TOKENS
    assert tokens.count("") == 0


def test_special_token_text_is_counted_not_rejected() -> None:
    tokens = TokenCounter().for_model(ModelRef("openai", "gpt-4o"))
    assert tokens.count("<|endoftext|> and <|im_start|>") > 2


def test_character_estimate() -> None:
    assert [estimate_tokens(t) for t in ["", "abc", "abcd", "abcde"]] == [0, 1, 1, 2]


def run_without_encoding_files(script: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter, with the empty ``cache`` for tiktoken's and a
    proxy that refuses connections: tiktoken cannot load anything, whether or not this
    machine has internet."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(cache),
        "HTTPS_PROXY": dead_proxy,
        "HTTP_PROXY": dead_proxy,
        "NO_PROXY": "",
    }
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_without_encoding_files_counts_are_estimated_and_logged_once(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, logging
        from parley.llm.base import ModelRef
        from parley.llm.tokens import TokenCounter
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        results = []
        for counter in (TokenCounter(), TokenCounter()):
            for model in ("openai:gpt-4o", "openai:gpt-4", "anthropic:claude-haiku-4-5"):
                tokens = counter.for_model(ModelRef.parse(model))
                results.append([tokens.count("x" * 40), tokens.estimated])
        print(json.dumps(results))
        """
    )
    done = run_without_encoding_files(script, tmp_path)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[10, True]] * 6
    warnings = [line for line in done.stderr.splitlines() if "token counts are estimated" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("WARNING")


def test_without_encoding_files_no_record_claims_exact_counts(tmp_path: Path) -> None:
    # The demo model counts with our tokenizer; when that is a character guess,
    # its counts must not pass for a vendor's (CallRecord.estimated stays true).
    script = textwrap.dedent(
        """
        import asyncio, json
        from parley.llm.base import ChatMessage, ModelRef, ToolSpec
        from parley.llm.demo import DemoProvider
        from parley.llm.models import PriceTable
        from parley.llm.router import CallFinished, LLMRouter, RetryPolicy, Timeouts
        from parley.llm.tokens import TokenCounter

        async def main():
            counter = TokenCounter()
            router = LLMRouter({"demo": DemoProvider(counter=counter)}, PriceTable.defaults(),
                               counter, RetryPolicy(attempts=1), Timeouts())
            lookup = ToolSpec("lookup_order", "", {"type": "object"})
            records = []
            for text, cap in [("hello", 500), ("order 1042", 500), ("hello", 5)]:
                async for event in router.stream(
                    [ModelRef("demo", "echo")], [ChatMessage("user", text)], max_tokens=cap,
                    temperature=None, cancel=asyncio.Event(), tools=[lookup],
                ):
                    if isinstance(event, CallFinished):
                        r = event.record
                        records.append([r.estimated, r.completion_tokens > 0, r.finish_reason])
            print(json.dumps(records))

        asyncio.run(main())
        """
    )
    done = run_without_encoding_files(script, tmp_path)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        [True, True, "stop"],
        [True, True, "tool_calls"],
        [True, True, "length"],
    ]


def test_counts_stay_exact_for_more_texts_than_the_cache_holds() -> None:
    tokens = TokenCounter().for_model(ModelRef("openai", "gpt-4o-mini"))
    texts = [f"message {i} " * (1 + i % 5) for i in range(COUNT_CACHE_SIZE + 50)]
    first = [tokens.count(text) for text in texts]
    assert [tokens.count(text) for text in texts] == first  # the oldest were evicted
    fresh = TokenCounter().for_model(ModelRef("openai", "gpt-4o-mini"))
    assert [fresh.count(text) for text in reversed(texts)] == first[::-1]
