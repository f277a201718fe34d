"""What every body is (a closed pydantic model) and how an endpoint sends one."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response


class Closed(BaseModel):
    """A closed JSON object: every field it may carry is declared."""

    model_config = ConfigDict(extra="forbid")


def respond(
    body: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` as a JSON answer, with the fields it was given (an omitted one stays out).

    Endpoints build their answers as these models (``Model.model_validate`` of a
    record's public dict, or the fields), so an answer that strays from what
    ``/openapi.json`` says fails in the tests rather than surprising a client.
    """
    return Response(
        body.model_dump_json(exclude_unset=True),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )
