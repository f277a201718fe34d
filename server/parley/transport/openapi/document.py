"""The OpenAPI 3.1 document, built from the registry's operations and their models.

Every pydantic model an operation names becomes one entry of
``components/schemas`` (``model_json_schema`` with OpenAPI's ``$ref`` template;
models of the same name in different modules keep their module in the name).
Only operations the app actually serves are described: ``/metrics`` exists
only with a metrics token, and so does its entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from parley import __version__
from parley.auth.http import SESSION_COOKIE
from parley.transport.openapi.registry import JSON, Access, Answer, Operation, Parameter

REF_TEMPLATE = "#/components/schemas/{model}"
_REF = REF_TEMPLATE.removesuffix("{model}")
# Models of the same name in several modules are told apart by these prefixes
# (a package's prefix holds for every module in it: parley.transport.bodies.*).
MODULE_PREFIXES = {
    "parley.transport.bodies": "",
    "parley.transport.compat.openai_shapes": "OpenAI",
    "parley.transport.compat.anthropic_shapes": "Anthropic",
    "parley.transport.compat.shapes": "Compat",
}
# Methods Starlette adds by itself (HEAD to every GET), which need no description.
IMPLIED_METHODS = frozenset({"HEAD"})

ERROR_MEANINGS = {
    400: "The request is malformed: the message names the first problem (`bad_request`).",
    401: "No valid token (`unauthorized`).",
    403: "Not allowed: the admin role is needed, or the cookie came from another origin "
    "(`forbidden`).",
    404: "No such thing, or not the caller's (`not_found`, `unknown_agent`).",
    409: "A reply is still running in this conversation (`busy`).",
    413: "Too large (`too_large`).",
    422: "Conflicts with what was done before (`conflict`).",
    429: "Slow down: the per-user rate limit, or the daily token budget is spent "
    "(`rate_limited`, `budget_exceeded`).",
    500: "Storage is unavailable (nothing was saved: retry), or a bug (`internal`).",
    503: "Every model of the agent is unavailable; try again shortly (`upstream_unavailable`).",
}

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT from your identity provider (docs/operations.md).",
    },
    "cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The session cookie `POST /auth/session` sets (browsers). Unsafe "
        "methods with the cookie must come from an allowed Origin.",
    },
    "metrics": {
        "type": "http",
        "scheme": "bearer",
        "description": "PARLEY_METRICS_TOKEN.",
    },
}
_SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    Access.USER: [{"bearer": []}, {"cookie": []}],
    Access.ADMIN: [{"bearer": []}, {"cookie": []}],
    Access.METRICS: [{"metrics": []}],
}


def served(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every HTTP endpoint among ``routes`` (mounts as ``path/*``)."""
    keys: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            methods = route.methods or {"GET"}
            keys.update((method, route.path) for method in methods - IMPLIED_METHODS)
        elif isinstance(route, WebSocketRoute):
            keys.add(("GET", route.path))
        elif isinstance(route, Mount):
            keys.add(("GET", route.path + "/*"))
    return keys


def build_document(
    operations: Sequence[Operation], routes: Iterable[BaseRoute], *, title: str = "Parley"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of those ``operations`` that ``routes`` serve."""
    keys = [operation.key for operation in operations]
    if len(keys) != len(set(keys)):
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"operations described twice: {twice}")
    present = served(routes)
    described = [op for op in operations if op.key in present]
    schemas = _Schemas(described)
    paths: dict[str, dict[str, Any]] = {}
    for operation in described:
        paths.setdefault(operation.openapi_path, {})[operation.method.lower()] = _operation(
            operation, schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": "Parley's REST API. The WebSocket protocol is in docs/protocol.md; "
            "the OpenAI- and Anthropic-compatible endpoints follow their vendors' APIs "
            "(docs/clients.md).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in described)],
        "paths": paths,
        "components": {"schemas": schemas.definitions, "securitySchemes": SECURITY_SCHEMES},
    }


class _Schemas:
    """Every model the operations name, as JSON schemas with shared definitions."""

    def __init__(self, operations: Sequence[Operation]) -> None:
        models: dict[type[BaseModel], None] = {}
        for operation in operations:
            for model in _models_of(operation):
                models[model] = None
        # Validation schemas: the compatible APIs' shapes serialize through a wrap
        # serializer, whose serialization schema is an empty object; fields are the same.
        mode: JsonSchemaMode = "validation"
        refs, definitions = models_json_schema(
            [(model, mode) for model in models], ref_template=REF_TEMPLATE
        )
        renamed = _short_names(definitions.get("$defs", {}))
        self.refs = {model: _renamed(ref, renamed) for (model, _), ref in refs.items()}
        self.definitions: dict[str, Any] = {
            renamed.get(name, name): _renamed(schema, renamed)
            for name, schema in definitions.get("$defs", {}).items()
        }

    def of(self, model: type[BaseModel]) -> dict[str, Any]:
        return dict(self.refs[model])


def _short_names(definitions: Mapping[str, Any]) -> dict[str, str]:
    """Readable names for the models pydantic had to qualify with their module
    (``parley__transport__compat__openai_shapes__Usage`` → ``OpenAIUsage``)."""
    renamed: dict[str, str] = {}
    for name in definitions:
        module, _, model = name.rpartition("__")
        prefix = _prefix(module.replace("__", "."))
        if prefix is not None and prefix + model not in definitions:
            renamed[name] = prefix + model
    return renamed


def _prefix(module: str) -> str | None:
    """The prefix of ``module``'s models: its own, or its closest package's."""
    while module:
        if module in MODULE_PREFIXES:
            return MODULE_PREFIXES[module]
        module = module.rpartition(".")[0]
    return None


def _renamed(schema: Any, renamed: Mapping[str, str]) -> Any:
    """``schema`` with its ``$ref`` to renamed definitions following the new names."""
    if isinstance(schema, Mapping):
        return {
            key: (
                REF_TEMPLATE.format(
                    model=renamed.get(value.removeprefix(_REF), value.removeprefix(_REF))
                )
                if key == "$ref" and isinstance(value, str)
                else _renamed(value, renamed)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_renamed(item, renamed) for item in schema]
    return schema


def _models_of(operation: Operation) -> Iterable[type[BaseModel]]:
    if operation.body is not None:
        yield operation.body
    yield operation.error_model
    for answer in [*operation.answers.values(), *operation.error_answers.values()]:
        if answer.model is not None:
            yield answer.model
        yield from answer.alternatives


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    method = operation.method.lower()
    described: dict[str, Any] = {
        "operationId": _operation_id(operation),
        "summary": operation.summary,
        "tags": [operation.tag],
        "security": _SECURITY[operation.access],
    }
    if operation.description:
        described["description"] = operation.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in operation.path_parameters
    ]
    parameters += [_parameter(p, "query") for p in operation.query]
    parameters += [_parameter(p, "header") for p in operation.headers]
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {JSON: {"schema": schemas.of(operation.body)}},
        }
        if operation.example is not None:
            described["requestBody"]["content"][JSON]["example"] = dict(operation.example)
    elif operation.raw_body is not None:
        described["requestBody"] = {
            "required": True,
            "description": operation.raw_body.description,
            "content": {
                operation.raw_body.media_type or JSON: {
                    "schema": dict(operation.raw_body.schema or {})
                }
            },
        }
    responses = {str(status): _answer(a, schemas) for status, a in operation.answers.items()}
    error = operation.error_model
    for status in operation.error_statuses():
        special = operation.error_answers.get(status)
        if special is None:
            special = Answer(ERROR_MEANINGS.get(status, "An error."), model=error)
        responses[str(status)] = _answer(special, schemas)
    described["responses"] = dict(sorted(responses.items()))
    assert method in {"get", "post", "put", "patch", "delete"}, operation.key
    return described


def _operation_id(operation: Operation) -> str:
    words = [
        part.strip("{}").replace(".", "_").replace("-", "_")
        for part in operation.path.split("/")
        if part
    ]
    return "_".join([operation.method.lower(), *words])


def _parameter(parameter: Parameter, where: str) -> dict[str, Any]:
    return {
        "name": parameter.name,
        "in": where,
        "required": False,
        "description": parameter.description,
        "schema": dict(parameter.schema),
    }


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    content: dict[str, Any] = {}
    if answer.model is not None:
        shapes = [schemas.of(model) for model in (answer.model, *answer.alternatives)]
        content[JSON] = {"schema": shapes[0] if len(shapes) == 1 else {"anyOf": shapes}}
    if answer.media_type is not None:  # instead of JSON, or as well (a streamed answer)
        content[answer.media_type] = {"schema": dict(answer.schema or {})}
    if content:
        described["content"] = content
    if answer.headers:
        described["headers"] = {
            name: {"description": meaning, "schema": {"type": "string"}}
            for name, meaning in answer.headers.items()
        }
    return described
