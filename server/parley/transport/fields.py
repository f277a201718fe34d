"""Field types shared by WebSocket frames and REST bodies.

Text a client sends ends up in Postgres, which refuses NUL in ``text``
columns, and in prompts and logs, where other control characters are at
best noise. They are refused at the edge as ``bad_request``; tab, newline
and carriage return are ordinary text. (Unpaired surrogates, valid JSON
escapes but not encodable text, pydantic's ``str`` refuses already.)
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError(
            "control_characters",
            "must not contain control characters other than tab, newline and carriage return",
        )
    return value


# The same rule for the API's description (GET /openapi.json), as a JSON Schema pattern.
_PLAIN = Field(json_schema_extra={"pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]*$"})

Identifier = Annotated[
    str, Field(min_length=1, max_length=128), _PLAIN, AfterValidator(_no_control_characters)
]
UserText = Annotated[str, Field(min_length=1), _PLAIN, AfterValidator(_no_control_characters)]
# A short note from a user (a feedback comment, why they want a person).
Comment = Annotated[str, Field(max_length=2000), _PLAIN, AfterValidator(_no_control_characters)]
# A conversation's title as a user names it: one line.
Title = Annotated[
    str, Field(min_length=1, max_length=80), _PLAIN, AfterValidator(_no_control_characters)
]
# Any text of a conversation a caller keeps itself and sends whole (it may be empty).
Text = Annotated[str, _PLAIN, AfterValidator(_no_control_characters)]
