"""The one error a bad catalog raises: every problem found, one line each."""

from __future__ import annotations


class CatalogError(Exception):
    """The catalog did not load. Each problem reads ``file: field: reason``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
