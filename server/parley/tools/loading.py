"""Reading ``tools/*.yaml``: every file checked, every problem reported, nothing connected.

This is the synchronous half of loading tools: shapes, schemas, URL
templates and ``${env:...}`` references. What needs a running server (an
MCP server's tool list) is the registry's job. Problems read like the rest
of the catalog's, ``tools/<file>: line N: field: reason``, and come all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.catalog.errors import CatalogError
from parley.catalog.files import Document, describe, read_yaml, validate
from parley.tools.arguments import schema_problems
from parley.tools.declared import Traits
from parley.tools.env import Environment, Secret, UnresolvedReference
from parley.tools.http import HttpRequest, http_request
from parley.tools.ids import BUILTIN_IDS, TOOLS_DIR
from parley.tools.mcp_session import HttpServer, McpServer, StdioServer
from parley.tools.spec import McpSpec, ToolFile
from parley.tools.urls import UrlTemplate

Loc = tuple[str | int, ...]
Report = Callable[[Loc, str], None]


@dataclass(frozen=True, eq=False)
class HttpDeclaration:
    id: str
    description: str
    parameters: Mapping[str, Any]
    traits: Traits
    request: HttpRequest


@dataclass(frozen=True, eq=False)
class McpDeclaration:
    id: str
    traits: Traits
    server: McpServer
    expose: tuple[str, ...] | None
    document: Document = field(repr=False)  # problems found once connected point into it


Declaration = HttpDeclaration | McpDeclaration


def load_declarations(root: Path, environment: Environment) -> list[Declaration]:
    """Every tool file under ``root/tools``, checked; CatalogError lists every problem."""
    problems: list[str] = []
    declarations: list[Declaration] = []
    for path in sorted((root / TOOLS_DIR).glob("*.yaml")):
        document = read_yaml(path, f"{TOOLS_DIR}/{path.name}", problems)
        if document is None:
            continue
        declaration = _declaration(document, root, path.stem, environment, problems)
        if declaration is not None:
            declarations.append(declaration)
    if problems:
        raise CatalogError(problems)
    return declarations


def _declaration(
    document: Document, root: Path, stem: str, environment: Environment, problems: list[str]
) -> Declaration | None:
    spec = validate(document, ToolFile, problems)
    if spec is None:
        return None
    count = len(problems)

    def report(loc: Loc, reason: str) -> None:
        problems.append(describe(document, loc, reason))

    if spec.id != stem:
        report(("id",), f"must match the file name {stem!r}")
    if spec.id in BUILTIN_IDS:
        report(("id",), f"{spec.id!r} is a built-in tool; choose another id")
    traits = Traits.of(spec)
    if spec.http is not None and spec.parameters is not None:
        for issue in schema_problems(spec.parameters):
            report(("parameters",), issue)
        request = http_request(spec.http, spec.parameters, environment, report)
        if request is None or len(problems) > count:
            return None
        assert spec.description is not None  # ToolFile requires it with http
        return HttpDeclaration(spec.id, spec.description, spec.parameters, traits, request)
    assert spec.mcp is not None  # ToolFile requires exactly one implementation
    server = _mcp_server(spec.mcp, environment, root, report)
    if server is None or len(problems) > count:
        return None
    expose = tuple(spec.mcp.expose) if spec.mcp.expose else None
    return McpDeclaration(spec.id, traits, server, expose, document)


def _mcp_server(
    spec: McpSpec, environment: Environment, root: Path, report: Report
) -> McpServer | None:
    """The server's resolved configuration; every ``${env:...}`` value in it stays hidden."""
    hidden: list[Secret] = []

    def resolve(text: str, loc: Loc, *, allow_python: bool = False) -> str | None:
        try:
            value = environment.resolve(text, allow_python=allow_python)
        except UnresolvedReference as error:
            report(loc, str(error))
            return None
        if not allow_python:
            hidden.extend(environment.secrets_in(text))
        return value

    if spec.command is not None:
        command = [
            resolve(part, ("mcp", "command", i), allow_python=True)
            for i, part in enumerate(spec.command)
        ]
        env = {name: resolve(value, ("mcp", "env", name)) for name, value in spec.env.items()}
        if not (_all_set(command) and _all_set(env.values())):
            return None
        return StdioServer(
            command=tuple(part for part in command if part is not None),
            env=tuple((name, Secret(value)) for name, value in env.items() if value is not None),
            cwd=str(root.resolve()),  # relative paths in a command are the catalog's
            hidden=tuple(hidden),
        )
    assert spec.url is not None  # McpSpec requires command or url
    headers = {
        name: resolve(value, ("mcp", "headers", name)) for name, value in spec.headers.items()
    }
    try:
        if UrlTemplate.parse(spec.url, environment).placeholders:
            raise ValueError("must not contain {placeholders}")
    except ValueError as error:
        report(("mcp", "url"), str(error))
        return None
    url = resolve(spec.url, ("mcp", "url"))
    if url is None or not _all_set(headers.values()):
        return None
    return HttpServer(
        url=Secret(url),
        headers=tuple(
            (name, Secret(value)) for name, value in headers.items() if value is not None
        ),
        hidden=tuple(hidden),
    )


def _all_set(values: Iterable[str | None]) -> bool:
    return all(value is not None for value in values)
