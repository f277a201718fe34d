"""Parley: a conversational agent server."""

__version__ = "0.1.0"
