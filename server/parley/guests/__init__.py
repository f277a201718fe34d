"""Guests: anonymous visitors who chat with the agents that take them (the widget).

A guest holds a signed guest id (:mod:`parley.guests.identity`) and, from
``POST /v1/guest``, short-lived tokens (:mod:`parley.guests.tokens`) that
open a chat with one agent and nothing else. See docs/clients.md, "Widget".
"""

from parley.guests.identity import GuestIds
from parley.guests.limits import GuestLimitReached, GuestRateLimits
from parley.guests.service import GuestPass, Guests
from parley.guests.tokens import GuestTokens
from parley.guests.verifier import ChatVerifier

__all__ = [
    "ChatVerifier",
    "GuestIds",
    "GuestLimitReached",
    "GuestPass",
    "GuestRateLimits",
    "GuestTokens",
    "Guests",
]
