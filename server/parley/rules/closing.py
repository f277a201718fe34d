"""Appending text (a disclaimer) to a reply so that it renders as written.

The text goes after a blank line, which already ends a paragraph, a list, a
blockquote, a table, an inline code span left open on the last line and any
HTML block that ends at a blank line (``<div>``, ``<details>``). What a
blank line does not end would swallow it: an unclosed fenced code block
(```` ``` ```` or ``~~~``, shown as code), or an HTML block of the kinds that
run to their own terminator, above all an open comment ``<!--`` (the web
client removes comments, so the disclaimer would be stored but invisible).
Those are closed first, with the right marker: the same fence character at
least as long as the opening one, ``-->``, ``?>``, ``]]>``, ``>`` or the
``</pre>``, ``</script>``, ``</style>``, ``</textarea>`` end tag.

Whether the appended text starts a block of its own is decided by parsing
the result with markdown-it (CommonMark, as the web client's marked reads
fences and HTML blocks), not by guessing from the last lines: a fence inside
a list item or a blockquote is closed by the blank line already, and
closing it again would open a new one.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from parley.rules.events import RuleEvent

# Block structure only: inline parsing cannot swallow a following block.
_MARKDOWN = MarkdownIt("commonmark").disable("inline")
_MAY_SWALLOW = re.compile(r"`{3}|~{3}|<[!?a-zA-Z]")
_NEWLINES = re.compile(r"\r\n?")
_HTML_TERMINATORS = (
    (re.compile(r"<(script|pre|style|textarea)(?=[\s>]|$)", re.IGNORECASE), "</{0}>"),
    (re.compile(r"<!--"), "-->"),
    (re.compile(r"<\?"), "?>"),
    (re.compile(r"<!\[CDATA\["), "]]>"),
    (re.compile(r"<![A-Za-z]"), ">"),
)
_MAX_ROUNDS = 4  # an HTML block can only hide a fence opened after it, and so on


def append_text(reply: str, appended: str) -> tuple[str, RuleEvent]:
    """What to add to ``reply``: closing markup if needed, a blank line, ``appended``."""
    closing = close_open_blocks(reply, appended)
    detail = "appended after closing an open block" if closing else "appended"
    event = RuleEvent(rule="disclaimer", action="disclaimer", detail=detail)
    return f"{closing}\n\n{appended}", event


def close_open_blocks(reply: str, appended: str) -> str:
    """Markup that ends whatever in ``reply`` would otherwise swallow ``appended``."""
    if not _MAY_SWALLOW.search(reply):
        return ""
    closing = ""
    for _ in range(_MAX_ROUNDS):
        blocker = _swallowing_block(reply + closing, appended)
        marker = _terminator(blocker) if blocker is not None else None
        if marker is None:
            break
        closing += marker if (reply + closing).endswith(("\n", "\r")) else f"\n{marker}"
    return closing


def _swallowing_block(text: str, appended: str) -> Token | None:
    """The top-level block that ``"\\n\\n" + appended`` would fall inside, if any."""
    source = _NEWLINES.sub("\n", f"{text}\n\n{appended}")
    line = _NEWLINES.sub("\n", text).count("\n") + 2  # where the appended text begins
    for token in _MARKDOWN.parse(source):
        if token.level != 0 or token.map is None:
            continue
        first, after = token.map
        if first == line:
            return None  # it starts a block of its own
        if first < line < after:
            return token
    return None


def _terminator(block: Token) -> str | None:
    if block.type == "fence":
        return block.markup
    if block.type == "html_block":
        for opening, terminator in _HTML_TERMINATORS:
            found = opening.match(block.content.lstrip(" "))
            if found is not None:
                return terminator.format(*found.groups())
    return None
