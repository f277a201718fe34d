"""The example order service's ``create_ticket`` tool, which asks the user first."""

from __future__ import annotations

import json
from typing import Any

import httpx

from parley.examples.background import BackgroundServer
from support.client import Frame
from support.fake_llm import Script


def ticket_call(subject: str, description: str = "The printer smokes when printing.") -> Script:
    """The model's turn that calls ``create_ticket``."""
    arguments = json.dumps({"subject": subject, "description": description})
    return Script(tool_calls=[("create_ticket", arguments)])


def tickets(orders: BackgroundServer, subject: str) -> list[dict[str, Any]]:
    """The tickets the order service holds with ``subject``."""
    found: list[dict[str, Any]] = httpx.get(f"{orders.url}/tickets").json()["tickets"]
    return [ticket for ticket in found if ticket["subject"] == subject]


def awaiting(frame: Frame) -> bool:
    """A tool call waiting for the user's confirmation (``ChatClient.reply``'s ``until``)."""
    return frame["type"] == "tool_call" and frame["status"] == "awaiting_confirmation"
