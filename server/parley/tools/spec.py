"""The ``tools/*.yaml`` file format as pydantic models (unknown keys are errors).

A file declares one tool (``http``) or one MCP server whose tools it exposes
(``mcp``), plus how the reply loop must treat its calls. Values that need
the environment (``${env:NAME}``) or the network are checked later, by
:mod:`parley.tools.loading` and the registry; this module checks shape only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley.rules.schema import ToolId

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 256_000

ArgumentName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
FieldPath = Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
McpToolName = Annotated[str, Field(min_length=1, max_length=128)]

# Headers Parley sets itself (or that would change how the request is framed).
RESERVED_HEADERS = {
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "idempotency-key",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSpec(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: str = Field(min_length=1, description="{name} placeholders in the path only")
    query: list[ArgumentName] = Field(default_factory=list)
    body: list[ArgumentName] = Field(default_factory=list)
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1, le=50_000_000)
    response_fields: list[FieldPath] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> HttpSpec:
        if self.method == "GET" and self.body:
            raise ValueError("a GET request has no body; send these arguments in query")
        reserved = sorted(h for h in self.headers if h.lower() in RESERVED_HEADERS)
        if reserved:
            raise ValueError(f"headers: {', '.join(reserved)} is set by Parley")
        return self


class McpSpec(_Strict):
    command: list[str] | None = Field(default=None, min_length=1, description="stdio: argv")
    env: dict[EnvName, str] = Field(default_factory=dict, description="stdio only")
    url: str | None = Field(default=None, min_length=1, description="streamable HTTP endpoint")
    headers: dict[HeaderName, str] = Field(default_factory=dict, description="HTTP only")
    expose: list[McpToolName] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_transport(self) -> McpSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (stdio) or url (streamable HTTP)")
        if self.env and self.command is None:
            raise ValueError("env applies to a command (stdio) server only")
        if self.headers and self.url is None:
            raise ValueError("headers apply to a url (streamable HTTP) server only")
        return self


class ToolFile(_Strict):
    id: ToolId
    description: str | None = Field(default=None, description="what the model is told")
    parameters: dict[str, Any] | None = Field(default=None, description="JSON Schema")
    confirm: bool = False
    side_effects: bool = False
    receives_pii: bool = False
    max_calls_per_reply: int | None = Field(default=None, ge=1, le=100)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=600)
    http: HttpSpec | None = None
    mcp: McpSpec | None = None

    @model_validator(mode="after")
    def _one_implementation(self) -> ToolFile:
        if (self.http is None) == (self.mcp is None):
            raise ValueError("give exactly one implementation: http or mcp")
        if self.http is not None and not (self.description and self.description.strip()):
            raise ValueError("description: required for an http tool (the model reads it)")
        if self.http is not None and self.parameters is None:
            raise ValueError("parameters: required for an http tool (a JSON Schema)")
        if self.mcp is not None and (self.description is not None or self.parameters is not None):
            raise ValueError(
                "description and parameters come from the MCP server; remove them from the file"
            )
        return self
