"""URL templates for HTTP tools: the operator picks the target, the model only fills path segments.

A template such as ``${env:CRM_URL}/orders/{order_id}`` is parsed once, at
load. The scheme, host and port come from the file or from an operator's
environment variable, never from arguments: ``{name}`` placeholders may only
appear in the path, and each filled value is percent-encoded as part of one
path segment, so no ``/``, ``?``, ``#``, ``@`` or ``..`` in an argument can
move the request to another path, host or port.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from parley.tools.env import Environment

# One token at a time: an env reference, a placeholder, or a lone brace (an error).
TOKEN = re.compile(r"\$\{[^{}]*\}|\{[^{}]*\}|[{}]")
PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$")
# Stands for a placeholder while the URL is split into parts; refused in literal text.
MARK = "\ue000"
UNSAFE = re.compile(rf"[\s\x00-\x1f\x7f{MARK}]")
DOT_SEGMENTS = {"", ".", ".."}


@dataclass(frozen=True, slots=True)
class Slot:
    """A placeholder: where one argument goes."""

    name: str


Segment = tuple[str | Slot, ...]


@dataclass(frozen=True, slots=True)
class UrlTemplate:
    scheme: str
    netloc: str  # host[:port], exactly as the operator wrote it
    segments: tuple[Segment, ...]  # the path, split on "/" (the first is the empty root)
    query: str  # a static query string from the file, without "?"

    @classmethod
    def parse(cls, template: str, environment: Environment) -> UrlTemplate:
        """Raise ValueError with a reason that never quotes a resolved value."""
        text, slots = _substitute(template, environment)
        if UNSAFE.search(text.replace(MARK, "")):
            raise ValueError("must not contain spaces or control characters")
        parts = urlsplit(text)
        if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        if MARK in parts.scheme + parts.netloc + parts.query + parts.fragment:
            raise ValueError("{placeholders} may only appear in the path")
        if "@" in parts.netloc:
            raise ValueError("must not contain credentials; send them in headers")
        if "#" in text:
            raise ValueError("must not contain a fragment (#)")
        try:
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            raise ValueError("has an invalid port") from None
        if not parts.hostname:
            raise ValueError("has no host")
        names = [slot.name for slot in slots]
        if len(set(names)) != len(names):
            raise ValueError("each {placeholder} may appear only once")
        # Every MARK is in the path (checked above), so the slots line up in order.
        remaining = iter(slots)
        segments = tuple(_segment(raw, remaining) for raw in parts.path.split("/"))
        return cls(parts.scheme.lower(), parts.netloc, segments, parts.query)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(p.name for segment in self.segments for p in segment if isinstance(p, Slot))

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def fill(self, arguments: Mapping[str, Any], query: Sequence[tuple[str, str]] = ()) -> str:
        """The request URL (already percent-encoded); ValueError naming a bad argument."""
        path = "/".join(_fill_segment(segment, arguments) for segment in self.segments)
        pairs = [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query]
        query_string = "&".join(part for part in (self.query, *pairs) if part)
        return f"{self.origin}{path}" + (f"?{query_string}" if query_string else "")


def path_value(name: str, value: Any) -> str:
    """An argument as text for a URL path or query: scalars only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"{name}: must be a string, number or boolean to go in the URL")


def _substitute(template: str, environment: Environment) -> tuple[str, list[Slot]]:
    """The template with env references resolved and each placeholder replaced by MARK."""
    if MARK in template:
        raise ValueError("contains a reserved character")
    out: list[str] = []
    slots: list[Slot] = []
    position = 0
    for match in TOKEN.finditer(template):
        out.append(template[position : match.start()])
        token = match.group()
        if token.startswith("${"):
            value = environment.resolve(token)
            if MARK in value or "{" in value or "}" in value:
                raise ValueError(f"the value of {token} contains a brace or reserved character")
            out.append(value)
        elif placeholder := PLACEHOLDER.match(token):
            out.append(MARK)
            slots.append(Slot(placeholder.group(1)))
        else:
            raise ValueError(f"{token!r} is not a valid placeholder (use {{name}})")
        position = match.end()
    out.append(template[position:])
    return "".join(out), slots


def _segment(raw: str, slots: Iterator[Slot]) -> Segment:
    pieces: list[str | Slot] = []
    for index, literal in enumerate(raw.split(MARK)):
        if index:
            pieces.append(next(slots))
        if literal:
            pieces.append(literal)
    return tuple(pieces)


def _fill_segment(segment: Segment, arguments: Mapping[str, Any]) -> str:
    if not any(isinstance(piece, Slot) for piece in segment):
        return "".join(piece for piece in segment if isinstance(piece, str))
    text = ""
    for piece in segment:
        if isinstance(piece, str):
            text += piece
            continue
        if piece.name not in arguments:
            raise ValueError(f"{piece.name}: missing (it is part of the URL path)")
        # safe="": "/", "?", "#", "@", ":" and "%" are all encoded; only
        # unreserved characters (letters, digits, "-._~") stay as they are.
        text += quote(path_value(piece.name, arguments[piece.name]), safe="")
    if text in DOT_SEGMENTS:
        names = ", ".join(p.name for p in segment if isinstance(p, Slot))
        raise ValueError(f"{names}: {text!r} is not a valid path segment")
    return text
