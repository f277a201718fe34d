"""What every tool Parley builds shares: its description, schema, traits and argument check.

HTTP, MCP and built-in tools differ only in how they run; they subclass
:class:`DeclaredTool`, which satisfies the :class:`~parley.tools.base.Tool`
protocol except for ``run``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.tools.arguments import ArgumentChecker
from parley.tools.base import ToolContext, ToolResult
from parley.tools.spec import DEFAULT_TIMEOUT, ToolFile


@dataclass(frozen=True, slots=True)
class Traits:
    """How the reply loop treats a tool's calls, as its file says."""

    confirm: bool = False
    side_effects: bool = False
    receives_pii: bool = False
    max_calls_per_reply: int | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def of(cls, spec: ToolFile) -> Traits:
        return cls(
            confirm=spec.confirm,
            side_effects=spec.side_effects,
            receives_pii=spec.receives_pii,
            max_calls_per_reply=spec.max_calls_per_reply,
            timeout=spec.timeout,
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class DeclaredTool(ABC):
    name: str
    description: str
    parameters: Mapping[str, Any]
    traits: Traits = Traits()
    _checker: ArgumentChecker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Our own copy: the schema came from a file or a server and must not change under us.
        object.__setattr__(self, "parameters", copy.deepcopy(dict(self.parameters)))
        object.__setattr__(self, "_checker", ArgumentChecker(self.parameters))

    @property
    def confirm(self) -> bool:
        return self.traits.confirm

    @property
    def side_effects(self) -> bool:
        return self.traits.side_effects

    @property
    def receives_pii(self) -> bool:
        return self.traits.receives_pii

    @property
    def max_calls_per_reply(self) -> int | None:
        return self.traits.max_calls_per_reply

    @property
    def timeout(self) -> float:
        return self.traits.timeout

    def check(self, arguments: str) -> dict[str, Any] | str:
        return self._checker.check(arguments)

    @abstractmethod
    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...

    def public(self) -> dict[str, Any]:
        """What an operator or client may see: never headers, URLs or environment values."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(dict(self.parameters)),
            "confirm": self.confirm,
            "side_effects": self.side_effects,
        }
