"""``response_fields``: which parts of a JSON response the model is shown.

Services often return more than a conversation needs (internal ids, other
customers' data, PII). Operators list dotted paths, such as
``shipping.carrier``; lists are walked element by element, so ``items.sku``
keeps the ``sku`` of every item. Everything not listed is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A node maps a field name to its subtree, or to None: keep that field whole.
FieldTree = dict[str, "FieldTree | None"]
_DROP = object()


def field_tree(paths: Sequence[str]) -> FieldTree:
    tree: FieldTree = {}
    # Shorter paths first: once "a" is kept whole, "a.b" adds nothing.
    for path in sorted(paths, key=lambda p: p.count(".")):
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if child is None:
                break
            node = child
        else:
            node[last] = None
    return tree


def project(value: Any, tree: FieldTree | None) -> Any:
    """``value`` reduced to the fields in ``tree`` (missing fields are simply absent)."""
    picked = _pick(value, tree)
    return None if picked is _DROP else picked


def _pick(value: Any, tree: FieldTree | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, list):
        return [item for item in (_pick(v, tree) for v in value) if item is not _DROP]
    if isinstance(value, dict):
        kept = {key: _pick(value[key], sub) for key, sub in tree.items() if key in value}
        return {key: item for key, item in kept.items() if item is not _DROP}
    return _DROP  # a scalar where the operator expected an object: show nothing of it
