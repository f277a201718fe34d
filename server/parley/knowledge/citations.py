"""Chunks as the model and the user see them: numbered passages and their sources.

Passage ``n`` in the prompt is source ``n`` in the reply's ``sources`` frame,
so the model's ``[n]`` points the user at exactly what the model read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from parley.knowledge.chunking import HEADING_SEPARATOR
from parley.knowledge.prompt import Passage, format_passage
from parley.knowledge.store import Hit

SNIPPET_CHARS = 240


def source_title(hit: Hit) -> str:
    """``Title > Section > Subsection (p. 3)``, the title not repeated."""
    path = [h for h in hit.heading_path if h != hit.title]
    title = HEADING_SEPARATOR.join([hit.title, *path])
    return f"{title} (p. {hit.page})" if hit.page is not None else title


def passage(n: int, hit: Hit) -> Passage:
    return Passage(n, f"{source_title(hit)} [{hit.collection}/{hit.document}]", hit.body)


def source_uri(conversation_id: str, hit: Hit) -> str:
    """The source viewer's address: only the conversation's owner may open it, and only
    while the conversation's agent may use the chunk's collection."""
    return f"/v1/conversations/{conversation_id}/sources/{hit.chunk_id}"


def source_entry(n: int, hit: Hit, conversation_id: str) -> dict[str, Any]:
    """One entry of the ``sources`` frame."""
    flat = " ".join(hit.body.split())
    snippet = flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rstrip() + "…"
    return {
        "n": n,
        "title": source_title(hit),
        "uri": source_uri(conversation_id, hit),
        "snippet": snippet,
        "score": round(hit.score, 4),
    }


def within_budget(
    hits: Sequence[Hit], budget_tokens: int, count: Callable[[str], int], top_k: int
) -> list[Hit]:
    """The best hits, at most ``top_k``, whose passages together fit ``budget_tokens``.

    A hit that does not fit is skipped rather than ending the list: a shorter
    one further down may still fit.
    """
    chosen: list[Hit] = []
    used = 0
    for hit in hits:
        if len(chosen) == top_k:
            break
        cost = count(format_passage(passage(len(chosen) + 1, hit)))
        if used + cost <= budget_tokens:
            chosen.append(hit)
            used += cost
    return chosen
