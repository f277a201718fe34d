"""``GET /docs``: the OpenAPI document as one readable page, rendered on the server.

A Jinja2 template (sandboxed, autoescaped) over the document itself, with the
app's stylesheet: no script, no inline style, nothing from another origin, so
it is served under the same strict Content-Security-Policy as the chat page.
The page is rendered once, when the app is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from parley.web.pages import page_templates

TEMPLATE = "api.html"
_REF = "#/components/schemas/"
_CODE_SPAN = re.compile(r"`([^`]+)`")


def render_page(document: Mapping[str, Any], templates: Path) -> str:
    environment = page_templates(templates)
    environment.filters["type_of"] = type_of
    environment.filters["schema_name"] = schema_name
    environment.filters["fields"] = fields
    environment.filters["prose"] = prose
    return environment.get_template(TEMPLATE).render(
        info=document["info"],
        sections=_sections(document),
        schemas=document["components"]["schemas"],
    )


def prose(text: str) -> Markup:
    """A description, escaped, with its Markdown code spans (`like this`) as ``<code>``."""
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(escape(text))))


def schema_name(ref: str) -> str:
    """``#/components/schemas/Name`` → ``Name``."""
    return ref.removeprefix(_REF)


def type_of(schema: Mapping[str, Any]) -> str:
    """A JSON schema in a few words: ``string``, ``list of Notice``, ``up | down``…"""
    if "$ref" in schema:
        return schema_name(schema["$ref"])
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(str(value) for value in schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " or ".join(type_of(option) for option in schema[combinator])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return f"map of {type_of(schema['additionalProperties'])}"
    if kind is None:
        return "any"
    return str(kind)


def fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An object schema's properties: name, type, whether required, description."""
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "type": type_of(prop),
            "required": name in required,
            "description": prop.get("description", ""),
            "refs": _refs(prop),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _refs(schema: Any) -> list[str]:
    """The schema names a property refers to, for links."""
    if isinstance(schema, Mapping):
        found = [schema_name(schema["$ref"])] if "$ref" in schema else []
        for value in schema.values():
            found += _refs(value)
        return found
    if isinstance(schema, list):
        return [name for item in schema for name in _refs(item)]
    return []


def _sections(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by tag, in the document's order."""
    by_tag: dict[str, list[dict[str, Any]]] = {tag["name"]: [] for tag in document["tags"]}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            by_tag[operation["tags"][0]].append(
                {"method": method.upper(), "path": path, **operation}
            )
    return [{"tag": tag, "operations": operations} for tag, operations in by_tag.items()]
