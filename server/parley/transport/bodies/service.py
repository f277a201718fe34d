"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parley.transport.bodies.base import Closed


class Health(Closed):
    status: Literal["ok"]


class Ready(Closed):
    status: Literal["ready"]
    catalog_version: str


class NotReady(Closed):
    status: Literal["starting", "unavailable"]
    failing: list[str] = Field(description="What is not usable: postgres, redis, catalog…")
