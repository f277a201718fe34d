"""A disclaimer appended to a reply renders as written, whatever Markdown the reply left open."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from parley.catalog import load_catalog
from parley.rules import RuleEvent, RuleSet
from parley.rules.ruleset import build_ruleset
from parley.rules.schema import RulesFile
from support.whole_reply import whole_reply

ROOT = Path(__file__).resolve().parents[1]
FINANCE: RuleSet = load_catalog(ROOT).rule_sets["financial_advisor"]
DISCLAIMER = "This is general information, not advice."
PLAIN: RuleSet = build_ruleset(
    RulesFile.model_validate(
        {"id": "plain", "name": "Plain", "output": {"disclaimer": DISCLAIMER}}
    ),
    {},
)
RENDER = MarkdownIt("commonmark", {"html": True})


def rendered_last(text: str) -> str:
    """The last line of the HTML a CommonMark renderer makes of ``text``."""
    return RENDER.render(text).rstrip("\n").rsplit("\n", 1)[-1]


def renders_as_written(text: str, disclaimer: str) -> bool:
    return rendered_last(text) == f"<p>{disclaimer}</p>"


@pytest.mark.parametrize(
    ("reply", "closing"),
    [
        ("Run this:\n\n```bash\nrm -rf build", "\n```"),
        ("Run this:\n\n````\ncode\n```\nstill code", "\n````"),
        ("~~~python\nprint(1)\n", "~~~"),
        ("   ```\nindented fence", "\n```"),
        ("Note <!-- hidden", ""),  # inline: the blank line ends the paragraph
        ("<!-- hidden\nall of this", "\n-->"),
        ("text\n<pre>\ncode\n\nmore code", "\n</pre>"),
        ("<script>\nx = 1", "\n</script>"),
        ("<?php echo 1;", "\n?>"),
        ("<![CDATA[ data", "\n]]>"),
        ("<!DOCTYPE html", "\n>"),
        ("<!-- a comment with a fence\n```\n", "-->"),
    ],
)
def test_open_blocks_are_closed_before_the_disclaimer(reply: str, closing: str) -> None:
    text, events = whole_reply(PLAIN, reply)
    assert text == f"{reply}{closing}\n\n{DISCLAIMER}"
    assert renders_as_written(text, DISCLAIMER), RENDER.render(text)
    detail = "appended after closing an open block" if closing else "appended"
    assert events == [RuleEvent(rule="disclaimer", action="disclaimer", detail=detail)]


@pytest.mark.parametrize(
    "reply",
    [
        "Use `rm -rf",  # an open code span ends with its paragraph
        "- item\n\n  ```\n  code in a list",  # the list ends, and the fence in it
        "> ```\n> code in a quote",
        "<details>\n<summary>More</summary>",  # ends at a blank line (and is shown as text)
        "```\ncode\n```",  # closed already
        "| a | b |\n|---|---|\n| 1 | 2",
        "Plain text.",
    ],
)
def test_what_a_blank_line_ends_is_left_alone(reply: str) -> None:
    text, _ = whole_reply(PLAIN, reply)
    assert text == f"{reply}\n\n{DISCLAIMER}"
    assert renders_as_written(text, DISCLAIMER), RENDER.render(text)


PIECES = [
    "```",
    "````",
    "~~~",
    "```python",
    "<!--",
    "-->",
    "<pre>",
    "</pre>",
    "`",
    "> ",
    "- ",
    "  ",
    "guaranteed returns",
    "4111 1111 1111 1111",
    "text",
    "**bold**",
]
replies = st.lists(
    st.one_of(st.sampled_from(PIECES), st.sampled_from(["\n", "\n\n", " "])), max_size=16
).map("".join)
chunk_sizes = st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=5)


def stream(rules: RuleSet, text: str, sizes: list[int]) -> tuple[str, list[RuleEvent]]:
    output_filter, out, events, start, turn = rules.output_filter(), [], [], 0, 0
    while start < len(text):
        size = sizes[turn % len(sizes)]
        released, found = output_filter.feed(text[start : start + size])
        out.append(released)
        events += found
        start, turn = start + size, turn + 1
    released, found = output_filter.finish()
    return "".join(out) + released, events + found


@pytest.mark.parametrize("rules", [PLAIN, FINANCE], ids=["no-rules", "financial_advisor"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=replies, sizes=chunk_sizes)
def test_the_disclaimer_always_renders_as_its_own_paragraph(
    rules: RuleSet, reply: str, sizes: list[int]
) -> None:
    assert rules.disclaimer is not None
    whole = whole_reply(rules, reply)
    assert stream(rules, reply, sizes) == whole
    text = whole[0]
    assert text.endswith(f"\n\n{rules.disclaimer}")
    assert renders_as_written(text, rules.disclaimer), (reply, RENDER.render(text))
