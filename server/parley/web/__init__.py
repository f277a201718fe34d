"""The browser chat UI served at ``/``."""

from parley.web.routes import content_security_policy, web_routes

__all__ = ["content_security_policy", "web_routes"]
