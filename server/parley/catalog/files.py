"""Reading catalog YAML files with problems that point at a line.

Each file is parsed twice: into plain data for pydantic, and into a node
tree that remembers line numbers, so a validation error on
``output.replace[2].regex`` can say which line of the file to fix. The node
tree also catches duplicate mapping keys, which PyYAML would otherwise
silently resolve by keeping the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Document:
    name: str  # path relative to the catalog root, used in every message
    text: str
    data: Any
    node: yaml.Node | None


def read_yaml(path: Path, name: str, problems: list[str]) -> Document | None:
    """Parse one file; on failure append a problem and return None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{name}: cannot read the file: {error}")
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(f"{name}: {where}YAML syntax error: {error.problem or error}")
        return None
    except yaml.YAMLError as error:
        problems.append(f"{name}: YAML error: {error}")
        return None
    duplicates = list(_duplicate_keys(node))
    problems.extend(f"{name}: line {line}: duplicate key {key!r}" for key, line in duplicates)
    return None if duplicates else Document(name, text, data, node)


def validate(document: Document, model: type[M], problems: list[str]) -> M | None:
    """Validate into ``model``; append ``file: line N: field: reason`` lines on failure."""
    if not isinstance(document.data, dict):
        problems.append(f"{document.name}: expected a mapping of fields at the top level")
        return None
    try:
        return model.model_validate(document.data)
    except ValidationError as error:
        for detail in error.errors():
            problems.append(describe(document, detail["loc"], _message(detail)))
        return None


def describe(document: Document, loc: Sequence[int | str], reason: str) -> str:
    field = dotted(loc)
    line = _line_of(document.node, loc)
    where = f"line {line}: " if line else ""
    return f"{document.name}: {where}{field or '(top level)'}: {reason}"


def dotted(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(detail: Any) -> str:
    message = str(detail["msg"]).removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see docs/rules.md)"
    return message


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _duplicate_keys(node: yaml.Node | None) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    found.append((key.value, key.start_mark.line + 1))
                seen.add(key.value)
            found += _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _duplicate_keys(item)
    return found
